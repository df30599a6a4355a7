"""Orders for the grid (date taken, name, folder, size) and the collection's folder tree.

Everything here works on FileRecords and relative POSIX paths, so the CLI and the window
sort and filter the same way.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any, Literal, NamedTuple, TypeVar

from visualsearch.core.store import FileRecord

T = TypeVar("T")

RELEVANCE = "relevance"  # the order the items came in (a query's ranking)
SORT_KEYS = (RELEVANCE, "date", "name", "folder", "size")

DateSource = Literal["taken", "file"]

# "2021:07:04 10:11:12" as EXIF writes it; also "2021-07-04T10:11:12", a missing time or
# seconds, sub-seconds and a time zone (ignored: EXIF times are local, like the file time
# shown beside them).
_EXIF_DATE = re.compile(
    r"\s*(\d{4})[:\-./](\d{1,2})[:\-./](\d{1,2})"
    r"(?:[ T]+(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?)?"
)
_DIGITS = re.compile(r"([0-9]+)")


class RecordDate(NamedTuple):
    when: datetime  # naive local time
    source: DateSource  # "taken" (EXIF) or "file" (the file's modification time)


def parse_exif_date(text: str | None) -> datetime | None:
    """The date in an EXIF date string, or None when it holds none ("0000:00:00 00:00:00",
    blanks, an impossible day or hour, garbage)."""
    if not text:
        return None
    m = _EXIF_DATE.match(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in m.groups())
    if year < 1800:  # "0000:…" is what cameras write when they know no date
        return None
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None


def file_date(record: FileRecord) -> datetime | None:
    """The file's modification time; None when the file system recorded none (0)."""
    if record.mtime_ns <= 0:
        return None
    try:
        return datetime.fromtimestamp(record.mtime_ns / 1e9)
    except (OverflowError, OSError, ValueError):  # beyond what the platform's time holds
        return None


def record_date(record: FileRecord | None) -> RecordDate | None:
    """When the image was taken (EXIF), else when its file was last modified, with which of
    the two it is; None when neither is known."""
    if record is None:
        return None
    taken = parse_exif_date(record.taken)
    if taken is not None:
        return RecordDate(taken, "taken")
    modified = file_date(record)
    return RecordDate(modified, "file") if modified is not None else None


def date_text(record: FileRecord | None) -> str:
    """The record's date for display: "2021-07-04 10:11:12", or with " (file date)" when it
    is the file's modification time; "" when there is none."""
    date = record_date(record)
    if date is None:
        return ""
    text = f"{date.when:%Y-%m-%d %H:%M:%S}"
    return text if date.source == "taken" else f"{text} (file date)"


def natural_key(name: str) -> tuple[str, str]:
    """Sort key for human order: case-insensitive, runs of digits by value ("img2" before
    "img10"); the name itself breaks ties ("img02" and "img2") so the order is total.

    The first part is one string that orders like the tuple of text and number runs:
    each text run ends in NUL (never in a file name), each number is written as a
    character for its count of digits, then its digits without leading zeros. Strings
    compare in C; the tuples made 1,000,000 names take 8 s to sort, these 1.5 s.
    """
    return (_DIGITS.sub(_number_key, name.casefold()) + "\0", name)


def _number_key(match: re.Match[str]) -> str:
    digits = match.group().lstrip("0") or "0"
    return f"\0{chr(1 + len(digits))}{digits}"


def _folder_of(path: str) -> str:
    return path.rpartition("/")[0]


def _name_of(path: str) -> str:
    return path.rpartition("/")[2]


def _folder_key(folder: str) -> tuple:
    # component by component, so that a folder's subfolders follow it ("a", "a/b", "a b")
    return tuple(natural_key(part) for part in folder.split("/")) if folder else ()


def _name_key(r: FileRecord) -> tuple:
    return (natural_key(_name_of(r.path)), r.path)


