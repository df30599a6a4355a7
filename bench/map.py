"""Map figures: layout (UMAP) and clustering time for 10k and 100k vectors, and the
map view's paint time for 100,000 points. Prints figures from one run; no pass/fail.

Vectors are synthetic but clustered like image embeddings (bench/search.py).
The first layout in a process includes numba compiling UMAP (printed apart).

    QT_QPA_PLATFORM=offscreen python bench/map.py [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import tracemalloc
import warnings

import numpy as np
from search import clustered  # bench/search.py

from visualsearch.core import analysis

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--dim", type=int, default=1280)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    t = time.perf_counter()
    analysis.layout_2d(clustered(300, args.dim, seed=1))
    print(
        f"warm-up (imports, numba compiling UMAP once per process): {time.perf_counter() - t:.1f} s"
    )
    print(
        f"{'vectors':>8} {'layout':>9} {'choose k':>9} {'k-means':>9} {'k':>4}"
        "  (target: 10k layout < 30 s)"
    )
    coords_100k = None
    for n in args.sizes:
        x = clustered(n, args.dim)
        t = time.perf_counter()
        coords = analysis.layout_2d(x)
        layout_s = time.perf_counter() - t
        t = time.perf_counter()
        k = analysis.choose_k(x)
        choose_s = time.perf_counter() - t
        t = time.perf_counter()
        tracemalloc.start()
        analysis.cluster(x, k=k, must_link=0.95)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        cluster_s = time.perf_counter() - t
        print(
            f"{n:>8,} {layout_s:>8.1f}s {choose_s:>8.1f}s {cluster_s:>8.1f}s {k:>4}"
            f"  (clustering peak {peak / 1e6:.0f} MB above the vectors)"
        )
        coords_100k = coords

    from PySide6.QtCore import QThreadPool
    from PySide6.QtWidgets import QApplication

    from visualsearch.qt.map_view import MapView
    from visualsearch.qt.thumbnails import ImageLoader

    app = QApplication.instance() or QApplication([])
    n = len(coords_100k)
    view = MapView(ImageLoader(lambda key, size: None, QThreadPool(), "bench"))
    view.resize(1000, 800)
    view.show()
    rng = np.random.default_rng(0)
    view.set_data(coords_100k, rng.integers(0, 30, n), [None] * n, 30)
    app.processEvents()
    raster, full = [], []
    for i in range(20):
        view.zoom(1.1 if i % 2 == 0 else 1 / 1.1)  # a new transform: the points are drawn anew
        t = time.perf_counter()
        view.render_points()
        raster.append((time.perf_counter() - t) * 1000)
        view.zoom(1.0)
        t = time.perf_counter()
        view.repaint()
        full.append((time.perf_counter() - t) * 1000)
    print(f"map view, {n:,} points, 1000×800 (target: paint < 50 ms)")
    print(
        f"  rasterise points   median {statistics.median(raster):5.1f} ms, "
        f"worst {max(raster):5.1f} ms"
    )
    print(
        f"  repaint after zoom median {statistics.median(full):5.1f} ms, worst {max(full):5.1f} ms"
    )
    view.close()


if __name__ == "__main__":
    main()
