"""Nearest-neighbour search over a model's `VectorFile`: exact below ANNOY_THRESHOLD
rows, else the sealed Annoy segments (core.segments) with the rows they do not hold yet
searched exactly, re-ranked with the full vectors. Opening never builds anything.

Exact search is one matrix-vector product and always correct; Annoy answers in about a
millisecond at any size but is approximate and must be built, which the background
maintenance does (bench/search.py measured the crossover, ANNOY_THRESHOLD).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np

from visualsearch.core import segments
from visualsearch.core.integrity import MAX_SIMILARITY, valid_vectors
from visualsearch.core.progress import NullProgress, Progress
from visualsearch.core.store import Store
from visualsearch.core.vector_file import VectorFile

log = logging.getLogger(__name__)

ANNOY_THRESHOLD = segments.ANNOY_THRESHOLD
ANNOY_TREES = 50
# rows searched exactly from a float32 copy in memory; more (an old store's first open,
# before its segments are built) are scanned from the mapped file in chunks
IN_MEMORY_ROWS = 60_000
# A pass over every row (duplicates, odd ones out): candidates per segment for each row,
# and rows per step. At 1M × 1280-d, 2 cores: see bench/scale.py.
NEIGHBOUR_CANDIDATES = 20
NEIGHBOUR_CHUNK = 4096
# Nodes Annoy inspects per query = k × trees × this: recall matters more than 4 ms.
ANNOY_SEARCH_FACTOR = 20


class VectorIndex(Protocol):
    kind: str

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Unit query vector → (vector-file rows, cosine scores), best first."""
        ...

    def neighbours(
        self, k: int, progress: Progress | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every searchable row's `k` nearest other rows: (rows (n,) sorted, neighbours
        (n, ≤k) as positions in `rows` with -1 for none, similarities with -inf for none).
        A cancelled `progress` stops it with InterruptedError."""
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


class ExactRows:
    """Exact search over some rows of a vector file: a float32 copy when they are few,
    else a scan of the mapped file in chunks (bounded memory; ~2.5 s at 1M × 1280, most
    of it turning float16 into float32: only while an old store's segments are built)."""

    kind = "exact"

    def __init__(self, vectors: VectorFile, rows: np.ndarray) -> None:
        self.vectors, self.rows = vectors, np.asarray(rows, np.int64)
        self._copy: ExactIndex | None = None
        if len(self.rows) <= IN_MEMORY_ROWS:
            self.rows, matrix = vectors.read_sound(self.rows)
            self._copy = ExactIndex(matrix)

    def __len__(self) -> int:
        return len(self.rows)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k <= 0 or len(self.rows) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if self._copy is not None:
            idx, scores = self._copy.search(query, k)
            return self.rows[idx], scores
        query = np.asarray(query, np.float32)
        want = 2 * k + 8  # a few spare: damaged rows are checked among the best only
        best_rows, best_scores = np.zeros(0, np.int64), np.zeros(0, np.float32)
        for lo in range(0, len(self.rows), 65_536):
            rows = self.rows[lo : lo + 65_536]
            with np.errstate(all="ignore"):
                scores = (self.vectors.read(rows) @ query).astype(np.float32)
            scores[~np.isfinite(scores) | (scores > MAX_SIMILARITY)] = -np.inf
            best_rows = np.concatenate([best_rows, rows])
            best_scores = np.concatenate([best_scores, scores])
            if len(best_rows) > want:
                top = np.argpartition(-best_scores, want - 1)[:want]
                best_rows, best_scores = best_rows[top], best_scores[top]
        order = np.argsort(-best_scores, kind="stable")
        order = order[np.isfinite(best_scores[order])]
        sound, _ = self.vectors.read_sound(best_rows[order])
        order = order[np.isin(best_rows[order], sound)][:k]
        return best_rows[order], best_scores[order]

    def neighbours(
        self, k: int, progress: Progress | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from visualsearch.core.neighbours import self_knn

        if self._copy is not None:
            rows, matrix = self.rows, self._copy.matrix
        else:  # only until an old store's segments are built: every vector in memory
            rows, matrix = self.vectors.read_sound(self.rows)
        order = np.argsort(rows, kind="stable")
        idx, sims = self_knn(matrix[order], k)
        if progress is not None and progress.cancelled():
            raise InterruptedError("cancelled")
        return rows[order], idx, sims


class SegmentIndex:
    """Sealed Annoy segments over compact vectors, plus the live rows none of them holds
    (searched exactly). Candidates from the segments are re-ranked with the full vectors;
    rows that are no longer live (deleted or changed files) are dropped."""

    kind = "segments"

    def __init__(
        self,
        vectors: VectorFile,
        live: np.ndarray,  # bool per vector-file row
        projection: np.ndarray,
        sealed: list[tuple[object, np.ndarray]],  # (AnnoyIndex, its rows)
        fresh_rows: np.ndarray,
        trees: int = segments.TREES,
    ) -> None:
        self.vectors, self.live, self.projection = vectors, live, projection
        self.sealed = sealed
        self.dead = [int((~live[rows]).sum()) for _, rows in sealed]
        self.fresh = ExactRows(vectors, fresh_rows) if len(fresh_rows) else None
        self.trees = trees
        self._size = int(live.sum())

    def __len__(self) -> int:
        return self._size

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        query = np.asarray(query, np.float32)
        compact = (query @ self.projection).tolist()
        want = max(segments.CANDIDATES, 4 * k)
        found = []
        for (annoy, rows), dead in zip(self.sealed, self.dead, strict=True):
            n = min(len(rows), want + min(dead, want))
            ids = annoy.get_nns_by_vector(
                compact, n, search_k=n * self.trees * segments.SEARCH_FACTOR
            )
            found.append(rows[np.asarray(ids, np.int64)])
        rows = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
        rows, matrix = self.vectors.read_sound(rows[self.live[rows]])
        scores = (matrix @ query).astype(np.float32)
        if self.fresh is not None:
            f_rows, f_scores = self.fresh.search(query, k)
            rows, scores = np.concatenate([rows, f_rows]), np.concatenate([scores, f_scores])
        order = np.argsort(-scores, kind="stable")[:k]
        return rows[order], scores[order]

    def neighbours(
        self, k: int, progress: Progress | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidates for each row from every segment (Annoy, `NEIGHBOUR_CANDIDATES` each,
        queried from as many threads as there are cores: Annoy lets go of the GIL) and
        from the fresh rows (by their projections), re-ranked with the full vectors."""
        rows = np.flatnonzero(self.live)
        found, sims = self.nearest_rows(rows, k, progress)
        positions = np.where(found >= 0, np.searchsorted(rows, found), -1)
        return rows, positions, sims

    def nearest_rows(
        self, rows: np.ndarray, k: int, progress: Progress | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`neighbours` for some live `rows` only: their k nearest other live rows (as
        vector-file rows, -1 for none) and similarities (-inf for none)."""
        progress = progress or NullProgress()
        fresh = self.fresh.rows if self.fresh is not None else np.zeros(0, np.int64)
        fresh_compact = self.vectors.read(fresh) @ self.projection
        found = np.full((len(rows), k), -1, np.int64)
        sims = np.full((len(rows), k), -np.inf, np.float32)
        workers = max(1, os.cpu_count() or 1)
        with ThreadPoolExecutor(workers) as pool:
            for lo in range(0, len(rows), NEIGHBOUR_CHUNK):
                told = f"Compared {lo:,} of {len(rows):,} images with their nearest"
                progress.report(lo, len(rows), told)
                if progress.cancelled():
                    raise InterruptedError("cancelled")
                chunk = rows[lo : lo + NEIGHBOUR_CHUNK]
                queries = self.vectors.read(chunk)
                compact = queries @ self.projection
                cands = [self._segment_candidates(pool, workers, compact, k)]
                if len(fresh):
                    c = min(max(NEIGHBOUR_CANDIDATES, 2 * k), len(fresh))
                    near = np.argpartition(-(compact @ fresh_compact.T), c - 1, axis=1)[:, :c]
                    cands.append(fresh[near])
                cand = np.concatenate([c for c in cands if c.shape[1]], axis=1)
                best, best_sims = self._rerank(chunk, queries, cand, k)
                found[lo : lo + len(chunk)] = best
                sims[lo : lo + len(chunk)] = best_sims
        progress.report(len(rows), len(rows))
        return found, sims

    def _segment_candidates(self, pool, workers: int, compact: np.ndarray, k: int) -> np.ndarray:
        """(m, C) candidate rows from the sealed segments for m compact query vectors,
        at least NEIGHBOUR_CANDIDATES and 2k from each."""
        per_segment = []
        for annoy, seg_rows in self.sealed:
            c = min(max(NEIGHBOUR_CANDIDATES, 2 * k), len(seg_rows))

            def ask(part: list[list[float]], annoy=annoy, c=c) -> list[list[int]]:
                return [annoy.get_nns_by_vector(v, c, search_k=c * self.trees) for v in part]

            parts = np.array_split(np.arange(len(compact)), workers)
            answers = pool.map(ask, [compact[p].tolist() for p in parts])
            ids = np.full((len(compact), c), -1, np.int64)
            i = 0
            for answer in answers:
                for got in answer:
                    ids[i, : len(got)] = got
                    i += 1
            per_segment.append(np.where(ids >= 0, seg_rows[ids], -1))
        return np.concatenate(per_segment, axis=1) if per_segment else np.zeros((len(compact), 0))

    def _rerank(
        self, chunk: np.ndarray, queries: np.ndarray, cand: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k best of each query's candidate rows by full-vector similarity; the query
        itself, rows no longer live, repeats and damaged rows left out."""
        cand = np.sort(cand, axis=1)
        scores = np.full(cand.shape, -np.inf, np.float32)
        usable = cand >= 0
        usable &= self.live[np.maximum(cand, 0)] & (cand != chunk[:, None])
        usable[:, 1:] &= cand[:, 1:] != cand[:, :-1]
        for lo in range(0, len(chunk), 256):  # (256, C, dim) float32 at a time
            part = slice(lo, lo + 256)
            full = self.vectors.read(cand[part].ravel()).reshape(*cand[part].shape, -1)
            with np.errstate(all="ignore"):
                scores[part] = np.einsum("mcd,md->mc", full, queries[part])
        with np.errstate(invalid="ignore"):
            usable &= np.isfinite(scores) & (scores <= MAX_SIMILARITY)
        usable &= valid_vectors(queries)[:, None]
        scores[~usable] = -np.inf
        width = min(k, cand.shape[1])
        order = np.argsort(-scores, axis=1, kind="stable")[:, :width]
        best = np.take_along_axis(cand, order, 1)
        best_sims = np.take_along_axis(scores, order, 1)
        best[~np.isfinite(best_sims)] = -1
        out = np.full((len(chunk), k), -1, np.int64)
        out_sims = np.full((len(chunk), k), -np.inf, np.float32)
        out[:, :width], out_sims[:, :width] = best, best_sims
        return out, out_sims


def open_index(
    store: Store,
    vectors: VectorFile,
    live_rows: np.ndarray,
    threshold: int = ANNOY_THRESHOLD,
) -> VectorIndex:
    """The index over `live_rows` (unique rows of `vectors`): exact below `threshold`
    rows, else the saved segments that are intact, with every live row they do not hold
    searched exactly. Nothing is built here: `segments.maintain` does that."""
    if len(live_rows) < threshold:
        return ExactRows(vectors, live_rows)
    from annoy import AnnoyIndex

    _, manifest = segments.read_manifest(store, vectors.model)
    directory = store.directory
    projection = None
    if manifest.epoch == vectors.epoch:
        projection = segments.load_projection(directory, manifest, vectors.dim)
    loaded = []
    for entry in manifest.segments if projection is not None else ():
        rows = segments.sealed_rows(directory, entry, vectors)
        if rows is None:
            continue
        try:
            annoy = AnnoyIndex(projection.shape[1], "angular")
            annoy.load(os.fspath(Path(directory) / entry.name))  # memory-mapped
        except (OSError, ValueError) as exc:
            log.warning("index segment %s unreadable (%s): not used", entry.name, exc)
            continue
        if annoy.get_n_items() == len(rows):
            loaded.append((annoy, rows))
    live = np.zeros(len(vectors), bool)  # after sealed_rows: it may have mapped more rows
    live[live_rows] = True
    sealed, held = loaded, np.zeros(len(vectors), bool)
    for _, rows in sealed:
        held[rows] = True
    if not sealed:
        return ExactRows(vectors, live_rows)
    return SegmentIndex(vectors, live, projection, sealed, np.flatnonzero(live & ~held))