def sort_items(
    items: Sequence[T],
    key: str,
    descending: bool = False,
    record: Callable[[T], FileRecord | None] | None = None,
) -> list[T]:
    """`items` in the order `key` names (one of SORT_KEYS); `record` gives an item's
    FileRecord (by default the items are FileRecords). Ties go by name, A to Z, either way.
    For "date", records with no date come last, by name; items with no record come after
    everything, in the order given. "relevance" keeps the given order.

    Measured (100,000 records in 2,000 folders, one shared core, Python 3.11): by size
    0.16 s, by date, name or folder 0.3-0.4 s; most of it is natural keys for names.
    """
    if key not in SORT_KEYS:
        raise ValueError(f"unknown sort key {key!r}; one of {', '.join(SORT_KEYS)}")
    if key == RELEVANCE:
        return list(items)
    rows: list[tuple[T, FileRecord, object]] = []  # item, its record, its primary key
    undated: list[tuple[T, FileRecord]] = []
    last: list[T] = []  # no record
    folder_keys: dict[str, tuple] = {}  # a folder's key is computed once, not once a file
    for item in items:
        r = record(item) if record is not None else item
        value: object = None
        if r is not None and key == "date":
            date = record_date(r)
            value = date.when if date is not None else None
        elif r is not None and key == "folder":
            folder = _folder_of(r.path)
            value = folder_keys.get(folder)
            if value is None:
                value = folder_keys[folder] = _folder_key(folder)
        elif r is not None and key == "size":
            value = r.size
        if r is None:
            last.append(item)
        elif key == "date" and value is None:
            undated.append((item, r))
        else:
            rows.append((item, r, value))
    if key == "name":
        by_name = sorted_gently(rows, lambda row: _name_key(row[1]), descending)
        release_gently(rows)
        ordered = [row[0] for row in by_name]
        release_gently(by_name)
        return ordered + last
    by_value = sorted_gently(rows, itemgetter(2), descending)
    release_gently(rows)
    ordered = []
    # ties go by name: natural keys only for the runs of equal keys (most dates and sizes
    # are unique, and a natural key costs more than the rest of the sort)
    for _, run in groupby(by_value, key=lambda row: row[2]):
        tied = list(run)
        if len(tied) > 1:
            tied.sort(key=lambda row: _name_key(row[1]))
        ordered.extend(row[0] for row in tied)
    release_gently(by_value)
    undated = sorted_gently(undated, lambda pair: _name_key(pair[1]))
    return ordered + [item for item, _ in undated] + last


def sorted_gently(
    values: Sequence[T], key: Callable[[T], Any], reverse: bool = False, run: int = 50_000
) -> list[T]:
    """`sorted(values, key=key, reverse=reverse)`, letting other threads run meanwhile.

    One sort of a million holds the GIL until it ends (1.7 s, a frozen window when it
    runs beside the GUI thread); runs of `run` are sorted apart and merged, which is
    stable as one sort is, and stops the other threads for 40 ms at a time.
    """
    if len(values) <= run:
        return sorted(values, key=key, reverse=reverse)
    keyed = [(key(v), v) for v in values]
    first = itemgetter(0)
    runs = [
        sorted(keyed[i : i + run], key=first, reverse=reverse) for i in range(0, len(keyed), run)
    ]
    release_gently(keyed)
    merged = [v for _, v in heapq.merge(*runs, key=first, reverse=reverse)]
    for each in runs:
        release_gently(each)
    return merged


def release_gently(values: list | dict, run: int = 50_000) -> None:
    """Empty `values` a run at a time: freeing a million tuples in one go holds the GIL
    for 0.3 s."""
    while values:
        if isinstance(values, dict):
            for _ in range(min(run, len(values))):
                values.popitem()
        else:
            del values[-run:]


# -- folders ------------------------------------------------------------------------------


@dataclass
class FolderNode:
    """A folder of the collection: `path` relative to the root ("" = the root itself),
    `count` = images in it and in all its subfolders, `children` in natural order."""

    name: str
    path: str
    count: int = 0
    children: list[FolderNode] = field(default_factory=list)

    def find(self, path: str) -> FolderNode | None:
        """The node of folder `path` under this one, or None."""
        node = self
        for part in path.strip("/").split("/") if path.strip("/") else ():
            node = next((c for c in node.children if c.name == part), None)
            if node is None:
                return None
        return node

    def walk(self) -> Iterable[FolderNode]:
        """This node and every node below it, parents first."""
        yield self
        for child in self.children:
            yield from child.walk()


def folder_tree(rel_paths: Iterable[str]) -> FolderNode:
    """The folders of `rel_paths` (POSIX, relative to the root) as a tree with image counts.

    Counts files per folder first and then walks each distinct folder's ancestors, so the
    cost is one pass over the paths plus the folders × depth. Measured: 100,000 paths in
    2,000 folders three deep take 18 ms (one shared core, Python 3.11).
    """
    per_folder = Counter(path.rpartition("/")[0] for path in rel_paths)
    root = FolderNode("", "")
    nodes: dict[str, FolderNode] = {"": root}
    kids: dict[str, dict[str, FolderNode]] = {"": {}}
    for folder, n in per_folder.items():
        root.count += n
        if not folder:
            continue
        parent = ""
        prefix = ""
        for part in folder.split("/"):
            prefix = f"{prefix}/{part}" if prefix else part
            node = nodes.get(prefix)
            if node is None:
                node = nodes[prefix] = FolderNode(part, prefix)
                kids[parent][part] = node
                kids[prefix] = {}
            node.count += n
            parent = prefix
    for path, children in kids.items():
        nodes[path].children = sorted(children.values(), key=lambda c: natural_key(c.name))
    return root


def in_folder(rel_path: str, folder: str) -> bool:
    """Whether `rel_path` lies in `folder` or any of its subfolders ("" = every path)."""
    folder = folder.strip("/")
    return not folder or rel_path.startswith(folder + "/")
