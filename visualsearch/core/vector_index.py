"""Nearest-neighbour search over unit vectors: exact (numpy) or Annoy.

Exact search is one matrix-vector product and always correct; Annoy answers in
about a millisecond at any size but is approximate and must be built. The
crossover is measured by bench/search.py (see ANNOY_THRESHOLD).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from visualsearch.core.encoders.base import save_array
from visualsearch.core.integrity import verified_checksum
from visualsearch.core.store import VectorSet, slug

# bench/search.py on 2 cores, 1280-d, k=10: exact search took 1.8 ms at 10k vectors
# and 20 ms at 100k; Annoy (50 trees, search factor 20) 3.0 ms and 6.3 ms with
# recall@10 of 1.00 and 0.986 (factor 4 gave 1.8 ms but only 0.90 recall at 100k).
# Below 20k vectors exact search is as fast and exact, so we use it there.
ANNOY_THRESHOLD = 20_000
ANNOY_TREES = 50
# A saved Annoy segment is reused for a changed collection while the images it does not
# hold (searched exactly) and the ones it holds that are gone or changed (filtered out)
# stay below this share: one new photo no longer rebuilds the index (≈ 40 s at 100k).
SEGMENT_SLACK = 0.10
SEGMENT_SLACK_MIN = 2_000
# Nodes Annoy inspects per query = k × trees × this: recall matters more than 4 ms.
ANNOY_SEARCH_FACTOR = 20


class VectorIndex(Protocol):
    kind: str

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Unit query vector → (row indices, cosine scores), best first."""
        ...


class ExactIndex:
    kind = "exact"

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.matrix)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.matrix)
        if n == 0 or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores = self.matrix @ np.asarray(query, np.float32)
        k = min(k, n)
        top = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
        order = top[np.argsort(-scores[top], kind="stable")]
        return order, scores[order]


class AnnoyVectorIndex:
    kind = "annoy"

    def __init__(self, annoy_index, size: int, trees: int) -> None:
        self._index = annoy_index
        self._size = size
        self._trees = trees

    def __len__(self) -> int:
        return self._size

    @classmethod
    def build(
        cls, matrix: np.ndarray, trees: int = ANNOY_TREES, path: Path | None = None, seed: int = 42
    ) -> AnnoyVectorIndex:
        from annoy import AnnoyIndex

        n, dim = matrix.shape
        index = AnnoyIndex(dim, "angular")
        index.set_seed(seed)
        if path is not None:
            # Builds straight into the file (no second copy in memory), then maps it.
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            index.on_disk_build(str(tmp))
        for i, row in enumerate(np.asarray(matrix, np.float32)):
            index.add_item(i, row)
        index.build(trees, n_jobs=-1)
        if path is not None:
            index.unload()
            os.replace(tmp, path)
            return cls.load(path, dim, n, trees)
        return cls(index, n, trees)

    @classmethod
    def load(cls, path: Path, dim: int, size: int, trees: int = ANNOY_TREES) -> AnnoyVectorIndex:
        from annoy import AnnoyIndex

        index = AnnoyIndex(dim, "angular")
        index.load(str(path))  # memory-mapped
        if index.get_n_items() != size:
            raise ValueError(f"index file {path} has {index.get_n_items()} items, expected {size}")
        return cls(index, size, trees)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self._size)
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        ids, dist = self._index.get_nns_by_vector(
            np.asarray(query, np.float32).tolist(),
            k,
            search_k=k * self._trees * ANNOY_SEARCH_FACTOR,
            include_distances=True,
        )
        # Annoy's angular distance is sqrt(2 - 2cos) for unit vectors.
        d = np.asarray(dist, np.float32)
        return np.asarray(ids, np.int64), 1.0 - d * d / 2.0


class SegmentedIndex:
    """A sealed Annoy segment built earlier, plus the images added since (searched
    exactly) and tombstones for those it holds that are gone or changed."""

    kind = "segmented"

    def __init__(
        self,
        sealed: AnnoyVectorIndex,
        sealed_rows: np.ndarray,  # sealed item → current row, or -1 (a tombstone)
        matrix: np.ndarray,
        fresh_rows: np.ndarray,  # current rows the sealed segment does not hold
    ) -> None:
        self.sealed, self.sealed_rows = sealed, sealed_rows
        self.dead = int((sealed_rows < 0).sum())
        self.fresh_rows = fresh_rows
        self.fresh = ExactIndex(matrix[fresh_rows]) if len(fresh_rows) else None
        self._size = len(matrix)

    def __len__(self) -> int:
        return self._size

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        # tombstones are few among any k neighbours: asking for k + all of them made Annoy
        # inspect 100× the nodes (84 ms a query at 100k with 1,000 deleted, not 6)
        want = k + min(self.dead, k)
        while True:
            ids, scores = self.sealed.search(query, want)
            rows = self.sealed_rows[ids]
            alive = rows >= 0
            if alive.sum() >= k or want >= len(self.sealed):
                break
            want = min(want * 4, len(self.sealed))
        rows, scores = rows[alive], scores[alive]
        if self.fresh is not None:
            f_ids, f_scores = self.fresh.search(query, k)
            rows = np.concatenate([rows, self.fresh_rows[f_ids]])
            scores = np.concatenate([scores, f_scores])
        order = np.argsort(-scores, kind="stable")[:k]
        return rows[order], scores[order]


