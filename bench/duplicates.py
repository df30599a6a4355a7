"""Time and peak memory to find duplicate groups (and odd-ones-out scores) among
100,000 vectors. Prints figures from one run; no pass/fail.

Vectors are synthetic and clustered like image embeddings (bench/search.py), with
near-copies planted (1 in 20 images gets two copies at similarity ~0.9-0.99).
Peak memory is the process's resident high-water mark above what the vectors take.

    cd bench && python duplicates.py [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from search import clustered  # bench/search.py

from visualsearch.core.duplicates import find_duplicates, outlier_scores
from visualsearch.core.encoders.base import l2_normalize
from visualsearch.core.store import FileRecord


def _status(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB → MB
    return float("nan")


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # Linux: resets VmHWM to the current RSS
        f.write("5")


def with_copies(n: int, dim: int) -> tuple[np.ndarray, int]:
    base = clustered(n, dim)
    rng = np.random.default_rng(1)
    originals = rng.choice(n, n // 20, replace=False)
    planted = 0
    for row in originals:
        for _ in range(2):
            target = int(rng.integers(n))
            noise = rng.standard_normal(dim).astype(np.float32) * rng.uniform(0.003, 0.012)
            base[target] = l2_normalize((base[row] + noise)[None])[0]
            planted += 1
    return base, planted


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--dim", type=int, default=1280)
    args = ap.parse_args()
    import torch  # noqa: F401  (imported before measuring: its libraries alone take ~300 MB)

    print(f"{'vectors':>8} {'groups':>7} {'find':>8} {'odd ones':>9} {'peak above vectors':>19}")
    for n in args.sizes:
        vectors, _ = with_copies(n, args.dim)
        records = [FileRecord(f"{i:06d}.jpg", 1000, 0, f"h{i}", 100, 100, "JPEG") for i in range(n)]
        reset_peak()
        before = _status("VmRSS")
        t = time.perf_counter()
        groups = find_duplicates(vectors, records, threshold=0.9)
        find_s = time.perf_counter() - t
        t = time.perf_counter()
        outlier_scores(vectors)
        odd_s = time.perf_counter() - t
        grown = _status("VmHWM") - before
        print(
            f"{n:>8,} {len(groups):>7,} {find_s:>7.1f}s {odd_s:>8.1f}s {grown:>15.0f} MB"
            f"   (the vectors: {vectors.nbytes / 1e6:.0f} MB; an n×n float32 matrix: "
            f"{n * n * 4 / 1e9:.1f} GB)"
        )


if __name__ == "__main__":
    main()
