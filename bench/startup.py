"""The first answer: launch → first text answer in the window, a CLI `search` and an
unchanged `index`, each in a new process, on an indexed 10,000-image folder. Prints
medians from one run; no pass/fail. With `--against REV` the same measurements run on
that commit too (a git worktree), side by side.

The 10,000 images are small distinct JPEGs indexed with random vectors under the
built-in model's id (as bench/gui.py): this measures loading and answering, not
encoding. The text query runs the real built-in text model. The graphs the built-in
model exports on first use are made before anything is timed.

    QT_QPA_PLATFORM=offscreen python bench/startup.py [--images 10000] [--against 2ef6015]
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
sys.path.insert(0, str(Path(__file__).parent))

from commits import checked_out, package_env
from gui import RandomVectors, make_images
from PIL import Image

from visualsearch.core.calibration import calibration
from visualsearch.core.encoders.builtin import BuiltinEncoder
from visualsearch.core.indexing import index_folder
from visualsearch.core.settings import AppPaths
from visualsearch.core.store import Store, default_store_dir

QUERY = "a dog"
RUNS = 3

# The window opens the folder and the query is entered at once, before anything has
# loaded (a user pressing Enter as soon as the window shows): launch → results shown.
WINDOW = """
import sys, time
from pathlib import Path
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication
from visualsearch.core.settings import AppPaths
from visualsearch.qt.app import create_window
app = QApplication([])
w = create_window(AppPaths(Path(sys.argv[1]), Path(sys.argv[2])),
                  QSettings(sys.argv[3], QSettings.Format.IniFormat))
w.show()
w.open_folder(Path(sys.argv[4]))
w.search_box.setText(sys.argv[5])
w.results.search_entered()
def answered(result):
    print("answered", len(result.hits), "|", w.results.area.query_label.text(), flush=True)
    QTimer.singleShot(0, app.quit)
w.results.results_shown.connect(answered)
QTimer.singleShot(60_000, app.quit)
app.exec()
w.close()
"""

CLI = """
import sys
from pathlib import Path
from visualsearch.cli import main
from visualsearch.core.settings import AppPaths
sys.exit(main(sys.argv[3:], paths=AppPaths(Path(sys.argv[1]), Path(sys.argv[2]))))
"""


def timed(argv: list[str], env: dict, cwd: Path, until: str | None = None) -> tuple[float, str]:
    """Seconds from launch to exit (or to the first stdout line starting with `until`)."""
    started = time.perf_counter()
    pipe = subprocess.PIPE
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=pipe, stderr=pipe, text=True)
    if until is None:
        out, err = proc.communicate(timeout=300)
        seconds = time.perf_counter() - started
        if proc.returncode:
            raise RuntimeError(f"{argv[3:]} failed: {err[-2000:]}")
        return seconds, out
    for line in proc.stdout:
        if line.startswith(until):
            seconds = time.perf_counter() - started
            proc.communicate(timeout=120)
            return seconds, line.strip()
    raise RuntimeError(f"no {until!r} line: {proc.communicate()[1][-2000:]}")


def measure(code: Path | None, paths: AppPaths, folder: Path, work: Path) -> dict[str, float]:
    """Median seconds of each measurement, running the package at `code` (None: this one)."""
    env = package_env(code)
    dirs = [str(paths.data_dir), str(paths.cache_dir)]
    python = [sys.executable, "-c"]
    cases = {
        "window: launch → first text answer": (
            [*python, WINDOW, *dirs, str(work / "w.ini"), str(folder), QUERY],
            "answered",
        ),
        "CLI search (new process)": ([*python, CLI, *dirs, "search", str(folder), QUERY], None),
        "CLI index, nothing changed": ([*python, CLI, *dirs, "index", str(folder)], None),
    }
    figures = {}
    for name, (argv, until) in cases.items():
        runs = []
        for _ in range(RUNS):
            # run from `work`: `python -c` puts the working directory first on sys.path
            seconds, said = timed(argv, env, work, until)
            runs.append(seconds)
        figures[name] = statistics.median(runs)
        if until:
            header = said.split("<br>")[0]  # the hint below it is left out
            print(f"    ({'now' if code is None else 'before'}: {header})", flush=True)
    return figures


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--against", metavar="REV", help="also measure this commit")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vs-bench-startup-"))
    paths = AppPaths(work / "data", Path(os.environ.get("VS_BENCH_CACHE", work / "cache")))
    encoder = BuiltinEncoder(paths.cache_dir)  # the one-time exports, not timed below
    encoder.embed_text([QUERY])
    encoder.embed_images(encoder.preprocess(Image.new("RGB", (9, 9)))[None])
    calibration(encoder, paths.cache_dir)  # as an indexing run leaves it

    folder = work / "photos"
    make_images(folder, args.images)
    with Store(default_store_dir(folder.resolve(), paths.data_dir), root=folder) as store:
        index_folder(folder, store, RandomVectors())
        store.set_meta("model_spec", "builtin")
    print(f"{args.images:,} images indexed; medians of {RUNS} new processes each")

    before = None
    if args.against:
        with checked_out(args.against, work / "against") as tree:
            before = measure(tree, paths, folder, work)
    now = measure(None, paths, folder, work)

    targets = {
        "window: launch → first text answer": 1.5,
        "CLI search (new process)": 2.0,
        "CLI index, nothing changed": 1.0,
    }
    head = f"| | now | {'before (' + args.against + ') | ' if before else ''}target |"
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for name, seconds in now.items():
        was = f" {before[name]:.2f} s |" if before else ""
        print(f"| {name} | {seconds:.2f} s |{was} < {targets[name]} s |")


if __name__ == "__main__":
    main()
