"""Duplicate groups (same content, or vectors closer than a threshold), the copy to
keep in each, and the odd ones out. Built on each image's nearest neighbours, so
100,000 images never need an n × n matrix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from visualsearch.core.image_detail import ImageDetail, measure_detail
from visualsearch.core.neighbours import linked_groups, self_knn
from visualsearch.core.progress import Progress
from visualsearch.core.raw import RAW_FORMAT
from visualsearch.core.store import FileRecord
from visualsearch.core.trash import link_problem

if TYPE_CHECKING:
    from visualsearch.core.collection import Collection

NEIGHBOURS = 10  # how many nearest images are checked for each image

# the threshold presets, relative to the model's near-duplicate similarity
IDENTICAL = 0.97

# Keeper tolerances, measured on the skimage and foolbox photos with upscaled (1.5×, 2×),
# re-compressed (JPEG q25), cropped, resized, flipped, rotated and brightened copies:
ROUGHLY_AS_DETAILED = 0.7  # effective pixels: an upscale measures 0.7–1.4× its source
UPSCALE_MARGIN = 0.1  # bandwidth: a 2× upscale has about half its source's
AS_DETAILED = 0.8  # effective pixels, among copies at their own resolution (a crop: ~0.7)
# WebP may be either: it ranks with the lossless; a RAW file holds the sensor's own data
LOSSLESS = {"PNG", "TIFF", "BMP", "WEBP", RAW_FORMAT}


def presets(near_duplicate: float) -> dict[str, float]:
    """'identical' (re-saved copies), 'near-identical' (crops, resizes, edits: the model's
    measured threshold), 'similar' (the same scene or subject)."""
    return {
        "identical": IDENTICAL,
        "near-identical": near_duplicate,
        "similar": round(near_duplicate - 0.12, 2),
    }


def check_threshold(threshold: float) -> float:
    """`threshold` if it is a similarity from 0 to 1; otherwise a ValueError saying so."""
    if not 0.0 <= threshold <= 1.0:  # NaN fails too
        raise ValueError(f"the similarity threshold must be from 0 to 1, not {threshold}")
    return float(threshold)


@dataclass
class DuplicateGroup:
    rows: list[int]  # images of the group, the suggested keeper first
    similarity: float  # the lowest similarity that joins the group
    exact: bool  # all the same bytes
    keep_reason: str = ""
    members: list[FileRecord] = field(default_factory=list)
    # per member: "" if it may be moved to the trash, else why never (a link, outside…)
    protected: list[str] = field(default_factory=list)


def suggest_keeper(
    records: list[FileRecord],
    details: list[ImageDetail | None] | None = None,
    protected: list[str] | None = None,
) -> tuple[int, str]:
    """Index of the copy to keep, and why. In order: a real file (not a link), readable,
    the camera's RAW file (a JPEG beside it was made from it), the most real detail
    (`details`: an upscale adds pixels, not detail; a crop or a re-compressed copy has
    less), camera EXIF, the oldest (EXIF date, else modification time), the largest
    file, a lossless format, the shortest path."""
    n = len(records)
    if n == 1:
        return 0, "only copy"
    protected = protected or [""] * n
    chosen = _Choice(list(range(n)))
    chosen.narrow(lambda i: not protected[i], "the real file, not a link")
    if details is not None:
        chosen.narrow(lambda i: details[i] is not None, "the others cannot be read")
    chosen.narrow(lambda i: records[i].format == RAW_FORMAT, "the camera's RAW file")
    if details is not None:
        _narrow_by_detail(chosen, records, details)
        chosen.narrow(lambda i: bool(details[i] and details[i].camera), "camera EXIF")

    def age(i: int) -> tuple[str, int]:
        return (records[i].taken or "9999", records[i].mtime_ns)

    first = min(age(i) for i in chosen.left)
    best = records[next(i for i in chosen.left if age(i) == first)]
    when = f" (taken {best.taken})" if best.taken else " (modified first)"
    chosen.narrow(lambda i: age(i) == first, "oldest" + when)
    largest = max(records[i].size for i in chosen.left)
    chosen.narrow(lambda i: records[i].size == largest, f"largest file ({largest / 1e6:.1f} MB)")
    chosen.narrow(lambda i: (records[i].format or "").upper() in LOSSLESS, "lossless format")
    keep = min(chosen.left, key=lambda i: (len(records[i].path), records[i].path))
    if not chosen.reasons:
        return keep, "identical in size and date; shortest path"
    if "most detail" in chosen.reasons:  # which, and the upscaled copies it wins over
        size = f"{details[keep].width} × {details[keep].height}"
        note = f"most detail ({size}{_upscaled(keep, records, details)})"
        chosen.reasons[chosen.reasons.index("most detail")] = note
    return keep, ", ".join(chosen.reasons)


class _Choice:
    """The copies still in the running, and why the others dropped out."""

    def __init__(self, left: list[int]) -> None:
        self.left = left
        self.reasons: list[str] = []

    def narrow(self, keep: Callable[[int], bool], why: str) -> None:
        """Keep those for which `keep` holds (when any does); the rest drop out for `why`."""
        kept = [i for i in self.left if keep(i)]
        if kept and len(kept) < len(self.left):
            self.left = kept
            if why not in self.reasons:
                self.reasons.append(why)


def _narrow_by_detail(
    chosen: _Choice, records: list[FileRecord], details: list[ImageDetail | None]
) -> None:
    """Roughly the most effective pixels; of those, the ones not upscaled; of those, the
    most effective pixels."""
    if any(details[i] is None for i in chosen.left):
        return  # none of them could be read

    def pixels(i: int) -> float:
        return details[i].effective_pixels

    def bandwidth(i: int) -> float:
        return details[i].bandwidth

    most = max(pixels(i) for i in chosen.left)
    chosen.narrow(lambda i: pixels(i) >= ROUGHLY_AS_DETAILED * most, "most detail")
    widest = max(bandwidth(i) for i in chosen.left)
    chosen.narrow(lambda i: bandwidth(i) >= widest - UPSCALE_MARGIN, "most detail")
    most = max(pixels(i) for i in chosen.left)
    chosen.narrow(lambda i: pixels(i) >= AS_DETAILED * most, "most detail")


def _upscaled(keep: int, records: list[FileRecord], details: list[ImageDetail | None]) -> str:
    """ "; big.png is 1200 × 800 but upscaled from ~600 × 400" for the largest copy with more
    pixels than `keep` but a narrower band (its detail fits in fewer pixels), else ""."""
    k = details[keep]
    larger = [
        i
        for i, d in enumerate(details)
        if d is not None
        and d.width * d.height > k.width * k.height
        and d.bandwidth < k.bandwidth - UPSCALE_MARGIN
    ]
    if not larger:
        return ""
    i = max(larger, key=lambda i: details[i].width * details[i].height)
    d = details[i]
    w = d.width * d.bandwidth_x / k.bandwidth_x
    h = d.height * d.bandwidth_y / k.bandwidth_y
    name = Path(records[i].path).name
    return f"; {name} is {d.width} × {d.height} but upscaled from ~{round(w)} × {round(h)}"


def find_duplicates(
    vectors: np.ndarray,
    records: list[FileRecord],
    threshold: float,
    neighbours: int = NEIGHBOURS,
    root: Path | None = None,
) -> list[DuplicateGroup]:
    """Groups of images linked by similarity >= `threshold` (or by the same content hash),
    largest group first. `records[i]` describes `vectors[i]`.

    With `root` (the folder the paths are relative to), the copy to keep is judged by
    what its pixels hold: each group member's file is read (bounded) once per content,
    so call this in a worker. Links and files outside `root` are never kept when a real
    file is in the group, and are marked `protected`. Memory per group grows with its
    size, never with its square.
    """
    check_threshold(threshold)
    if len(records) < 2:
        return []
    a, b, sims = _links(vectors, records, threshold, neighbours)
    return _groups(len(records), a, b, sims, lambda rows: [records[i] for i in rows], root)


def collection_duplicates(
    col: Collection,
    threshold: float,
    neighbours: int = NEIGHBOURS,
    progress: Progress | None = None,
    judge_pixels: bool = True,
) -> list[DuplicateGroup]:
    """`find_duplicates` over a whole collection from its index's neighbours: memory
    grows with the number of images (a few numbers each), never with their vectors, and
    only the groups' members' records are read. `rows` are indices in `col.paths`.
    A cancelled `progress` stops it with InterruptedError."""
    check_threshold(threshold)
    if len(col) < 2:
        return []
    units, first, copies = _units(col)
    rows, near, sims = _neighbours(col, neighbours, progress)
    holder = first[np.searchsorted(units, rows)]  # the index may have left damaged rows out
    linked = sims >= threshold
    a = holder[np.repeat(np.arange(len(rows)), near.shape[1])[linked.ravel()]]
    b = holder[near[linked]]
    a, b = np.concatenate([a, copies[0]]), np.concatenate([b, copies[1]])
    s = np.concatenate([sims[linked], np.ones(len(copies[0]), np.float32)])

    def records_of(members: list[int]) -> list[FileRecord]:
        return col.store.records_for([col.paths[i] for i in members])

    return _groups(len(col), a, b, s, records_of, col.root if judge_pixels else None)


def _neighbours(
    col: Collection, k: int, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The index's neighbours of every row; over segments, from the saved graph."""
    from visualsearch.core import neighbour_graph
    from visualsearch.core.vector_index import SegmentIndex

    if isinstance(col.index, SegmentIndex):
        return neighbour_graph.neighbours(col.index, k, progress)
    return col.index.neighbours(k, progress)


