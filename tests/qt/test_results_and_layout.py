"""Issue 11, bugs 5, 6 and 9: results beyond a page, the time the user waited, and a
window that fits half of a 1920-px screen."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from datetime import datetime
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QObject, QPoint, QRect, Qt, Signal, Slot
from PySide6.QtGui import QTextDocumentFragment
from PySide6.QtWidgets import QLabel

from tests.conftest import distinct_images
from tests.qt.conftest import open_and_wait, wait_results
from visualsearch.core.query import TextQuery
from visualsearch.core.sample import VARIANTS, skimage_photos
from visualsearch.qt.widgets import ExportDialog

HALF_SCREEN = 960  # half of a 1920-px screen


def _header(window) -> str:
    return QTextDocumentFragment.fromHtml(window.results_area.query_label.text()).toPlainText()


def _paths(window) -> list[Path]:
    return [window.model.item(r).path for r in range(window.model.rowCount())]


# -- bug 5: no silent cap ------------------------------------------------------------------


def test_results_beyond_a_page_are_counted_and_shown_on_request(qtbot, window, tmp_path):
    images = distinct_images(tmp_path / "photos", 12, size=64)
    open_and_wait(qtbot, window, tmp_path / "photos")
    window.results.page_size = 5

    result = wait_results(qtbot, window, lambda: window.results.find_similar(images[0]))
    assert len(result.hits) == 5 and result.more and result.candidates == 11
    assert window.model.rowCount() == 5
    assert _header(window).startswith(f"The best 5 of 11 images like {images[0].name}")
    assert window.results_area.more_button.isVisible()

    first_page = _paths(window)
    window.grid.setCurrentIndex(window.model.index(3))
    result = wait_results(
        qtbot, window, window.results_area.more_button.click
    )  # the next page, below
    assert window.model.rowCount() == 10 and _paths(window)[:5] == first_page
    assert window.grid.currentIndex().row() == 3  # the rows shown stayed where they were
    assert "The best 10 of 11" in _header(window)

    result = wait_results(qtbot, window, window.results_area.every_match_action.trigger)
    assert window.model.rowCount() == 11 and not result.more
    assert images[0] not in _paths(window)  # the query image itself is left out
    assert _header(window).startswith(f"11 images like {images[0].name}")
    assert not window.results_area.more_button.isVisible()

    # a text query with the built-in model ranks every image: all of them can be shown
    window.search_box.setText("a photo of a cat")
    result = wait_results(
        qtbot, window, lambda: qtbot.keyClick(window.search_box, Qt.Key.Key_Return)
    )
    assert result.query == TextQuery("a photo of a cat")
    assert window.model.rowCount() == 5 and "The best 5 of 12 images" in _header(window)
    wait_results(qtbot, window, window.results_area.every_match_action.trigger)
    assert window.model.rowCount() == 12 and not window.results_area.more_button.isVisible()

    wait_results(qtbot, window, window.results.show_all)  # all images: nothing more to ask for
    assert not window.results_area.more_button.isVisible()


# -- bug 6: the time the user waited -------------------------------------------------------


class _EngineBusy(QObject):
    """Keeps the search engine's thread busy until released, as a model loading does."""

    hold = Signal()

    def __init__(self, engine_thread) -> None:
        super().__init__()
        self.released = threading.Event()
        self._worker = _Holder(self.released)
        self._worker.moveToThread(engine_thread)
        self.hold.connect(self._worker.wait)  # queued: runs in the engine's thread


class _Holder(QObject):
    def __init__(self, released: threading.Event) -> None:
        super().__init__()
        self.released = released

    @Slot()
    def wait(self) -> None:
        self.released.wait(30)


def _waited_seconds(header: str) -> float:
    match = re.search(r"· ([\d.]+) (ms|s)\b", header)
    assert match, header
    return float(match[1]) / (1000 if match[2] == "ms" else 1)


def test_the_header_shows_how_long_the_user_waited(qtbot, window, tmp_path):
    distinct_images(tmp_path / "photos", 4, size=64)
    open_and_wait(qtbot, window, tmp_path / "photos")
    busy = _EngineBusy(window.results.thread)
    busy.hold.emit()
    try:
        window.search_box.setText("a photo of a cat")
        asked = time.perf_counter()
        qtbot.keyClick(window.search_box, Qt.Key.Key_Return)  # asked now; the engine is busy
        # by the clock: a coarse Qt timer may end qtbot.wait up to 5 % early
        qtbot.waitUntil(lambda: time.perf_counter() - asked >= 1.6, timeout=10_000)
        with qtbot.waitSignal(window.results.results_shown, timeout=60_000) as shown:
            busy.released.set()
    finally:
        busy.released.set()
    result = shown.args[0]
    waited = _waited_seconds(_header(window))
    assert waited >= 1.5, _header(window)  # not the engine's own time
    assert result.seconds < waited


