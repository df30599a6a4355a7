"""Query latency of exact vs Annoy search, Annoy recall@10 and build time.

Prints figures measured in one run; no pass/fail. Vectors are synthetic but
clustered like image embeddings (uniform random vectors in 1280-d have no
near neighbours and would make any ANN index look bad).

    python bench/search.py [--sizes 10000 100000] [--dim 1280]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from visualsearch.core.encoders.base import l2_normalize
from visualsearch.core.vector_index import ANNOY_TREES, AnnoyVectorIndex, ExactIndex


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(10, n // 200), dim)).astype(np.float32)
    labels = rng.integers(0, len(centres), n)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 20000):
        sl = slice(start, min(n, start + 20000))
        noise = rng.standard_normal((sl.stop - sl.start, dim)).astype(np.float32)
        out[sl] = centres[labels[sl]] + 0.6 * noise
    return l2_normalize(out)


def per_query_ms(index, queries, k=10) -> float:
    index.search(queries[0], k)
    t = time.perf_counter()
    for q in queries:
        index.search(q, k)
    return (time.perf_counter() - t) / len(queries) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    print(f"dim={args.dim}, k=10, {args.queries} queries, Annoy {ANNOY_TREES} trees")
    print(
        f"{'n':>8} {'exact ms':>9} {'annoy ms':>9} {'speed-up':>9} {'recall@10':>10} {'build s':>8}"
    )
    for n in args.sizes:
        m = clustered(n, args.dim)
        rng = np.random.default_rng(1)
        queries = l2_normalize(
            m[rng.integers(0, n, args.queries)]
            + 0.1 * rng.standard_normal((args.queries, args.dim))
        )
        exact = ExactIndex(m)
        t = time.perf_counter()
        ann = AnnoyVectorIndex.build(m)
        build = time.perf_counter() - t
        e_ms, a_ms = per_query_ms(exact, queries), per_query_ms(ann, queries)
        recall = np.mean(
            [len(set(exact.search(q, 10)[0]) & set(ann.search(q, 10)[0])) / 10 for q in queries]
        )
        print(
            f"{n:>8} {e_ms:>9.2f} {a_ms:>9.2f} {e_ms / a_ms:>8.1f}x {recall:>10.3f} {build:>8.1f}"
        )


if __name__ == "__main__":
    main()