def _units(col: Collection) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The collection's vector rows (sorted), the first path holding each, and links
    (a, b) between paths holding the same row (identical files)."""
    by_row, sorted_rows = col.by_row, col.sorted_rows
    new = np.r_[True, sorted_rows[1:] != sorted_rows[:-1]]
    starts = np.flatnonzero(new)
    run = np.cumsum(new) - 1
    same = np.flatnonzero(~new)
    return sorted_rows[starts], by_row[starts], (by_row[starts[run[same]]], by_row[same])


def _groups(
    n: int,
    a: np.ndarray,
    b: np.ndarray,
    sims: np.ndarray,
    records_of: Callable[[list[int]], list[FileRecord]],
    root: Path | None,
) -> list[DuplicateGroup]:
    """The groups of `n` images joined by links (a, b, similarity)."""
    labels = linked_groups(n, a, b)
    # each image's best link: the weakest of those joins its group
    best = np.full(n, -1.0, np.float32)
    np.maximum.at(best, a, sims)
    np.maximum.at(best, b, sims)
    order = np.argsort(labels, kind="stable")
    bounds = np.cumsum(np.bincount(labels))
    starts = np.concatenate([[0], bounds[:-1]])
    grouped = [order[s:e].tolist() for s, e in zip(starts, bounds, strict=True) if e - s > 1]
    flat = [i for members in grouped for i in members]
    record = dict(zip(flat, records_of(flat), strict=True))
    measured: dict[str, ImageDetail | None] = {}
    groups = []
    for members in grouped:
        recs = [record[i] for i in members]
        exact = recs[0].hash is not None and all(r.hash == recs[0].hash for r in recs)
        protected = [link_problem(root / r.path, root) for r in recs] if root else None
        details = [_detail(root, r, measured) for r in recs] if root else None
        keep, reason = suggest_keeper(recs, details, protected)
        members.insert(0, members.pop(keep))
        if protected:
            protected.insert(0, protected.pop(keep))
        groups.append(
            DuplicateGroup(
                members,
                1.0 if exact else float(best[members].min()),
                exact,
                reason,
                [record[i] for i in members],
                protected or [""] * len(members),
            )
        )
    groups.sort(key=lambda g: (-len(g.rows), -g.similarity))
    return groups


def _links(
    vectors: np.ndarray, records: list[FileRecord], threshold: float, neighbours: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, similarity) for each link: a nearest neighbour at `threshold` or above, or
    the same content hash (exact copies, even beyond the nearest neighbours)."""
    idx, sims = self_knn(vectors, neighbours)
    rows = np.repeat(np.arange(len(vectors)), idx.shape[1])
    linked = sims.ravel() >= threshold
    a, b, s = [rows[linked]], [idx.ravel()[linked]], [sims.ravel()[linked]]
    by_hash: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        if r.hash:
            by_hash.setdefault(r.hash, []).append(i)
    for same in by_hash.values():
        if len(same) > 1:
            a.append(np.full(len(same) - 1, same[0]))
            b.append(np.array(same[1:]))
            s.append(np.ones(len(same) - 1, np.float32))
    return np.concatenate(a), np.concatenate(b), np.concatenate(s).astype(np.float32)


