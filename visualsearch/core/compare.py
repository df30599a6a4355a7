"""Copies of one image compared fact by fact: which facts differ between them and which
copy has the best value of each (highest resolution, largest file, oldest date, lossless
format), so that a person can judge a duplicate group at a glance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from visualsearch.core.duplicates import LOSSLESS
from visualsearch.core.names import human_size
from visualsearch.core.sorting import date_text, record_date
from visualsearch.core.store import FileRecord

FIELDS = ("resolution", "size", "format", "date", "folder")
LABELS = {
    "resolution": "Resolution",
    "size": "Size",
    "format": "Format",
    "date": "Date",
    "folder": "Folder",
}
# what the best value of a field is called; a field without one has no best (folder)
BEST = {"resolution": "highest", "size": "largest", "format": "lossless", "date": "oldest"}


@dataclass(frozen=True)
class Fact:
    """One field of one copy as shown, and how it compares with the other copies."""

    text: str
    differs: bool  # the copies do not all show the same value
    best: bool  # the group's best value of this field (only where the copies differ)


def compare(records: list[FileRecord], root_name: str = "") -> list[dict[str, Fact]]:
    """Per record, its facts by field (FIELDS). `root_name` is put before each folder, as
    the opened folder's name (folders are relative to it)."""
    columns = {
        "resolution": _column(records, _resolution, _pixels),
        "size": _column(records, _size_texts(records), lambda r: r.size),
        "format": _column(records, lambda r: r.format or "—", _lossless),
        "date": _column(records, lambda r: date_text(r) or "—", _date_rank),
        "folder": _column(records, lambda r: _folder(r, root_name), None),
    }
    return [{f: columns[f][i] for f in FIELDS} for i in range(len(records))]


def differing(records: list[FileRecord], root_name: str = "") -> set[str]:
    """The fields whose values are not the same in every record."""
    rows = compare(records, root_name)
    return {f for f in FIELDS if rows and rows[0][f].differs}


def _column(
    records: list[FileRecord],
    show: Callable[[FileRecord], str],
    rank: Callable[[FileRecord], float | tuple | None] | None,
) -> list[Fact]:
    """One field's facts: it differs when the shown texts do; the best are the records
    with the highest `rank` (None: cannot be ranked), when they are not all alike."""
    texts = [show(r) for r in records]
    differs = len(set(texts)) > 1
    ranks = [rank(r) if rank is not None and differs else None for r in records]
    known = [k for k in ranks if k is not None]
    top = max(known) if known else None
    # a best value is marked only where some copy is worse (or cannot be ranked)
    marked = top is not None and (known.count(top) < len(records))
    return [Fact(t, differs, marked and k == top) for t, k in zip(texts, ranks, strict=True)]


def _resolution(r: FileRecord) -> str:
    return f"{r.width} × {r.height}" if r.width and r.height else "—"


def _pixels(r: FileRecord) -> int | None:
    return r.width * r.height if r.width and r.height else None


def _size_texts(records: list[FileRecord]) -> Callable[[FileRecord], str]:
    """Sizes as file managers show them, with the exact bytes when two different sizes
    would otherwise read the same ('269.6 KB' for 269,612 and 269,634 bytes)."""
    shown: dict[str, set[int]] = {}
    for r in records:
        shown.setdefault(human_size(r.size), set()).add(r.size)
    exact = any(len(sizes) > 1 for sizes in shown.values())
    return lambda r: f"{human_size(r.size)} ({r.size:,} bytes)" if exact else human_size(r.size)


def _lossless(r: FileRecord) -> int | None:
    return 1 if (r.format or "").upper() in LOSSLESS else (0 if r.format else None)


def _date_rank(r: FileRecord) -> tuple[int, float] | None:
    """Higher is better: a date taken beats a file date (which says when a copy was made,
    not when the photo was), then the older date (to the second, as shown)."""
    d = record_date(r)
    if d is None:
        return None
    return (1 if d.source == "taken" else 0, -d.when.replace(microsecond=0).timestamp())


def _folder(r: FileRecord, root_name: str) -> str:
    parent = PurePosixPath(r.path).parent
    if root_name:
        return (PurePosixPath(root_name) / parent).as_posix()
    return parent.as_posix()
