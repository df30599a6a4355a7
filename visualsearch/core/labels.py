"""Labels a person sorts images by: made, renamed, coloured and deleted; each image has
at most one, kept in the store per content hash (a moved or renamed file keeps it).
Exported as CSV or JSON, or as XMP sidecar keywords (new sidecar files only)."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from visualsearch.core.names import printable
from visualsearch.core.safe_files import write_new_text
from visualsearch.core.store import FileRecord, Store

# Colours new labels take in turn (Okabe–Ito: told apart with colour-blind eyes too)
PALETTE = ("#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")

SIDECAR_EXISTS = "a sidecar exists already; it was not changed"

# Where a label came from: said by the person, read off a subfolder, or an accepted proposal
SOURCES = ("user", "folder", "accepted")


class LabelError(ValueError):
    """A label operation that cannot be done, with the reason in words."""


@dataclass(frozen=True)
class Label:
    id: int
    name: str
    colour: str
    normal: bool = False  # its images are the normal set anomalies are measured against


@dataclass(frozen=True)
class FolderLabels:
    """What "use my subfolders as labels" did: label name → contents labelled, and the
    contents left as they were because identical copies lie in several subfolders."""

    labelled: dict[str, int]
    conflicts: int = 0


# What an image was labelled before a change: (label id, source), None for no label
Previous = dict[str, tuple[int, str] | None]


class LabelBook:
    """The labels of one store and the images that carry them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = store.conn

    # -- labels ---------------------------------------------------------------------------

    def all(self) -> list[Label]:
        rows = self.conn.execute("SELECT id, name, colour, normal FROM labels ORDER BY name")
        return [Label(i, n, c, bool(normal)) for i, n, c, normal in rows]

    def get(self, label: int | str) -> Label:
        """A label by id or by name; LabelError when there is none."""
        column = "id" if isinstance(label, int) else "name"
        row = self.conn.execute(
            f"SELECT id, name, colour, normal FROM labels WHERE {column}=?", (label,)
        ).fetchone()
        if row is None:
            raise LabelError(f"there is no label {label!r}")
        return Label(row[0], row[1], row[2], bool(row[3]))

    def create(self, name: str, colour: str | None = None) -> Label:
        name = _checked_name(name)
        if colour is None:
            used = self.conn.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
            colour = PALETTE[used % len(PALETTE)]
        colour = _checked_colour(colour)
        with self.conn:
            if self._named(name) is not None:
                raise LabelError(f"a label named {name!r} exists already")
            cur = self.conn.execute(
                "INSERT INTO labels (name, colour) VALUES (?, ?)", (name, colour)
            )
        return Label(int(cur.lastrowid), name, colour)

    def ensure(self, name: str) -> Label:
        """The label named `name`, made if there is none."""
        found = self._named(_checked_name(name))
        return found if found is not None else self.create(name)

    def rename(self, label: int, name: str) -> Label:
        name = _checked_name(name)
        with self.conn:
            other = self._named(name)
            if other is not None and other.id != label:
                raise LabelError(f"a label named {name!r} exists already")
            self._update(label, "name", name)
        return self.get(label)

    def recolour(self, label: int, colour: str) -> Label:
        with self.conn:
            self._update(label, "colour", _checked_colour(colour))
        return self.get(label)

    def set_normal(self, label: int, normal: bool = True) -> Label:
        with self.conn:
            self._update(label, "normal", int(normal))
        return self.get(label)

    def delete(self, label: int) -> int:
        """Delete a label; its images lose it (they are not touched). How many had it."""
        self.get(label)
        with self.conn:
            n = self.conn.execute("DELETE FROM labelled WHERE label=?", (label,)).rowcount
            self.conn.execute("DELETE FROM rejected WHERE label=?", (label,))
            self.conn.execute("DELETE FROM labels WHERE id=?", (label,))
        return n

    def _named(self, name: str) -> Label | None:
        try:
            return self.get(name)
        except LabelError:
            return None

    def _update(self, label: int, column: str, value) -> None:
        cur = self.conn.execute(f"UPDATE labels SET {column}=? WHERE id=?", (value, label))
        if cur.rowcount == 0:
            raise LabelError(f"there is no label {label!r}")

    # -- images ---------------------------------------------------------------------------

    def assign(self, hashes: Iterable[str], label: int | None, source: str = "user") -> Previous:
        """Give the contents `hashes` the label (None: take their label away), in one
        transaction. Returns what they had, for `restore` (an undo)."""
        if source not in SOURCES:
            raise LabelError(f"unknown label source {source!r}")
        hashes = list(dict.fromkeys(h for h in hashes if h))
        if label is not None:
            self.get(label)
        previous = self.labels_of(hashes)
        with self.conn:
            if label is None:
                self.conn.executemany("DELETE FROM labelled WHERE hash=?", [(h,) for h in hashes])
            else:
                self.conn.executemany(
                    "INSERT OR REPLACE INTO labelled VALUES (?, ?, ?)",
                    [(h, label, source) for h in hashes],
                )
                # a label given is no longer a rejected proposal
                self.conn.executemany(
                    "DELETE FROM rejected WHERE hash=? AND label=?", [(h, label) for h in hashes]
                )
        return previous

    def restore(self, previous: Previous) -> None:
        """Put back what `assign` (or `reject`) returned: the labels as they were."""
        with self.conn:
            for digest, was in previous.items():
                if was is None:
                    self.conn.execute("DELETE FROM labelled WHERE hash=?", (digest,))
                else:
                    self.conn.execute(
                        "INSERT OR REPLACE INTO labelled VALUES (?, ?, ?)", (digest, *was)
                    )

    def labels_of(self, hashes: Iterable[str]) -> Previous:
        found: Previous = {}
        for digest in hashes:
            row = self.conn.execute(
                "SELECT label, source FROM labelled WHERE hash=?", (digest,)
            ).fetchone()
            found[digest] = (row[0], row[1]) if row else None
        return found

    def labelled(self) -> dict[str, int]:
        """Every labelled content: hash → label id."""
        return dict(self.conn.execute("SELECT hash, label FROM labelled"))

    def reject(self, digest: str, label: int) -> None:
        """The person says `label` is wrong for this content: it is not proposed again."""
        with self.conn:
            self.conn.execute("INSERT OR IGNORE INTO rejected VALUES (?, ?)", (digest, label))

    def unreject(self, digest: str, label: int) -> None:
        with self.conn:
            self.conn.execute("DELETE FROM rejected WHERE hash=? AND label=?", (digest, label))

    def rejected(self) -> set[tuple[str, int]]:
        return set(self.conn.execute("SELECT hash, label FROM rejected"))

    def counts(self) -> dict[int, int]:
        """Images (contents) per label id."""
        rows = self.conn.execute("SELECT label, COUNT(*) FROM labelled GROUP BY label")
        return {label: n for label, n in rows}

    def paths_by_label(self, records: Iterable[FileRecord] | None = None) -> dict[str, Label]:
        """Catalog path → its label, for the files whose content is labelled."""
        labels = {label.id: label for label in self.all()}
        by_hash = self.labelled()
        records = self.store.image_records() if records is None else records
        return {
            r.path: labels[by_hash[r.hash]]
            for r in records
            if r.hash in by_hash and by_hash[r.hash] in labels
        }

    def names_by_path(
        self, from_subfolders: bool = False, records: Iterable[FileRecord] | None = None
    ) -> dict[str, str]:
        """Catalog path → label name: the labelled images', or with `from_subfolders`
        each image's first subfolder (the labels as they lie on disk, not stored)."""
        if not from_subfolders:
            return {path: label.name for path, label in self.paths_by_label(records).items()}
        records = self.store.image_records() if records is None else records
        return {r.path: folder for r in records if r.hash and (folder := first_folder(r.path))}

    def from_subfolders(self, records: Iterable[FileRecord] | None = None) -> FolderLabels:
        """ "Use my subfolders as labels": each image in a subfolder of the collection gets
        the label named after the first folder of its path (made if need be); images at
        the top are left as they are. Labels are per content: a content found in two
        subfolders (identical copies) is left as it was, and counted as a conflict."""
        folders_of: dict[str, set[str]] = {}
        records = self.store.image_records() if records is None else records
        for r in records:
            folder = first_folder(r.path)
            if folder and r.hash:
                folders_of.setdefault(r.hash, set()).add(folder)
        groups: dict[str, list[str]] = {}
        conflicts = 0
        for digest, folders in folders_of.items():
            if len(folders) > 1:
                conflicts += 1
            else:
                groups.setdefault(next(iter(folders)), []).append(digest)
        done = {}
        for folder, hashes in sorted(groups.items()):
            label = self.ensure(folder)
            self.assign(hashes, label.id, "folder")
            done[label.name] = len(hashes)
        return FolderLabels(done, conflicts)

    # -- export ---------------------------------------------------------------------------

    def export(self, dest: Path, root: Path) -> Path:
        """The labelled images as CSV (path, label, colour, source) or, for a name ending
        in .json, JSON; never over an existing file."""
        rows = self.rows(root)
        as_json = Path(dest).suffix.lower() == ".json"
        return write_new_text(Path(dest), lambda f: write_label_rows(f, rows, as_json))

    def rows(self, root: Path) -> list[dict[str, str]]:
        """Each labelled image: its path under `root`, label, colour and source."""
        sources = dict(self.conn.execute("SELECT hash, source FROM labelled"))
        records = {r.path: r for r in self.store.image_records()}
        return [
            {
                "path": str(Path(root) / path),
                "label": label.name,
                "colour": label.colour,
                "source": sources[records[path].hash],
            }
            for path, label in sorted(self.paths_by_label(records.values()).items())
        ]


