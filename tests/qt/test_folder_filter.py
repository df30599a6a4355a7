"""The folder filter, the sort bar, and file dates where EXIF has none, driven as a user would."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QSize, Qt, QThreadPool
from PySide6.QtGui import QImage

from tests.fakes import FakeEncoder
from visualsearch.core.indexing import index_folder
from visualsearch.core.store import FileRecord, Store
from visualsearch.qt.details_panel import DetailsPanel
from visualsearch.qt.folder_filter import FolderFilter
from visualsearch.qt.image_list_model import GridItem, ImageListModel
from visualsearch.qt.sort_bar import SortBar
from visualsearch.qt.thumbnails import ImageLoader

PATHS = [
    "top.jpg",
    "2021/a.jpg",
    "2021/summer/b.jpg",
    "2021/summer/c.jpg",
    "2021/winter/d.jpg",
    "album 10/e.jpg",
    "album 9/f.jpg",
]


@pytest.fixture
def folders(qtbot) -> FolderFilter:
    widget = FolderFilter()
    qtbot.addWidget(widget)
    widget.resize(240, 400)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_paths(PATHS)
    return widget


def shown_rows(widget: FolderFilter) -> list[str]:
    """The texts of the rows the tree shows (open branches only), top to bottom."""
    rows = []
    index = widget.view.model().index(0, 0)
    while index.isValid():
        rows.append(index.data())
        index = widget.view.indexBelow(index)
    return rows


def click_row(qtbot, widget: FolderFilter, text: str) -> None:
    model = widget.view.model()
    found = model.match(
        model.index(0, 0), Qt.ItemDataRole.DisplayRole, text, 1, Qt.MatchFlag.MatchRecursive
    )
    assert found, f"no row {text!r} in {shown_rows(widget)}"
    rect = widget.view.visualRect(found[0])
    assert rect.isValid(), f"row {text!r} is not shown"
    qtbot.mouseClick(widget.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_the_tree_shows_every_folder_with_its_count(folders):
    assert shown_rows(folders) == [
        "All images (7)",
        "2021 (4)",
        "album 9 (1)",  # natural order: 9 before 10
        "album 10 (1)",
    ]
    assert folders.folder() == ""
    assert folders.view.currentIndex().data() == "All images (7)"
    assert folders.count("2021/summer") == 2 and folders.count("nowhere") is None


def test_clicking_a_folder_chooses_it_and_all_images_undoes_it(qtbot, folders):
    chosen: list[str] = []
    folders.folder_chosen.connect(chosen.append)
    click_row(qtbot, folders, "2021 (4)")
    assert chosen == ["2021"] and folders.folder() == "2021"
    folders.view.expand(folders.view.currentIndex())
    assert "summer (2)" in shown_rows(folders) and "winter (1)" in shown_rows(folders)
    click_row(qtbot, folders, "summer (2)")
    click_row(qtbot, folders, "summer (2)")  # the same folder again: nothing new
    click_row(qtbot, folders, "All images (7)")
    assert chosen == ["2021", "2021/summer", ""]


def test_arrow_keys_choose_folders_too(qtbot, folders):
    chosen: list[str] = []
    folders.folder_chosen.connect(chosen.append)
    folders.view.setFocus()
    qtbot.keyClick(folders.view, Qt.Key.Key_Down)
    qtbot.keyClick(folders.view, Qt.Key.Key_Down)
    assert chosen == ["2021", "album 9"]


def test_the_choice_and_open_branches_survive_new_paths(qtbot, folders):
    chosen: list[str] = []
    folders.folder_chosen.connect(chosen.append)
    folders.view.expand(folders.index_of("2021"))
    click_row(qtbot, folders, "album 9 (1)")
    chosen.clear()
    # more images arrive (a new folder among them): rebuilt, the choice and branches kept
    folders.set_paths([*PATHS, "2021/summer/g.jpg", "2022/h.jpg", "album 9/i.jpg"])
    assert folders.folder() == "album 9"
    assert folders.view.currentIndex().data() == "album 9 (2)"
    assert shown_rows(folders) == [
        "All images (10)",
        "2021 (5)",
        "summer (3)",  # 2021 is still open
        "winter (1)",
        "2022 (1)",
        "album 9 (2)",
        "album 10 (1)",
    ]
    # the same folders with other counts: recounted in place
    folders.set_paths([*PATHS, "2022/h.jpg"])
    assert folders.view.currentIndex().data() == "album 9 (1)"
    assert "summer (2)" in shown_rows(folders)
    assert chosen == []  # the window's own calls do not fire the signal


def test_a_chosen_folder_that_vanished_falls_back_to_all_images(qtbot, folders):
    click_row(qtbot, folders, "album 9 (1)")
    with qtbot.waitSignal(folders.folder_chosen) as blocker:
        folders.set_paths([p for p in PATHS if not p.startswith("album 9/")])
    assert blocker.args == [""] and folders.folder() == ""
    assert folders.view.currentIndex().data() == "All images (6)"


def test_select_folder_chooses_without_the_signal(qtbot, folders):
    with qtbot.assertNotEmitted(folders.folder_chosen):
        assert folders.select_folder("2021/winter")
        assert not folders.select_folder("2021/autumn")
    assert folders.folder() == "2021/winter"
    assert folders.view.currentIndex().data() == "winter (1)"
    assert "winter (1)" in shown_rows(folders)  # its branch was opened to show it


def test_folder_names_that_are_not_text_are_shown_escaped(folders):
    odd = "caf\udce9"  # a Latin-1 byte in a UTF-8 file system, as Python holds it
    folders.set_paths([f"{odd}/a.jpg"])
    assert shown_rows(folders) == ["All images (1)", "caf\\xe9 (1)"]
    assert folders.select_folder(odd) and folders.folder() == odd


# -- sort bar ---------------------------------------------------------------------------------


@pytest.fixture
def bar(qtbot) -> SortBar:
    widget = SortBar()
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def choose(qtbot, bar: SortBar, text: str) -> None:
    """Step to `text` with the arrow keys on the closed combo box, as a keyboard user does.
    (Its list would be a popup window, which the offscreen platform warns about.)"""
    bar.combo.setFocus()
    steps = bar.combo.findText(text) - bar.combo.currentIndex()
    for _ in range(abs(steps)):
        qtbot.keyClick(bar.combo, Qt.Key.Key_Down if steps > 0 else Qt.Key.Key_Up)


def test_sort_choices_and_the_direction_toggle_emit_sort_changed(qtbot, bar):
    items = [bar.combo.itemText(i) for i in range(bar.combo.count())]
    assert items == ["Relevance", "Date taken", "Name", "Folder", "Size"]
    assert bar.combo.currentText() == "Folder" and bar.key() == "folder"  # browsing: no query
    changes: list[tuple[str, bool]] = []
    bar.sort_changed.connect(lambda key, down: changes.append((key, down)))
    choose(qtbot, bar, "Date taken")
    assert bar.direction.toolTip() == "Sorted oldest first; click for newest first"
    qtbot.mouseClick(bar.direction, Qt.MouseButton.LeftButton)
    assert bar.direction.text().startswith("↓")
    assert bar.direction.toolTip() == "Sorted newest first; click for oldest first"
    choose(qtbot, bar, "Size")
    assert changes == [
        ("name", False),  # each step of the arrow keys is a choice, as in any combo box
        ("date", False),
        ("date", True),
        ("name", True),
        ("folder", True),
        ("size", True),
    ]
    assert (bar.key(), bar.descending()) == ("size", True)


def test_relevance_only_for_query_results(qtbot, bar):
    relevance = bar.combo.model().item(0)
    assert not relevance.isEnabled() and bar.key() == "folder"
    changes: list[tuple[str, bool]] = []
    bar.sort_changed.connect(lambda key, down: changes.append((key, down)))
    bar.set_relevance_available(True)  # query results: their ranking is what the user asked
    assert relevance.isEnabled() and bar.combo.currentText() == "Relevance"
    assert not bar.direction.isEnabled()
    choose(qtbot, bar, "Name")
    choose(qtbot, bar, "Relevance")
    bar.set_relevance_available(False)  # browsing again: the fallback, and back after
    assert bar.combo.currentText() == "Folder" and bar.direction.isEnabled()
    bar.set_relevance_available(True)
    assert changes == [
        ("relevance", False),
        ("date", False),
        ("name", False),
        ("date", False),
        ("relevance", False),
        ("folder", False),
        ("relevance", False),
    ]
    # an order the user chose over relevance stays when the next query's results come
    choose(qtbot, bar, "Date taken")
    bar.set_relevance_available(False)
    bar.set_relevance_available(True)
    assert bar.key() == "date" and changes[-1] == ("date", False) and len(changes) == 8


def test_keys_skip_the_disabled_relevance_entry(qtbot, bar):
    changes: list[str] = []
    bar.sort_changed.connect(lambda key, down: changes.append(key))
    bar.combo.setFocus()
    for _ in range(4):
        qtbot.keyClick(bar.combo, Qt.Key.Key_Up)
    assert changes == ["name", "date"] and bar.key() == "date"


def test_set_sort_restores_an_order_without_the_signal(qtbot, bar):
    with qtbot.assertNotEmitted(bar.sort_changed):
        bar.set_sort("size", descending=True)
    assert bar.combo.currentText() == "Size" and bar.direction.isChecked()
    with pytest.raises(ValueError):
        bar.set_sort("colour")


# -- dates where EXIF has none ---------------------------------------------------------------


def _jpeg(path: Path, taken: str | None, mtime: datetime) -> None:
    exif = Image.Exif()
    if taken is not None:
        exif.get_ifd(0x8769)[0x9003] = taken
    Image.new("RGB", (40, 30), (200, 120, 40)).save(path, exif=exif)
    os.utime(path, (mtime.timestamp(), mtime.timestamp()))


@pytest.fixture
def dated_items(tmp_path) -> dict[str, GridItem]:
    """Indexed real files: one with an EXIF date, one without, one with a blank EXIF date."""
    pics = tmp_path / "pics"
    pics.mkdir()
    _jpeg(pics / "exif.jpg", "2019:05:01 08:00:00", datetime(2024, 1, 1))
    _jpeg(pics / "plain.jpg", None, datetime(2020, 3, 1, 12, 0))
    _jpeg(pics / "zeros.jpg", "0000:00:00 00:00:00", datetime(2018, 6, 1, 9, 30))
    with Store(tmp_path / "store", root=pics) as store:
        index_folder(pics, store, FakeEncoder())
        records = store.image_records()
    return {r.path: GridItem(pics / r.path, r.path, r) for r in records}


def _file_image(key: str, size: QSize) -> QImage | None:
    image = QImage(key)
    return None if image.isNull() else image.scaled(size, Qt.AspectRatioMode.KeepAspectRatio)


def test_details_show_the_date_taken_or_the_file_date(qtbot, dated_items):
    pool = QThreadPool()
    panel = DetailsPanel(ImageLoader(_file_image, pool, "test-details"))
    qtbot.addWidget(panel)
    panel.show()
    shown = {}
    for rel, item in dated_items.items():
        panel.show_item(item)
        shown[rel] = panel.fields["Taken"].text()
        qtbot.waitUntil(
            lambda: panel.preview.pixmap() is not None and not panel.preview.pixmap().isNull()
        )
    assert shown == {
        "exif.jpg": "2019-05-01 08:00:00",
        "plain.jpg": "2020-03-01 12:00:00 (file date)",
        "zeros.jpg": "2018-06-01 09:30:00 (file date)",
    }
    pool.waitForDone()


def test_grid_tooltips_show_the_date_taken_or_the_file_date(qtbot, dated_items):
    pool = QThreadPool()
    model = ImageListModel(ImageLoader(_file_image, pool, "test-tips"), icon_size=32)
    model.set_items(list(dated_items.values()))
    tips = {
        model.item(row).rel: model.data(model.index(row), Qt.ItemDataRole.ToolTipRole)
        for row in range(model.rowCount())
    }
    assert tips["exif.jpg"].splitlines()[1].endswith(" · 2019-05-01 08:00:00")
    assert tips["plain.jpg"].splitlines()[1].endswith(" · 2020-03-01 12:00:00 (file date)")
    assert "(file date)" in tips["zeros.jpg"]
    # a record with neither date shows none
    blank = GridItem(Path("/x/y.jpg"), "y.jpg", FileRecord("y.jpg", 10, 0, "h", 4, 3, "PNG"))
    model.set_items([blank])
    assert (
        model.data(model.index(0), Qt.ItemDataRole.ToolTipRole) == "y.jpg\n4 × 3 · PNG · 10 bytes"
    )
    pool.waitForDone()
