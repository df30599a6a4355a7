"""Window responsiveness: launch → painted window, re-open of an indexed 10,000-image
folder until the first screen of thumbnails is shown, and frame times while scrolling
50,000 items. Prints figures from one run; no pass/fail.

The 10,000 images are small distinct JPEGs. They are indexed once with a stand-in
encoder that writes random vectors under the built-in model's id, because this
benchmark is about the window, not the model (bench/index.py measures encoding);
the re-open itself then loads the real built-in model in its worker thread, as a
user's would.

    QT_QPA_PLATFORM=offscreen python bench/gui.py [--images 10000] [--items 50000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen" if not os.environ.get("DISPLAY") else "xcb")

import numpy as np
from PIL import Image

from visualsearch.core.encoders.base import l2_normalize
from visualsearch.core.encoders.builtin import DIM, BuiltinEncoder
from visualsearch.core.indexing import index_folder
from visualsearch.core.settings import AppPaths
from visualsearch.core.store import Store, default_store_dir

LAUNCH_SNIPPET = """
import sys, time
from pathlib import Path
from PySide6.QtCore import QEvent, QObject, QSettings
from PySide6.QtWidgets import QApplication
from visualsearch.core.settings import AppPaths
from visualsearch.qt.app import create_window
app = QApplication([])
w = create_window(AppPaths(Path(sys.argv[1]), Path(sys.argv[2])),
                  QSettings(sys.argv[3], QSettings.Format.IniFormat))
