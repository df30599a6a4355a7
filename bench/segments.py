"""What one change costs the index: a saved Annoy segment plus the changes since
(core.vector_index.SegmentedIndex) against a full rebuild, on a store of synthetic
clustered unit vectors (the real schema).

    python bench/segments.py [--images 100000] [--dim 1280] [--added 1000]

Prints, in one run: the first build, re-opening after 1,000 images were added and
1,000 deleted (segmented) and the rebuild the code did before for the same change,
query latency and recall@10 against exact search, before and after the change.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from visualsearch.core.encoders.base import l2_normalize
from visualsearch.core.store import FileRecord, Store
from visualsearch.core.vector_index import AnnoyVectorIndex, ExactIndex, open_index

MODEL = "bench-m"


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 200), dim)).astype(np.float32)
    rows = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, dim))
    return l2_normalize(rows.astype(np.float32))


def fill(store: Store, vectors: np.ndarray, start: int) -> None:
    for lo in range(0, len(vectors), 5000):
        chunk = vectors[lo : lo + 5000]
        records = [
            FileRecord(f"{start + lo + i:07d}.jpg", 1, 1, f"h{start + lo + i}")
            for i in range(len(chunk))
        ]
        store.commit_batch(MODEL, records, {r.hash: v for r, v in zip(records, chunk, strict=True)})


def measure(index, exact: ExactIndex, queries: np.ndarray) -> tuple[float, float]:
    """Median query ms, mean recall@10 against exact search."""
    times, recall = [], []
    for q in queries:
        t = time.perf_counter()
        rows, _ = index.search(q, 10)
        times.append(time.perf_counter() - t)
        truth, _ = exact.search(q, 10)
        recall.append(len(set(rows.tolist()) & set(truth.tolist())) / 10)
    return float(np.median(times) * 1000), float(np.mean(recall))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--added", type=int, default=1000)
    args = parser.parse_args()
    n, added = args.images, args.added
    vectors = clustered(n + added, args.dim, seed=1)
    with tempfile.TemporaryDirectory(prefix="vs-segments-") as tmp:
        store = Store(Path(tmp) / "store")
        fill(store, vectors[:n], 0)
        t = time.perf_counter()
        index = open_index(store, MODEL)
        print(f"{n:,} × {args.dim}-d: first build ({index.kind}) {time.perf_counter() - t:.1f} s")
        queries = vectors[np.random.default_rng(2).choice(n, 200, replace=False)]
        loaded = store.load_vector_set(MODEL)
        ms, recall = measure(index, ExactIndex(loaded.matrix), queries)
        print(f"  query {ms:.1f} ms median, recall@10 {recall:.3f}")

        fill(store, vectors[n:], n)
        store.remove_paths([f"{i:07d}.jpg" for i in range(0, 2 * added, 2)])
        t = time.perf_counter()
        loaded = store.load_vector_set(MODEL)
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        index = open_index(store, MODEL, loaded)
        segmented_s = time.perf_counter() - t
        print(
            f"+{added:,} added, -{added:,} deleted → re-open: {index.kind} in "
            f"{segmented_s:.2f} s (+ {load_s:.1f} s loading the vectors, as before)"
        )
        ms, recall = measure(index, ExactIndex(loaded.matrix), queries)
        print(f"  query {ms:.1f} ms median, recall@10 {recall:.3f}")
        t = time.perf_counter()
        AnnoyVectorIndex.build(loaded.matrix, path=Path(tmp) / "rebuild.ann")
        rebuild_s = time.perf_counter() - t
        print(f"  what the code did before for this change: a full rebuild, {rebuild_s:.1f} s")
        store.close()


if __name__ == "__main__":
    main()
