"""Start the window: QApplication, settings, the folder to open."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from visualsearch.core.settings import AppPaths

NO_DISPLAY = (
    "visualsearch: no display to show the window on (DISPLAY and WAYLAND_DISPLAY are not set).\n"
    "The command line works without one: visualsearch demo, visualsearch search FOLDER TEXT, "
    "visualsearch --help."
)


def has_display() -> bool:
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def create_window(paths: AppPaths, qsettings=None, encoders=None):
    """The main window with its dependencies; tests pass their own settings and encoders."""
    from PySide6.QtCore import QSettings

    from visualsearch.qt.context import AppContext
    from visualsearch.qt.main_window import MainWindow
    from visualsearch.qt.settings import SettingsStore
    from visualsearch.qt.workers import EncoderProvider

    if qsettings is None:
        qsettings = QSettings("visualsearch", "visualsearch")
    context = AppContext(
        paths=paths,
        settings=SettingsStore(qsettings),
        encoders=encoders or EncoderProvider(paths.cache_dir),
    )
    return MainWindow(context)


def main(
    folder: str | None = None,
    sample: bool = False,
    paths: AppPaths | None = None,
    smoke_test: bool = False,
) -> int:
    """Run the window until it closes; open `folder`, the sample collection, or the last folder.

    `smoke_test` (for a built bundle) opens the sample collection, runs a text query,
    prints the top hit and exits: 0 when it is the cat photo."""
    if not has_display():
        print(NO_DISPLAY, file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("visualsearch")
    app.setOrganizationName("visualsearch")
    app.setApplicationDisplayName("visualsearch")
    app.setDesktopFileName("visualsearch")
    from visualsearch.qt.icons import app_icon

    app.setWindowIcon(app_icon())
    window = create_window(paths or AppPaths.default())
    from visualsearch.qt.image_list_model import freeze_long_lived_objects

    freeze_long_lived_objects()  # modules, torch: nothing the GC needs to walk again
    window.show()
    if smoke_test:
        return _smoke_test(app, window)
    if folder:
        window.open_folder(Path(folder))
    elif sample:
        window.open_sample()
    elif window.settings.reopen_last and window.settings.recent_folders:
        last = Path(window.settings.recent_folders[0])
        if last.is_dir():
            window.open_folder(last)
    code = app.exec()
    from visualsearch.qt.workers import wait_for_outliving

    if not wait_for_outliving():
        # a model load or a layout that cannot be interrupted is still running: Python's
        # teardown would destroy its QThread and abort. Settings are saved and every
        # committed batch is in the store, so the process just ends here.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)
    return code


def _smoke_test(app, window) -> int:
    from PySide6.QtCore import QTimer

    from visualsearch.core.query import TextQuery

    outcome = {"code": 1}

    def indexed(report) -> None:
        print(f"smoke test: indexed {report.indexed} images", flush=True)
        window.results.run_query(TextQuery("a photo of a cat"))

    def shown(result) -> None:
        if result is None:
            return
        top = result.hits[0].path.name if result.hits else "(nothing)"
        print(f"smoke test: 'a photo of a cat' → {top}", flush=True)
        outcome["code"] = 0 if top.startswith("chelsea") else 1
        window.close()
        app.quit()

    window.collection.indexing_finished.connect(indexed)
    window.results.results_shown.connect(shown)
    window.collection.indexing_failed.connect(lambda message: (print(message), app.quit()))
    QTimer.singleShot(600_000, app.quit)
    window.open_sample()
    app.exec()
    return outcome["code"]