# -- bug 9: half a 1920-px screen ----------------------------------------------------------


def _inside(widget, window) -> bool:
    rect = QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())
    return window.rect().contains(rect)


def test_the_window_fits_half_a_1920_px_screen(qtbot, window, tmp_path):
    distinct_images(tmp_path / "photos", 3, size=64)
    open_and_wait(qtbot, window, tmp_path / "photos")
    assert window.minimumSizeHint().width() <= HALF_SCREEN

    window.resize(HALF_SCREEN, 700)
    qtbot.waitUntil(lambda: window.width() == HALF_SCREEN)
    button = window.menus.model_button
    assert button.isVisible() and _inside(button, window)  # not in the toolbar's overflow
    assert button.width() >= button.sizeHint().width()
    for i in range(window.tabs.count()):  # no tab is squeezed under its minimum
        window.tabs.setCurrentIndex(i)
        page = window.tabs.widget(i)
        qtbot.waitUntil(page.isVisible)
        assert page.width() >= page.minimumSizeHint().width(), window.tabs.tabText(i)
        assert _inside(page, window)


def test_the_export_dialogs_text_is_not_clipped(qtbot, tmp_path):
    dialog = ExportDialog(1234, 12, str(tmp_path))
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    info = dialog.findChildren(QLabel)[0]
    assert info.text().startswith("1,234 images go into 12 folder(s)")
    assert info.height() >= info.heightForWidth(info.width())  # every line shown


def _duplicates_folder(folder: Path) -> dict[str, Path]:
    """An exact copy deep in sub-folders, a JPEG with an EXIF date, files without one."""
    photos = {p.stem: p for p in skimage_photos()}
    deep = folder / "holidays 2021" / "camera uploads" / "from the phone"
    deep.mkdir(parents=True)
    with Image.open(photos["chelsea"]) as img:
        exif = Image.Exif()
        exif[0x0132] = "2021:06:01 12:34:56"  # DateTime
        img.convert("RGB").save(folder / "chelsea.jpg", quality=95, exif=exif)
    shutil.copy2(folder / "chelsea.jpg", deep / "chelsea copy.jpg")
    shutil.copy2(photos["coffee"], folder / "coffee.png")
    with Image.open(photos["coffee"]) as img:
        (deep / "coffee-small.jpg").write_bytes(VARIANTS["small"](img.convert("RGB")))
    stamp = datetime(2019, 3, 4, 5, 6).timestamp()
    os.utime(folder / "coffee.png", (stamp, stamp))
    return {"exif": folder / "chelsea.jpg", "no exif": folder / "coffee.png"}


def test_duplicates_show_dates_folders_and_reasons_in_full(qtbot, window, tmp_path):
    files = _duplicates_folder(tmp_path / "photos")
    open_and_wait(qtbot, window, tmp_path / "photos")
    window.resize(HALF_SCREEN, 700)
    window.tabs.setCurrentWidget(window.duplicates_page)
    page = window.duplicates_page
    with qtbot.waitSignal(window.cleanup.duplicates_ready, timeout=60_000):
        page.find.click()
    tree = page.tree
    rows = {item.data(0, Qt.ItemDataRole.UserRole): item for item in page.image_items()}
    assert len(rows) == 4

    dates = {Path(path).name: item.text(3) for path, item in rows.items()}
    assert all(dates.values()), dates  # no image without a date
    assert dates["chelsea.jpg"] == "2021-06-01"  # EXIF
    assert dates["coffee.png"] == "2019-03-04 (file date)"
    assert str(files["no exif"]) in rows

    deep = rows[
        str(tmp_path / "photos/holidays 2021/camera uploads/from the phone/chelsea copy.jpg")
    ]
    assert deep.text(5) == "photos/holidays 2021/camera uploads/from the phone"
    keepers = [item for item in rows.values() if "keep:" in item.text(0)]
    assert len(keepers) == 2
    line = tree.fontMetrics().lineSpacing()
    for column in range(tree.columnCount()):  # no text is cut off: each column is wide enough
        assert tree.columnWidth(column) >= tree.sizeHintForColumn(column), column
    for item in keepers:  # and each keeper's row is tall enough for its reasons' lines
        lines = item.text(0).count("\n") + 1
        assert tree.visualItemRect(item).height() >= lines * line
