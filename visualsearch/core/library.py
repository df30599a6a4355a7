"""A library: several root folders (internal disks, external drives) searched as one.

Each root keeps its own store, exactly as a folder opened on its own does (paths
relative to the root, vectors keyed by content), so a root opened alone and the same
root in the library share their work. The library is only the list of roots, in a
small JSON file written atomically. A root whose folder is not there (an unplugged
drive, a renamed folder) is *offline*: it is still searched from its store, its hits
say so, and indexing skips it without forgetting anything; when it is back, indexing
finds its files unchanged and encodes nothing.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from visualsearch.core.collection import Collection, Hit
from visualsearch.core.encoders.base import Encoder
from visualsearch.core.folder import ModelChoice, index_and_record, open_store
from visualsearch.core.indexing import IndexOptions, IndexReport
from visualsearch.core.progress import Progress
from visualsearch.core.query import Query, run_query
from visualsearch.core.store import Store, StoreError, StoreMissing

LIBRARY_FILE = "library.json"

log = logging.getLogger(__name__)


class LibraryError(ValueError):
    pass


@dataclass(frozen=True)
class RootState:
    path: Path
    online: bool
    files: int  # catalogued
    indexed: int  # with a vector of the model asked about, else of its last run's model
    problem: str = ""  # why its store cannot be read (the other roots go on)

    def as_dict(self) -> dict:
        return {
            "path": str(self.path),
            "online": self.online,
            "files": self.files,
            "indexed": self.indexed,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class LibraryHit:
    hit: Hit
    root: Path
    offline: bool

    def as_dict(self) -> dict:
        return {**self.hit.as_dict(), "root": str(self.root), "offline": self.offline}


def is_online(root: Path) -> bool:
    """The root's folder is there and has something in it (an unplugged drive's mount
    point is an empty folder)."""
    try:
        with os.scandir(root) as entries:
            return any(True for _ in entries)
    except OSError:
        return False


class Library:
    """The roots listed in `data_dir/library.json`; their stores live under `store_base`
    (default `data_dir`), where opening the folder on its own finds them too."""

    def __init__(self, data_dir: Path, store_base: Path | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.store_base = Path(store_base) if store_base else self.data_dir
        self.file = self.data_dir / LIBRARY_FILE
        self.roots: list[Path] = self._load()

    def _load(self) -> list[Path]:
        try:
            raw = json.loads(self.file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise LibraryError(
                f"the library list {self.file} is unreadable ({exc}); move it away to "
                "start a new one (no image or index is lost: each root keeps its store)"
            ) from exc
        roots = raw.get("roots") if isinstance(raw, dict) else None
        if not isinstance(roots, list) or not all(isinstance(p, str) for p in roots):
            raise LibraryError(
                f"the library list {self.file} is not a list of folders; move it away to "
                "start a new one (no image or index is lost: each root keeps its store)"
            )
        unique: list[Path] = []
        for text in roots:  # a hand-edited file: relative, repeated or nested roots
            root = Path(os.path.realpath(os.path.expanduser(text)))
            if not any(root.is_relative_to(r) or r.is_relative_to(root) for r in unique):
                unique.append(root)
        return unique

    def _save(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"roots": [str(p) for p in self.roots]}, indent=1))
        os.replace(tmp, self.file)

    def add(self, folder: Path) -> Path:
        """Add a folder as a root (its real path). A folder inside or around a root
        already listed is refused: its images would be searched twice."""
        root = Path(os.path.realpath(Path(folder).expanduser()))
        if not root.is_dir():
            raise LibraryError(f"{root} is not a folder")
        for known in self.roots:
            if root == known:
                return root
            if root.is_relative_to(known) or known.is_relative_to(root):
                raise LibraryError(
                    f"{root} overlaps the root {known}: its images would count twice"
                )
        self.roots.append(root)
        self._save()
        return root

    def remove(self, folder: Path) -> Path:
        """Take a root off the list. Its store stays (opening the folder again, or adding
        it back, encodes nothing)."""
        wanted = Path(os.path.realpath(Path(folder).expanduser()))
        for root in self.roots:
            if root in (wanted, Path(folder).expanduser()):
                self.roots.remove(root)
                self._save()
                return root
        raise LibraryError(f"{folder} is not a root of the library")

    def store(self, root: Path, create: bool = False) -> Store:
        return open_store(root, self.store_base, create=create)

    def states(self, model: str | None = None) -> list[RootState]:
        """Each root, online or not, with its counts from its store."""
        out = []
        for root in self.roots:
            files = indexed = 0
            problem = ""
            try:
                with self.store(root) as store:
                    files = store.counts()["files"]
                    wanted = model or store.get_meta("model")
                    indexed = store.vector_counts().get(wanted, 0) if wanted else 0
            except StoreMissing:
                pass
            except (StoreError, sqlite3.Error, OSError) as exc:
                problem = str(exc)
            out.append(RootState(root, is_online(root), files, indexed, problem))
        return out

    def index(
        self,
        encoder: Encoder,
        model: ModelChoice,
        progress: Progress | None = None,
        options: IndexOptions | None = None,
    ) -> list[tuple[Path, IndexReport | str | None]]:
        """Index every online root: its report; an offline one is skipped (None) and loses
        nothing; one whose store cannot be opened gets the reason (the others go on)."""
        reports: list[tuple[Path, IndexReport | str | None]] = []
        for root in self.roots:
            if not is_online(root):
                reports.append((root, None))
                continue
            try:
                store = self.store(root, create=True)
            except StoreError as exc:
                log.warning("library root %s skipped: %s", root, exc)
                reports.append((root, str(exc)))
                continue
            with store:
                reports.append(
                    (root, index_and_record(root, store, encoder, model, progress, options))
                )
        return reports

    def search(
        self, encoder: Encoder, query: Query, k: int = 20, cache_dir: Path | None = None
    ) -> list[LibraryHit]:
        """`query` over every root that has a store, merged by score, best first. Hits
        of an offline root are kept (its files cannot be checked) and marked. With
        `cache_dir` the scores are matches (`run_query`)."""
        merged: list[LibraryHit] = []
        for root in self.roots:
            online = is_online(root)
            try:
                store = self.store(root)
            except StoreMissing:
                continue
            except StoreError as exc:  # one damaged store never hides the other roots
                log.warning("library root %s not searched: %s", root, exc)
                continue
            with store:
                if not store.has_vectors(encoder.id):  # indexed with another model only
                    continue
                col = Collection(root, store, encoder, cache_dir=cache_dir)
                if len(col) == 0:
                    continue
                result = run_query(col, query, k, keep_missing=not online)
            merged += [LibraryHit(h, root, not online) for h in result.hits]
        merged.sort(key=lambda h: -h.hit.score)
        return [
            LibraryHit(Hit(i + 1, h.hit.path, h.hit.score, h.hit.cosine), h.root, h.offline)
            for i, h in enumerate(merged[:k])
        ]

    def indexed_with(self, model: str) -> list[Path]:
        """The roots whose stores hold vectors of `model`."""
        found = []
        for root in self.roots:
            try:
                with self.store(root) as store:
                    if store.has_vectors(model):
                        found.append(root)
            except StoreError:  # StoreMissing too: never indexed
                continue
        return found

    def thumbnails(self, hits: list[LibraryHit]) -> list[bytes | None]:
        """Each hit's thumbnail (JPEG bytes) from its root's store, offline roots too;
        None where there is none. One store opened per root."""
        by_root: dict[Path, list[int]] = {}
        for i, h in enumerate(hits):
            by_root.setdefault(h.root, []).append(i)
        found: list[bytes | None] = [None] * len(hits)
        for root, rows in by_root.items():
            try:
                store = self.store(root)
            except StoreError as exc:  # StoreMissing too: it was searched a moment ago
                log.warning("library root %s: no thumbnails: %s", root, exc)
                continue
            with store:
                for i in rows:
                    rel = hits[i].hit.path.relative_to(root).as_posix()
                    found[i] = store.thumbnail(rel)
        return found