def _detail(
    root: Path, record: FileRecord, measured: dict[str, ImageDetail | None]
) -> ImageDetail | None:
    """The file's detail, measured once per content (identical files share it)."""
    key = record.hash or f"path:{record.path}"
    if key not in measured:
        measured[key] = measure_detail(Path(root) / record.path)
    return measured[key]


ODD_NEIGHBOURS = 5  # an odd one out is unlike its 5 nearest images


def outlier_scores(vectors: np.ndarray, neighbours: int = ODD_NEIGHBOURS) -> np.ndarray:
    """How unlike its nearest neighbours each image is: 1 - mean similarity to its
    `neighbours` nearest images (0: has close copies, ~1: nothing like it)."""
    if len(vectors) < 2:
        return np.zeros(len(vectors), np.float32)
    _, sims = self_knn(vectors, neighbours)
    return (1.0 - sims.mean(1)).astype(np.float32)


def odd_ones_out(
    vectors: np.ndarray, limit: int | None = None, neighbours: int = ODD_NEIGHBOURS
) -> list[tuple[int, float]]:
    """(row, score) of the images least like any other, the oddest first (ties in row
    order), at most `limit` of them; the score is `outlier_scores`'."""
    scores = outlier_scores(vectors, neighbours)
    order = np.argsort(-scores, kind="stable")[:limit]
    return [(int(r), float(scores[r])) for r in order]