class Painted(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint:
            print("painted", flush=True)
            app.exit(0)
        return False
f = Painted(); w.installEventFilter(f); w.show(); app.exec(); w.close()
"""


class RandomVectors:
    """Stands in for the built-in model while the benchmark's collection is made."""

    id = BuiltinEncoder.id
    dim = DIM
    input_size = 64

    def preprocess(self, image):
        return np.zeros(1, np.float32)

    def embed_images(self, batch):
        return l2_normalize(np.random.default_rng(len(batch)).standard_normal((len(batch), DIM)))

    def embed_text(self, texts):
        return self.embed_images(np.zeros(len(texts)))


def make_images(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    base = np.linspace(0, 255, 96, dtype=np.float32)
    for i in range(n):
        sub = folder / f"{i // 1000:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        r, g, b = rng.integers(0, 255, 3)
        pixels = np.empty((96, 96, 3), np.float32)
        pixels[..., 0] = np.add.outer(base, base) / 2 * 0.3 + r * 0.7
        pixels[..., 1] = g
        pixels[..., 2] = base[None, :] * 0.5 + b * 0.5
        Image.fromarray(pixels.astype(np.uint8)).save(sub / f"{i:05d}.jpg", quality=80)


def launch_time(paths: AppPaths, work: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            LAUNCH_SNIPPET,
            str(paths.data_dir),
            str(paths.cache_dir),
            str(work / "launch.ini"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    seconds = time.perf_counter() - started
    proc.wait(timeout=60)
    assert line.strip() == "painted", line
    return seconds


def visible_thumbnails_shown(window) -> tuple[int, int]:
    from PySide6.QtCore import QPoint, Qt

    grid = window.grid
    vp = grid.viewport()
    step = grid.gridSize()
    seen = shown = 0
    for y in range(step.height() // 2, vp.height(), step.height()):
        for x in range(step.width() // 2, vp.width(), step.width()):
            index = grid.indexAt(QPoint(x, y))
            if not index.isValid():
                continue
            seen += 1
            if window.model.data(index, Qt.ItemDataRole.DecorationRole) is not None:
                shown += 1
    return seen, shown


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--items", type=int, default=50_000)
    args = ap.parse_args()

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from visualsearch.qt.app import create_window
    from visualsearch.qt.image_list_model import GridItem

    work = Path(tempfile.mkdtemp(prefix="vs-bench-gui-"))
    paths = AppPaths(work / "data", Path(os.environ.get("VS_BENCH_CACHE", work / "cache")))
    warm = BuiltinEncoder(paths.cache_dir)  # the one-time exports, so they are not timed below
    warm.embed_text(["a photo"])
    warm.embed_images(np.zeros((1, 3, warm.input_size, warm.input_size), np.float32))

    print(f"launch → painted window (new process, offscreen={os.environ['QT_QPA_PLATFORM']})")
    times = [launch_time(paths, work) for _ in range(3)]
    print(f"  {min(times):.2f} s best of 3 (includes Python, PySide6 and numpy imports)")

    folder = work / "photos"
    t = time.perf_counter()
    make_images(folder, args.images)
    with Store(default_store_dir(folder.resolve(), paths.data_dir), root=folder) as store:
        report = index_folder(folder, store, RandomVectors())
        store.set_meta("model_spec", "builtin")
    print(f"made and indexed {report.indexed:,} images in {time.perf_counter() - t:.0f} s (setup)")

    app = QApplication.instance() or QApplication([])
    window = create_window(paths, QSettings(str(work / "bench.ini"), QSettings.Format.IniFormat))
    window.resize(1280, 820)
    window.show()
    app.processEvents()

    ready: list[int] = []
    window.results.engine_ready.connect(ready.append)
    started = time.perf_counter()
    window.open_folder(folder)
    catalog_at = first_screen_at = finished_at = None
    while time.perf_counter() - started < 120 and (first_screen_at is None or finished_at is None):
        app.processEvents()
        now = time.perf_counter() - started
        if catalog_at is None and window.model.rowCount() >= args.images:
            catalog_at = now
        if catalog_at is not None and first_screen_at is None:
            seen, shown = visible_thumbnails_shown(window)
            if seen and seen == shown:
                first_screen_at = now
        if finished_at is None and not window.collection.busy() and window.indexing.isHidden():
            finished_at = now
        time.sleep(0.002)
    print(f"re-open of an indexed {args.images:,}-image folder (target: first screen < 2 s)")
    print(f"  catalog in the grid       {catalog_at:6.2f} s")
    print(f"  first screen of thumbs    {first_screen_at:6.2f} s")
    print(f"  check for changes done    {finished_at:6.2f} s (every file stat-ed)")
    while not ready and time.perf_counter() - started < 120:
        app.processEvents()
        time.sleep(0.01)
    print(
        f"  search ready              {time.perf_counter() - started:6.2f} s (vectors, text model)"
    )

    # scrolling 50,000 items: thumbnails cycle through the store's 10,000
    records = list(window.collection.records.values())
    items = [
        GridItem(
            folder / records[i % len(records)].path,
            records[i % len(records)].path,
            records[i % len(records)],
        )
        for i in range(args.items)
    ]
    t = time.perf_counter()
    window.model.set_items(items)
    app.processEvents()
    window.grid.viewport().repaint()
    layout_s = time.perf_counter() - t
    bar = window.grid.verticalScrollBar()
    frames = []
    for step in range(300):
        value = int(bar.maximum() * step / 299)
        t = time.perf_counter()
        bar.setValue(value)
        app.processEvents()  # thumbnails that arrived are painted in this frame too
        window.grid.viewport().repaint()
        frames.append((time.perf_counter() - t) * 1000)
    # and a slow wheel-like scroll through one region, where thumbnails keep arriving
    for _ in range(200):
        t = time.perf_counter()
        bar.setValue(min(bar.maximum(), bar.value() + bar.singleStep()))
        app.processEvents()
        window.grid.viewport().repaint()
        frames.append((time.perf_counter() - t) * 1000)
    print(f"scrolling {args.items:,} items (500 frames: 300 jumps across all, 200 small steps)")
    print(f"  model reset + first layout {layout_s * 1000:6.0f} ms")
    print(
        f"  frame time median {statistics.median(frames):6.1f} ms, "
        f"95th {np.percentile(frames, 95):6.1f} ms, worst {max(frames):6.1f} ms  (16.7 ms = 60 fps)"
    )
    window.close()


if __name__ == "__main__":
    main()