def item_keys(paths: list[str], hashes: list[str]) -> np.ndarray:
    """One 16-byte key per row for (path, content): what a sealed segment's items were."""
    return np.array(
        [
            hashlib.blake2b(f"{p}\0{h}".encode("utf-8", "surrogateescape"), digest_size=16).digest()
            for p, h in zip(paths, hashes, strict=True)
        ],
        dtype="S16",
    ).reshape(len(paths))


def keys_path(store_dir: Path, model: str) -> Path:
    return index_path(store_dir, model).with_suffix(".keys.npy")


def index_path(store_dir: Path, model: str) -> Path:
    return Path(store_dir) / f"index-{slug(model)}.ann"


@dataclass(frozen=True)
class IndexStamp:
    """What a saved index file was built from, and how to recognise it unchanged."""

    content: str  # the VectorSet key of the vectors it holds
    size: int
    sha256: str

    def intact(self, path: Path) -> bool:
        """True if `path` is this very file (size and checksum)."""
        try:
            return path.stat().st_size == self.size and verified_checksum(path) == self.sha256
        except OSError:
            return False


def open_index(
    store,
    model: str,
    vectors: VectorSet | None = None,
    threshold: int = ANNOY_THRESHOLD,
) -> VectorIndex:
    """The index for `model` in `store`: the saved Annoy file when it was built from these
    very vectors and is intact (size and checksum), else a new one built and saved."""
    vectors = vectors if vectors is not None else store.load_vector_set(model)
    key = f"index:{model}"
    saved = _stamp(store.get_meta(key))
    keys = (lambda: item_keys(vectors.paths, vectors.hashes)) if vectors.hashes else None
    index, stamp = build_or_load(
        vectors.matrix, store.directory, model, vectors.key, saved, threshold, keys
    )
    if stamp is not None and stamp != saved:
        store.set_meta(key, json.dumps(asdict(stamp)))
    return index


def _stamp(text: str | None) -> IndexStamp | None:
    try:
        return IndexStamp(**json.loads(text)) if text else None
    except (TypeError, ValueError):
        return None


def build_or_load(
    matrix: np.ndarray,
    store_dir: Path,
    model: str,
    content: str,
    saved: IndexStamp | None,
    threshold: int = ANNOY_THRESHOLD,
    keys: Callable[[], np.ndarray] | None = None,
) -> tuple[VectorIndex, IndexStamp | None]:
    """The right index for this many vectors, and the stamp of its file (None: exact).
    A saved Annoy file is reused only if `saved` vouches for it; a damaged one is rebuilt.
    `keys` gives each row's `item_keys`; asked for only when a segment is reused or built
    (90 ms at 100k rows: not on every open of an unchanged or small collection)."""
    n = len(matrix)
    if n < threshold or n == 0:
        return ExactIndex(matrix), None
    path = index_path(store_dir, model)
    intact = saved is not None and saved.intact(path)  # one checksum of the file, not two
    if intact and saved.content == content:
        try:
            return AnnoyVectorIndex.load(path, matrix.shape[1], n), saved
        except (OSError, ValueError):
            pass
    row_keys = keys() if keys is not None else None
    if intact and row_keys is not None and saved.content != content:
        segmented = _segmented(path, keys_path(store_dir, model), matrix, row_keys)
        if segmented is not None:
            return segmented, saved  # the file still holds what `saved` says
    index = AnnoyVectorIndex.build(matrix, path=path)
    if row_keys is not None:
        save_array(keys_path(store_dir, model), row_keys)
    return index, IndexStamp(content, path.stat().st_size, verified_checksum(path))


def _segmented(
    path: Path, keys_file: Path, matrix: np.ndarray, keys: np.ndarray
) -> SegmentedIndex | None:
    """The saved (intact) segment with the changes since, when they are few."""
    try:
        sealed_keys = np.load(keys_file, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if sealed_keys.dtype != keys.dtype or sealed_keys.ndim != 1:
        return None
    row_of = {key: row for row, key in enumerate(keys.tolist())}
    sealed_rows = np.array([row_of.pop(key, -1) for key in sealed_keys.tolist()], np.int64)
    fresh_rows = np.array(sorted(row_of.values()), np.int64)
    changes = len(fresh_rows) + int((sealed_rows < 0).sum())
    if changes > max(SEGMENT_SLACK_MIN, SEGMENT_SLACK * len(matrix)):
        return None  # rebuilt: a sealed segment this far from the collection costs recall
    try:
        sealed = AnnoyVectorIndex.load(path, matrix.shape[1], len(sealed_keys))
    except (OSError, ValueError):
        return None
    return SegmentedIndex(sealed, sealed_rows, matrix, fresh_rows)