def collection_odd_ones_out(
    col: Collection,
    limit: int | None = None,
    neighbours: int = ODD_NEIGHBOURS,
    progress: Progress | None = None,
) -> list[tuple[int, float]]:
    """`odd_ones_out` over a whole collection from its index's neighbours (rows are
    indices in `col.paths`). An identical copy counts as a neighbour at similarity 1."""
    if len(col) < 2:
        return [(i, 0.0) for i in range(len(col))][:limit]
    rows, _, sims = _neighbours(col, neighbours, progress)
    at = np.searchsorted(col.sorted_rows, rows)
    copies = np.minimum(np.searchsorted(col.sorted_rows, rows, "right") - at - 1, neighbours)
    width = min(neighbours, sims.shape[1])
    kept = np.arange(width)[None, :] < (neighbours - copies)[:, None]
    kept &= np.isfinite(sims[:, :width])
    total = np.where(kept, sims[:, :width], 0.0).sum(1) + copies
    count = kept.sum(1) + copies
    unit_scores = np.where(count > 0, 1.0 - total / np.maximum(count, 1), 0.0)
    # damaged vectors the index left out score 0: never reported as odd
    scores = np.zeros(len(col), np.float32)
    in_index = np.isin(col.rows, rows)
    scores[in_index] = unit_scores[np.searchsorted(rows, col.rows[in_index])]
    order = np.argsort(-scores, kind="stable")[:limit]
    return [(int(r), float(scores[r])) for r in order]


def group_dicts(groups: list[DuplicateGroup]) -> list[dict]:
    """The groups as plain data (the CLI's JSON, the CSV's rows): how alike, whether the
    files are identical, the copy to keep and why, and each member, the keeper first,
    with its path in the folder, pixel size, bytes, format and date taken."""
    return [
        {
            "similarity": round(g.similarity, 4),
            "exact": g.exact,
            "keep": g.members[0].path,
            "reason": g.keep_reason,
            "images": [
                {
                    "path": r.path,
                    "width": r.width,
                    "height": r.height,
                    "bytes": r.size,
                    "format": r.format,
                    "taken": r.taken,
                }
                for r in g.members
            ],
        }
        for g in groups
    ]


CSV_COLUMNS = (
    "group",
    "keep",
    "path",
    "width",
    "height",
    "bytes",
    "format",
    "taken",
    "similarity",
    "reason",
)


def write_groups_csv(groups: list[DuplicateGroup], root: Path, path: Path) -> Path:
    """The groups as CSV (`CSV_COLUMNS`, one row per image, absolute paths). An existing
    file is never overwritten: a suffix is added."""
    import csv

    from visualsearch.core.safe_files import write_new_text

    def write(f) -> None:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for g_no, g in enumerate(group_dicts(groups), 1):
            for i, im in enumerate(g["images"]):
                keep = i == 0
                writer.writerow(
                    [
                        g_no,
                        "yes" if keep else "",
                        str(Path(root) / im["path"]),
                        im["width"],
                        im["height"],
                        im["bytes"],
                        im["format"],
                        im["taken"] or "",
                        f"{g['similarity']:.4f}",
                        g["reason"] if keep else "",
                    ]
                )

    return write_new_text(path, write)
