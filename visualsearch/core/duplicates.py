"""Duplicate groups (same content, or vectors closer than a threshold), the copy to
keep in each, and the odd ones out. Built on each image's nearest neighbours, so
100,000 images never need an n × n matrix."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from visualsearch.core.neighbours import linked_groups, self_knn, similar_pairs
from visualsearch.core.store import FileRecord

NEIGHBOURS = 10  # how many nearest images are checked for each image

# the threshold presets, relative to the model's near-duplicate similarity
IDENTICAL = 0.97


def presets(near_duplicate: float) -> dict[str, float]:
    """'identical' (re-saved copies), 'near-identical' (crops, resizes, edits: the model's
    measured threshold), 'similar' (the same scene or subject)."""
    return {
        "identical": IDENTICAL,
        "near-identical": near_duplicate,
        "similar": round(near_duplicate - 0.12, 2),
    }


@dataclass
class DuplicateGroup:
    rows: list[int]  # images of the group, the suggested keeper first
    similarity: float  # the lowest similarity that joins the group
    exact: bool  # all the same bytes
    keep_reason: str = ""
    members: list[FileRecord] = field(default_factory=list)


def suggest_keeper(records: list[FileRecord]) -> tuple[int, str]:
    """Index of the copy to keep, and why: highest resolution, then largest file, then
    oldest (EXIF date, else modification time), then shortest path."""

    def pixels(r: FileRecord) -> int:
        return (r.width or 0) * (r.height or 0)

    def age(r: FileRecord) -> tuple[str, int]:
        return (r.taken or "9999", r.mtime_ns)

    order = sorted(
        range(len(records)),
        key=lambda i: (
            -pixels(records[i]),
            -records[i].size,
            age(records[i]),
            len(records[i].path),
        ),
    )
    best, runner = records[order[0]], records[order[1]] if len(order) > 1 else None
    if runner is None:
        reason = "only copy"
    elif pixels(best) > pixels(runner):
        reason = f"highest resolution ({best.width} × {best.height})"
    elif best.size > runner.size:
        reason = f"largest file at the same resolution ({best.size / 1e6:.1f} MB)"
    elif age(best) < age(runner):
        reason = "oldest" + (f" (taken {best.taken})" if best.taken else " (modified first)")
    else:
        reason = "identical in size and date; shortest path"
    return order[0], reason


def find_duplicates(
    vectors: np.ndarray,
    records: list[FileRecord],
    threshold: float,
    neighbours: int = NEIGHBOURS,
) -> list[DuplicateGroup]:
    """Groups of images linked by similarity >= `threshold` (or by the same content hash),
    largest group first. `records[i]` describes `vectors[i]`."""
    n = len(records)
    if n < 2:
        return []
    linked_a, linked_b = similar_pairs(vectors, threshold, neighbours)
    a, b = [linked_a], [linked_b]
    by_hash: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        if r.hash:
            by_hash.setdefault(r.hash, []).append(i)
    for same in by_hash.values():  # exact copies, even beyond the nearest neighbours
        if len(same) > 1:
            a.append(np.full(len(same) - 1, same[0]))
            b.append(np.array(same[1:]))
    labels = linked_groups(n, np.concatenate(a), np.concatenate(b))
    sizes = np.bincount(labels)
    groups = []
    for label in np.flatnonzero(sizes > 1):
        members = np.flatnonzero(labels == label).tolist()
        recs = [records[i] for i in members]
        keep, reason = suggest_keeper(recs)
        members.insert(0, members.pop(keep))
        sub = vectors[members]
        # each member's best link inside the group: the weakest of those joined it
        inner = sub @ sub.T
        np.fill_diagonal(inner, -1.0)
        exact = len({r.hash for r in recs}) == 1
        groups.append(
            DuplicateGroup(
                members,
                1.0 if exact else float(inner.max(1).min()),
                exact,
                reason,
                [records[i] for i in members],
            )
        )
    groups.sort(key=lambda g: (-len(g.rows), -g.similarity))
    return groups


def outlier_scores(vectors: np.ndarray, neighbours: int = 5) -> np.ndarray:
    """How unlike its nearest neighbours each image is: 1 - mean similarity to its
    `neighbours` nearest images (0: has close copies, ~1: nothing like it)."""
    if len(vectors) < 2:
        return np.zeros(len(vectors), np.float32)
    _, sims = self_knn(vectors, neighbours)
    return (1.0 - sims.mean(1)).astype(np.float32)


def write_groups_csv(groups: list[DuplicateGroup], root: Path, path: Path) -> Path:
    """The groups as CSV (group, keep, path, width, height, bytes, format, taken,
    similarity, reason). An existing file is never overwritten: a suffix is added."""
    import csv

    from visualsearch.core.export import write_new_text

    def write(f) -> None:
        writer = csv.writer(f)
        writer.writerow(
            [
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
            ]
        )
        for g_no, g in enumerate(groups, 1):
            for i, r in enumerate(g.members):
                keep = i == 0
                writer.writerow(
                    [
                        g_no,
                        "yes" if keep else "",
                        str(Path(root) / r.path),
                        r.width,
                        r.height,
                        r.size,
                        r.format,
                        r.taken or "",
                        f"{g.similarity:.4f}",
                        g.keep_reason if keep else "",
                    ]
                )

    return write_new_text(path, write)
