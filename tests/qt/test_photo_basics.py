"""What photo-tool users expect, in the real window with the real model: the viewer,
sorting and the folder filter, keyboard shortcuts in Help."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableWidget

from tests.conftest import distinct_images
from tests.qt.conftest import open_and_wait, wait_results
from visualsearch.core.query import TextQuery


def _names(window) -> list[str]:
    return [item.path.name for item in window.model.items()]


def _step_sort_to(qtbot, combo, text: str) -> None:
    """Arrow keys on the closed combo box, as a keyboard user does (its popup would log
    offscreen-platform warnings)."""
    combo.setFocus()
    steps = combo.findText(text) - combo.currentIndex()
    for _ in range(abs(steps)):
        qtbot.keyClick(combo, Qt.Key.Key_Down if steps > 0 else Qt.Key.Key_Up)


def test_space_opens_the_viewer_arrows_move_and_esc_comes_back(qtbot, window, gallery):
    open_and_wait(qtbot, window, gallery)
    grid = window.grid
    grid.setFocus()
    grid.setCurrentIndex(window.model.index(2))
    qtbot.keyClick(grid, Qt.Key.Key_Space)
    viewer = window.viewer
    assert window.results_area.viewing() and viewer.current_path() == window.model.item(2).path
    qtbot.waitUntil(lambda: viewer.message() is None, timeout=30_000)  # the picture is shown
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_Right)
    third = window.model.item(3)
    assert viewer.current_path() == third.path
    assert grid.currentIndex().row() == 3 and window.details.name.text() == third.path.name
    assert f"4 / {window.model.rowCount()}" in viewer.info.text()
    qtbot.waitUntil(lambda: viewer.info.text().endswith("%"), timeout=30_000)  # decoded
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_1)  # actual size
    assert abs(viewer.zoom() - 1.0) < 1e-6 and viewer.info.text().endswith("— 100 %")
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_Escape)
    assert not window.results_area.viewing() and grid.currentIndex().row() == 3
    assert window.search_box.text() == ""  # Esc closed the viewer, it did not clear a query


def test_double_click_opens_the_viewer(qtbot, window, gallery):
    open_and_wait(qtbot, window, gallery)
    rect = window.grid.visualRect(window.model.index(1))
    qtbot.mouseClick(window.grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(window.grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.results_area.viewing()
    assert window.viewer.current_path() == window.model.item(1).path


def test_sort_by_name_and_size_and_filter_by_folder(qtbot, window, tmp_path):
    folder = tmp_path / "albums"
    shots = distinct_images(tmp_path / "src", 6, size=96)
    names = ["img10.jpg", "img2.jpg", "IMG1.jpg"]
    for sub, shot_names in (("2021", names), ("2022/summer", ["beach.jpg", "z.jpg", "a.jpg"])):
        (folder / sub).mkdir(parents=True)
        for name in shot_names:
            shutil.copy(shots.pop(), folder / sub / name)
    os.truncate(folder / "2022/summer/a.jpg", os.path.getsize(folder / "2022/summer/a.jpg"))
    open_and_wait(qtbot, window, folder)
    bar = window.results_area.sort_bar
    _step_sort_to(qtbot, bar.combo, "Name")
    assert _names(window) == ["a.jpg", "beach.jpg", "IMG1.jpg", "img2.jpg", "img10.jpg", "z.jpg"]
    qtbot.mouseClick(bar.direction, Qt.MouseButton.LeftButton)  # descending
    assert _names(window)[0] == "z.jpg" and _names(window)[-1] == "a.jpg"
    _step_sort_to(qtbot, bar.combo, "Size")
    sizes = [item.record.size for item in window.model.items()]
    assert sizes == sorted(sizes, reverse=True)

    folders = window.results_area.folders
    row = folders.index_of("2022/summer")
    folders.view.scrollTo(row)
    rect = folders.view.visualRect(row)
    qtbot.mouseClick(folders.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert sorted(_names(window)) == ["a.jpg", "beach.jpg", "z.jpg"]
    # a search keeps the folder: only that folder's images answer
    window.search_box.setText("a photo of a cat")
    result = wait_results(qtbot, window, window.results.search_entered)
    assert result.query == TextQuery("a photo of a cat") and len(result.hits) == 6
    assert all(item.rel.startswith("2022/summer/") for item in window.model.items())
    assert window.model.rowCount() == 3
    assert bar.key() == "size"  # the user's order stays for query results too


def test_help_lists_every_shortcut(qtbot, window):
    dialog = window.menus.show_shortcuts()
    qtbot.addWidget(dialog)
    table = dialog.findChild(QTableWidget, "shortcuts")
    rows = {(table.item(r, 1).text(), table.item(r, 2).text()) for r in range(table.rowCount())}
    for action in window.actions():
        if not action.shortcut().isEmpty():
            keys = action.shortcut().toString()
            assert (keys, action.text().replace("&", "")) in rows, action.text()
    assert any(keys == "Esc" and "Back to the grid" in what for keys, what in rows)
    assert window.menus.shortcuts_action.shortcut().toString() == "F1"
    dialog.close()


def test_the_viewer_shows_the_reason_a_file_cannot_be_shown(qtbot, window, tmp_path):
    folder = tmp_path / "photos"
    paths = distinct_images(folder, 3, size=96)
    open_and_wait(qtbot, window, folder)
    Path(paths[1]).write_bytes(b"not an image any more")  # changed after indexing
    window.grid.setFocus()
    window.grid.setCurrentIndex(window.model.index(1))
    qtbot.keyClick(window.grid, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: bool(window.viewer.message()), timeout=30_000)
    qtbot.waitUntil(lambda: "cannot" in (window.viewer.message() or "").lower(), timeout=30_000)


def test_the_chosen_order_is_remembered(qtbot, make_window):
    first = make_window()
    _step_sort_to(qtbot, first.results_area.sort_bar.combo, "Date taken")
    qtbot.mouseClick(first.results_area.sort_bar.direction, Qt.MouseButton.LeftButton)
    first.close()
    second = make_window()
    bar = second.results_area.sort_bar
    assert (bar.key(), bar.descending()) == ("date", True)
