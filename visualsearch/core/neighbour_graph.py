"""Each image's nearest neighbours, kept beside the vector file and brought up to date
when images come and go: duplicates and odd ones out over a million images cost one
pass over the index once (~6 min at 1M × 1280-d on 2 cores), then seconds per change —
another threshold, the odd ones out after the duplicates, 1,000 new photos.

Lists are of vector-file rows, which never change once written (the file's epoch says
when it was made again: then everything is computed again). A new row gets its own
list from the index and enters the lists of its neighbours where it is nearer than
their last; a row that is gone leaves every list, and a list it left is asked again.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from visualsearch.core.progress import Progress
from visualsearch.core.store import slug
from visualsearch.core.vector_file import VectorFile
from visualsearch.core.vector_index import SegmentIndex

log = logging.getLogger(__name__)

GRAPH_K = 10  # neighbours kept per image: duplicates use 10, odd ones out 5
# past this share of the images added or gone, the whole graph is computed again
UPDATE_SHARE = 0.2


def graph_path(vectors: VectorFile) -> Path:
    return vectors.vectors_path.parent / f"neighbours-{slug(vectors.model)}.npz"


def neighbours(
    index: SegmentIndex, k: int, progress: Progress | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`index.neighbours(k)` (k ≤ GRAPH_K) from the saved graph, brought up to date."""
    if k > GRAPH_K:
        return index.neighbours(k, progress)
    vectors = index.vectors
    rows = np.flatnonzero(index.live)
    saved = _load(vectors)
    if saved is None:
        near, sims = index.nearest_rows(rows, GRAPH_K, progress)
        _save(vectors, rows, near, sims)
    else:
        near, sims, changed = _update(index, rows, *saved, progress)
        if changed:
            _save(vectors, rows, near, sims)
    near, sims = near[:, :k], sims[:, :k]
    return rows, np.where(near >= 0, np.searchsorted(rows, near), -1), sims


def _update(
    index: SegmentIndex,
    rows: np.ndarray,
    old_rows: np.ndarray,
    old_near: np.ndarray,
    old_sims: np.ndarray,
    progress: Progress | None,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The graph for `rows` from the saved one, and whether it changed."""
    kept = np.isin(old_rows, rows, assume_unique=True)
    new = rows[~np.isin(rows, old_rows, assume_unique=True)]
    if len(new) + (~kept).sum() > UPDATE_SHARE * max(len(rows), 1):
        return *index.nearest_rows(rows, GRAPH_K, progress), True
    near, sims = old_near[kept], old_sims[kept]
    gone = (near >= 0) & ~index.live[np.maximum(near, 0)]
    # a list that lost a neighbour is asked again, as are the new rows
    ask = np.concatenate([old_rows[kept][gone.any(1)], new])
    if not len(ask):
        return near, sims, bool((~kept).any())
    asked_near, asked_sims = index.nearest_rows(ask, GRAPH_K, progress)
    near = np.concatenate([near, np.full((len(new), GRAPH_K), -1, np.int64)])
    sims = np.concatenate([sims, np.full((len(new), GRAPH_K), -np.inf, np.float32)])
    order = np.argsort(np.concatenate([old_rows[kept], new]), kind="stable")
    near, sims = near[order], sims[order]  # in `rows` order now
    at = np.searchsorted(rows, ask)
    near[at], sims[at] = asked_near, asked_sims
    _enter(rows, near, sims, new, asked_near[-len(new) :], asked_sims[-len(new) :])
    return near, sims, True


def _enter(
    rows: np.ndarray,
    near: np.ndarray,
    sims: np.ndarray,
    new: np.ndarray,
    new_near: np.ndarray,
    new_sims: np.ndarray,
) -> None:
    """Each new row joins the lists of its own neighbours where it is nearer than their
    last entry (similarity is symmetric), in place."""
    if not len(new):
        return
    src = np.repeat(new, new_near.shape[1])
    dst, s = new_near.ravel(), new_sims.ravel()
    ok = dst >= 0
    for row, j, sim in zip(src[ok].tolist(), dst[ok].tolist(), s[ok].tolist(), strict=True):
        i = int(np.searchsorted(rows, j))
        if sim <= sims[i, -1] or row in near[i]:
            continue
        at = int(np.searchsorted(-sims[i], -sim, side="right"))
        near[i, at + 1 :] = near[i, at:-1].copy()
        sims[i, at + 1 :] = sims[i, at:-1].copy()
        near[i, at], sims[i, at] = row, sim


def _load(vectors: VectorFile) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The saved graph if it belongs to this vector file and is whole, else None."""
    path = graph_path(vectors)
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as data:
            if str(data["epoch"]) != vectors.epoch:
                return None
            rows, near, sims = data["rows"], data["near"], data["sims"]
    except FileNotFoundError:
        return None
    except Exception as exc:  # torn or garbled: computed again
        log.warning("neighbour graph %s is damaged (%s); it is computed again", path.name, exc)
        return None
    n = len(rows)
    if (
        rows.ndim != 1
        or near.shape != (n, GRAPH_K)
        or sims.shape != (n, GRAPH_K)
        or (n and (rows.min() < 0 or np.any(np.diff(rows) <= 0)))
        or (n and (near.min() < -1 or near.max() >= len(vectors)))
        or np.isnan(sims).any()
    ):
        log.warning("neighbour graph %s does not fit its vector file; computed again", path.name)
        return None
    return rows.astype(np.int64), near.astype(np.int64), sims.astype(np.float32)


def _save(vectors: VectorFile, rows: np.ndarray, near: np.ndarray, sims: np.ndarray) -> None:
    """Written under a name of its own, then renamed: a reader sees a whole graph or the
    one before. A graph that cannot be written (a full disk) is only not kept."""
    path = graph_path(vectors)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.npz", dir=path.parent)
    except OSError as exc:
        log.warning("neighbour graph not kept: %s", exc)
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(
                fh,
                epoch=vectors.epoch,
                rows=rows.astype(np.int64),
                near=near.astype(np.int32),  # rows of the vector file: 40 MB at 1M, not 80
                sims=sims.astype(np.float32),
            )
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("neighbour graph not kept: %s", exc)
        Path(tmp).unlink(missing_ok=True)
