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


def main(folder: str | None = None, sample: bool = False, paths: AppPaths | None = None) -> int:
    """Run the window until it closes; open `folder`, the sample collection, or the last folder."""
    if not has_display():
        print(NO_DISPLAY, file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("visualsearch")
    app.setOrganizationName("visualsearch")
    app.setApplicationDisplayName("visualsearch")
    window = create_window(paths or AppPaths.default())
    from visualsearch.qt.models import freeze_long_lived_objects

    freeze_long_lived_objects()  # modules, torch: nothing the GC needs to walk again
    window.show()
    if folder:
        window.open_folder(Path(folder))
    elif sample:
        window.open_sample()
    elif window.settings.reopen_last and window.settings.recent_folders:
        last = Path(window.settings.recent_folders[0])
        if last.is_dir():
            window.open_folder(last)
    return app.exec()