def write_label_rows(f: TextIO, rows: list[dict[str, str]], as_json: bool = False) -> None:
    """`LabelBook.rows` as CSV (or JSON) onto `f`."""
    if as_json:
        json.dump(rows, f, indent=2)
        return
    writer = csv.DictWriter(f, ["path", "label", "colour", "source"])
    writer.writeheader()
    writer.writerows(rows)


def first_folder(path: str) -> str | None:
    """The first folder of a catalog path ('cats/2024/a.jpg' → 'cats'); None at the top."""
    folder, sep, _ = path.partition("/")
    return folder if sep else None


def _checked_name(name: str) -> str:
    """The name with its spaces tidied, and undecodable bytes and control characters
    written as escapes (a Latin-1 folder "gr\\xe9en" is the label "gr\\\\xe9en")."""
    cleaned = printable(" ".join(str(name).split()))
    if not cleaned:
        raise LabelError("a label needs a name")
    if len(cleaned) > 100:
        raise LabelError("a label name can have at most 100 characters")
    return cleaned


def _checked_colour(colour: str) -> str:
    if not _COLOUR.match(colour):
        raise LabelError(f"a colour is written #rrggbb, not {colour!r}")
    return colour.lower()


def keyword_sidecars(
    root: Path, labels: Mapping[str, Label]
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """An XMP sidecar per labelled image ("photo.jpg.xmp", which digiKam and darktable
    read) with its label as a keyword (dc:subject and digiKam's TagsList). Only new
    files: an image that has a sidecar already is left alone and listed with why."""
    written, skipped = [], []
    for path, label in sorted(labels.items()):
        sidecar = Path(root) / f"{path}.xmp"
        try:
            write = lambda f, n=label.name: f.write(_xmp(n))  # noqa: E731
            written.append(write_new_text(sidecar, write, numbered=False))
        except FileExistsError:
            skipped.append((sidecar, SIDECAR_EXISTS))
        except OSError as exc:
            skipped.append((sidecar, exc.strerror or str(exc)))
    return written, skipped


def _xmp(keyword: str) -> str:
    from xml.sax.saxutils import escape

    word = escape(keyword)
    return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="visualsearch">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:digiKam="http://www.digikam.org/ns/1.0/">
   <dc:subject><rdf:Bag><rdf:li>{word}</rdf:li></rdf:Bag></dc:subject>
   <lr:hierarchicalSubject><rdf:Bag><rdf:li>{word}</rdf:li></rdf:Bag></lr:hierarchicalSubject>
   <digiKam:TagsList><rdf:Seq><rdf:li>{word}</rdf:li></rdf:Seq></digiKam:TagsList>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""
