"""A real main window (offscreen) with isolated settings and the real built-in model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, QUrl

from visualsearch.core.folder import ModelChoice
from visualsearch.qt.context import AppContext
from visualsearch.qt.main_window import MainWindow
from visualsearch.qt.settings import SettingsStore
from visualsearch.qt.workers import EncoderProvider, wait_for_outliving

INDEX_TIMEOUT_MS = 180_000


class UrlRecorder:
    """Stands in for QDesktopServices.openUrl: tests must not launch applications."""

    def __init__(self) -> None:
        self.urls: list[QUrl] = []

    def __call__(self, url: QUrl) -> bool:
        self.urls.append(url)
        return True


class Answers:
    """Stands in for the confirmation dialog: records the questions, answers `answer`."""

    def __init__(self, answer: bool = False) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str]] = []

    def __call__(self, parent, title: str, text: str, details: str) -> bool:
        self.asked.append((title, details))
        return self.answer


@pytest.fixture
def settings_file(tmp_path) -> Path:
    return tmp_path / "settings.ini"


@pytest.fixture
def make_window(qtbot, app_paths, builtin_encoder, settings_file):
    """Builds windows that share the session's model and data folder (stores are reused)."""

    def make(encoder=None, models=None, **options) -> MainWindow:
        """`encoder` stands in for the built-in model (a fake one); `models` maps other
        ModelChoices to their stand-ins; `options` are IndexOptions."""
        qsettings = QSettings(str(settings_file), QSettings.Format.IniFormat)
        preloaded = {ModelChoice("builtin"): encoder or builtin_encoder, **(models or {})}
        encoders = EncoderProvider(app_paths.cache_dir, preloaded=preloaded)
        ctx = AppContext(
            app_paths,
            SettingsStore(qsettings),
            encoders,
            open_url=UrlRecorder(),
            confirm=Answers(),  # no modal dialog in tests: each one says no unless told
        )
        for key, value in options.items():
            setattr(ctx.index_options, key, value)
        window = MainWindow(ctx)
        qtbot.addWidget(window)
        window.show()
        made.append(window)
        return window

    made: list[MainWindow] = []
    yield make
    # pytest-qt has closed and deleted the windows by now; threads they left finishing
    # work in flight must end before the next test (a running QThread destroyed aborts)
    assert wait_for_outliving(), "a thread of a closed window did not end"


@pytest.fixture
def window(make_window) -> MainWindow:
    return make_window()


@pytest.fixture(scope="session")
def gallery(tmp_path_factory, photos_with_copies_dir) -> Path:
    """Real photos plus near-duplicate copies, in a folder of its own for the window tests."""
    dest = tmp_path_factory.mktemp("gallery") / "gallery"
    shutil.copytree(photos_with_copies_dir, dest)
    return dest


def open_and_wait(qtbot, window: MainWindow, folder: Path):
    with qtbot.waitSignal(window.collection.indexing_finished, timeout=INDEX_TIMEOUT_MS) as blocker:
        window.open_folder(folder)
    return blocker.args[0]


def wait_results(qtbot, window: MainWindow, action):
    with qtbot.waitSignal(window.results.results_shown, timeout=60_000) as blocker:
        action()
    return blocker.args[0]


@pytest.fixture
def empty_library(app_paths) -> Path:
    """The session's data folder with no library list, before the test and after it."""
    from visualsearch.core.library import LIBRARY_FILE

    library_file = app_paths.data_dir / LIBRARY_FILE
    library_file.unlink(missing_ok=True)
    yield library_file
    library_file.unlink(missing_ok=True)
