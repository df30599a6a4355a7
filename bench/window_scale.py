"""The window with a library of a million images: how long until the grid shows them,
and the longest the GUI thread stops answering meanwhile (a 5 ms timer measures the
gaps), for each thing a user does to all images. Prints figures from one run.

The records are synthetic (1,000 folders, distinct dates and sizes) and are handed to
the window's controllers as the indexing job hands them (its catalog at the start of a
run, its outcome at the end); no files are read, so the figures are the window's own.

    QT_QPA_PLATFORM=offscreen python bench/window_scale.py [--images 1000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QSettings, Qt, QTimer
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from visualsearch.core.folder import ModelChoice
from visualsearch.core.indexing import IndexReport
from visualsearch.core.settings import AppPaths
from visualsearch.core.store import FileRecord
from visualsearch.qt.app import create_window
from visualsearch.qt.map_view import draw_points
from visualsearch.qt.workers import FolderTarget, IndexOutcome, reuse


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def records(n: int) -> dict[str, FileRecord]:
    made = {}
    for i in range(n):
        path = f"{2000 + i % 20}/{(i // 20) % 50:02d}/IMG_{i:07d}.jpg"
        taken = f"{2000 + i % 20}:{1 + i % 12:02d}:{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00"
        size = 100_000 + i * 7 % 9_999_991
        made[path] = FileRecord(path, size, 0, f"{i:032x}", 4000, 3000, "JPEG", taken)
    return dict(sorted(made.items()))  # the store hands them over in path order


def mouse(kind: QEvent.Type, x: float, y: float) -> QMouseEvent:
    """A mouse event at (x, y), the left button pressed for a press or release."""
    button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else Qt.MouseButton.LeftButton
    pos = QPointF(x, y)
    return QMouseEvent(kind, pos, pos, button, button, Qt.KeyboardModifier.NoModifier)


def zoomed(view, factor: float) -> None:
    """A zoom step and what the paint that follows does: the visible points looked for,
    the new drawing asked for (the last one is shown scaled meanwhile)."""
    view.zoom(factor)
    view.visible_rows()
    view._points_image()


def map_data(window, n: int) -> None:
    """What the map page gets once a layout is loaded: coordinates and clusters."""
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(n, 2)).astype(np.float32)
    window.map_page.view.set_data(coords, rng.integers(0, 40, n), [None] * n, 40)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1_000_000)
    args = ap.parse_args()
    app = QApplication([])
    work = Path(tempfile.mkdtemp())
    window = create_window(
        AppPaths(work / "data", work / "cache"),
        QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat),
    )
    window.resize(1300, 850)
    window.show()
    app.processEvents()
    before = resident_mb()
    catalog = records(args.images)
    print(f"{args.images:,} records made: {resident_mb() - before:,.0f} MB of Python objects")
    collection, results = window.collection, window.results
    folder = work / "library"
    folder.mkdir()
    collection.target = FolderTarget(folder, work / "store", ModelChoice("builtin"))

    gaps: list[float] = []
    last = [time.perf_counter()]

    def beat() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    heartbeat = QTimer(interval=5)
    heartbeat.timeout.connect(beat)
    heartbeat.start()

    def stage(name: str, act: Callable[[], object], done: Callable[[], bool]) -> None:
        gaps.clear()
        start = last[0] = time.perf_counter()
        act()
        while not done():
            app.processEvents()
        ready = time.perf_counter() - start
        for _ in range(5):
            app.processEvents()
            time.sleep(0.01)
        stall = max(gaps, default=time.perf_counter() - last[0])
        memory = resident_mb() - before
        print(f"  {name:34} {ready:6.2f} s   {stall * 1000:5.0f} ms   {memory:6,.0f} MB")

    def arranged() -> bool:
        return results._source is None

    folders = window.results_area.folders
    n = args.images
    print(f"{'':36} {'shown':>8}   {'longest GUI stall':>8}   memory")
    stage(
        "catalog loaded → all images",
        lambda: collection._on_catalog(dict(catalog)),
        lambda: arranged() and results.model.rowCount() == n,
    )
    stage("sort by date, newest first", lambda: results.sort_by("date", True), arranged)
    stage("sort by name", lambda: results.sort_by("name"), arranged)
    stage(
        "choose one folder (1/20)",
        lambda: (folders.select_folder("2003"), results._folder_chosen("2003")),
        arranged,
    )
    stage(
        "all folders again",
        lambda: (folders.select_folder(""), results._folder_chosen("")),
        arranged,
    )
    # the run's end as the indexing job hands it over: the catalog read again (new
    # objects), records equal to the window's swapped for those (the job's own work)
    after = records(n)
    after["2000/00/new.jpg"] = FileRecord("2000/00/new.jpg", 1, 0, "f" * 32)
    report = IndexReport(str(folder), "builtin", new=1)
    outcome = IndexOutcome(report, reuse(after, catalog), [], replaced=True)
    del after
    stage(
        "a run ends with one image more",
        lambda: collection._on_finished(outcome),
        lambda: arranged() and results.model.rowCount() == n + 1,
    )
    stage(
        "Space: the viewer opens",
        lambda: results.open_viewer(results.model.index(n // 2)),
        lambda: True,
    )
    stage("→ in the viewer", lambda: window.results_area.viewer.go_to(n // 2 + 1), lambda: True)
    window.pool.waitForDone(60_000)  # what the stages above left to the pool (freeing)
    app.processEvents()
    stage(f"the map: {n:,} points given to it", lambda: map_data(window, n), lambda: True)
    window.tabs.setCurrentWidget(window.map_page)
    app.processEvents()
    view = window.map_page.view
    view.resize(1000, 800)
    view.render_points()

    def drawn() -> bool:
        return view._raster_for == (view.view(), view._version)

    for factor in (1.25, 0.8):  # what a paint after a zoom step does, then the drawing
        stage(f"the map: zoom ×{factor}, points drawn", lambda f=factor: zoomed(view, f), drawn)
    draws, hovers, pans = [], [], []
    for i in range(5):  # the drawing alone, in the pool's thread
        view.zoom(1.1 if i % 2 == 0 else 1 / 1.1)
        start = time.perf_counter()
        draw_points(view.world, view.view(), view._rgb, view._edge, view._square)
        draws.append(time.perf_counter() - start)
    # the mouse over the map (which point is under it) and a drag (the view moves): what
    # the GUI thread does for each move; the paint that follows shows a drawn image
    for i in range(20):
        start = time.perf_counter()
        view.mouseMoveEvent(mouse(QEvent.Type.MouseMove, 300 + 20 * i, 400))
        hovers.append(time.perf_counter() - start)
    view.mousePressEvent(mouse(QEvent.Type.MouseButtonPress, 500, 400))
    for i in range(20):
        start = time.perf_counter()
        view.mouseMoveEvent(mouse(QEvent.Type.MouseMove, 500 + 5 * i, 400))
        pans.append(time.perf_counter() - start)
    view.mouseReleaseEvent(mouse(QEvent.Type.MouseButtonRelease, 600, 400))
    ms = [statistics.median(x) * 1000 for x in (draws, hovers, pans)]
    print(f"  map, 1000×800 (medians): drawing the points {ms[0]:.0f} ms (in the pool),")
    print(f"  a mouse move over it {ms[1]:.1f} ms, a drag step {ms[2]:.1f} ms")
    heartbeat.stop()
    window.close()
    while window.isVisible():  # the window closes once its threads have let go
        app.processEvents()
    results.join_engine(60_000)


if __name__ == "__main__":
    main()
