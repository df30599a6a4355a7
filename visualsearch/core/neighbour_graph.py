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
from pathlib import Path

import numpy as np

from visualsearch.core.encoders.base import save_npz
from visualsearch.core.integrity import MAX_SIMILARITY
from visualsearch.core.progress import Progress
from visualsearch.core.store import slug
from visualsearch.core.vector_file import VectorFile
from visualsearch.core.vector_index import SegmentIndex

log = logging.getLogger(__name__)

GRAPH_K = 10  # neighbours kept per image: duplicates use 10, odd ones out 5
# A new image is asked for this many neighbours, so that it also enters the lists of
# images that are not among its own 10 nearest: a burst of 12 shots of one photo are
# nearer each other than to the photo, and only asking further puts them in its list.
REACH = 3 * GRAPH_K
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
    asked_near, asked_sims = index.nearest_rows(ask, REACH, progress)
    near = np.concatenate([near, np.full((len(new), GRAPH_K), -1, np.int64)])
    sims = np.concatenate([sims, np.full((len(new), GRAPH_K), -np.inf, np.float32)])
    order = np.argsort(np.concatenate([old_rows[kept], new]), kind="stable")
    near, sims = near[order], sims[order]  # in `rows` order now
    at = np.searchsorted(rows, ask)
    near[at], sims[at] = asked_near[:, :GRAPH_K], asked_sims[:, :GRAPH_K]
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


def _keys_digest(vectors: VectorFile, rows: np.ndarray) -> str:
    """What the rows hold (their content keys): a file cut short and filled again keeps
    its epoch, but its rows then hold other images."""
    import xxhash

    return xxhash.xxh3_128(np.ascontiguousarray(vectors.keys[rows]).tobytes()).hexdigest()


def _load(vectors: VectorFile) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The saved graph if it belongs to this vector file and is whole and sound (rows
    sorted, lists of other rows best first, similarities of unit vectors), else None."""
    path = graph_path(vectors)
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as data:
            if str(data["epoch"]) != vectors.epoch:
                return None
            rows, near, sims = data["rows"], data["near"], data["sims"]
            whole = str(data["checksum"]) == _checksum(rows, near, sims)
            if (
                whole
                and _sound(rows, near, sims, len(vectors))
                and str(data["keys"]) == _keys_digest(vectors, rows)
            ):
                return rows.astype(np.int64), near.astype(np.int64), sims.astype(np.float32)
    except FileNotFoundError:
        return None
    except Exception as exc:  # torn or garbled: computed again
        log.warning("neighbour graph %s is damaged (%s); it is computed again", path.name, exc)
        return None
    log.warning("neighbour graph %s does not fit its vector file; computed again", path.name)
    return None


def _checksum(*arrays: np.ndarray) -> str:
    """XXH3 of the arrays as stored: a flipped bit reads as damage."""
    import xxhash

    digest = xxhash.xxh3_128()
    for a in arrays:
        digest.update(str(a.dtype).encode() + str(a.shape).encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


def _sound(rows: np.ndarray, near: np.ndarray, sims: np.ndarray, size: int) -> bool:
    n = len(rows) if rows.ndim == 1 else -1
    if not (
        n >= 0
        and rows.dtype.kind in "iu"
        and near.dtype.kind in "iu"
        and sims.dtype.kind == "f"
        and near.shape == (n, GRAPH_K)
        and sims.shape == (n, GRAPH_K)
    ):
        return False
    if not n:
        return True
    listed = near >= 0
    return bool(
        rows.min() >= 0
        and rows.max() < size
        and np.all(np.diff(rows) > 0)
        and near.min() >= -1
        and near.max() < size
        and not (near == rows[:, None]).any()
        and np.array_equal(listed, np.isfinite(sims))
        and np.all(np.abs(sims[listed]) <= MAX_SIMILARITY)
        and np.all(np.diff(np.where(listed, sims, -2.0), axis=1) <= 0)
    )


def _save(vectors: VectorFile, rows: np.ndarray, near: np.ndarray, sims: np.ndarray) -> None:
    """Written whole or not at all (`save_npz`); a graph that cannot be written (a full
    disk) is only not kept."""
    rows, sims = rows.astype(np.int64), sims.astype(np.float32)
    near = near.astype(np.int32)  # rows of the vector file: 40 MB at 1M, not 80
    try:
        save_npz(
            graph_path(vectors),
            epoch=vectors.epoch,
            rows=rows,
            near=near,
            sims=sims,
            keys=_keys_digest(vectors, rows),
            checksum=_checksum(rows, near, sims),
        )
    except OSError as exc:
        log.warning("neighbour graph not kept: %s", exc)
