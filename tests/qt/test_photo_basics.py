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
    assert "3 in “2022/summer”" in window.results_area.query_label.text()
    # a search within the folder ranks that folder's images (not the best overall that
    # happen to lie there), best first whatever order all images are shown in
    window.search_box.setText("a photo of a cat")
    result = wait_results(qtbot, window, window.results.search_entered)
    assert result.query == TextQuery("a photo of a cat") and result.candidates == 3
    assert all(hit.path.parent.name == "summer" for hit in result.hits)
    assert [item.path for item in window.model.items()] == [hit.path for hit in result.hits]
    assert bar.key() == "relevance" and "in “2022/summer”" in window.results_area.query_label.text()
    window.results.show_all()  # all images: the order chosen for them comes back
    assert (bar.key(), bar.descending()) == ("size", True) and window.model.rowCount() == 3


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


def test_a_long_file_name_never_widens_the_window(qtbot, window, tmp_path):
    """A 118-character name made the window 1555 px wide on a 1400 px screen."""
    folder = tmp_path / "phone"
    (shot,) = distinct_images(tmp_path / "src", 1, size=96)
    long_name = "Screenshot_2024-04-13-18-35-12-" + "many.parts.and.more-" * 4 + "end.jpg"
    folder.mkdir()
    shutil.copy(shot, folder / long_name)
    deep = folder / ("a_folder_with_a_very_long_name_" * 3) / "and_deeper_still"
    deep.mkdir(parents=True)
    shutil.copy(shot, deep / "x.jpg")
    open_and_wait(qtbot, window, folder)
    window.resize(960, 700)
    qtbot.waitUntil(lambda: window.width() == 960)
    for row in range(window.model.rowCount()):
        window.grid.setCurrentIndex(window.model.index(row))
        qtbot.wait(50)  # layouts settle
        assert window.width() == 960 and window.minimumSizeHint().width() <= 960
    window.grid.setCurrentIndex(window.model.index(window.model.row_of_rel(long_name)))
    assert window.details.name.text() == long_name  # in full, where it is asked for
    assert long_name in window.details.name.toolTip()


def test_the_folder_tree_follows_a_first_indexing_run(qtbot, tmp_path, make_window):
    """The tree showed "All images (0)" for the whole of a long first run."""
    from tests.fakes import HeldEncoder

    encoder = HeldEncoder("embed_images", 60, after=1)  # the second batch waits
    window = make_window(encoder=encoder, batch_size=2)
    folder = tmp_path / "photos"
    shots = distinct_images(tmp_path / "src", 6, size=64)
    for i, shot in enumerate(shots):
        (folder / ("2021" if i < 2 else "2022")).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, folder / ("2021" if i < 2 else "2022") / shot.name)
    window.open_folder(folder)
    try:
        assert encoder.holding.wait(60)  # one batch is in, the run goes on
        folders = window.results_area.folders
        shown = window.collection
        qtbot.waitUntil(lambda: 0 < folders.count("") == len(shown.records) < 6, timeout=5_000)
        assert window.collection.busy()
    finally:
        encoder.release.set()
    qtbot.waitUntil(lambda: not window.collection.busy(), timeout=60_000)
    qtbot.waitUntil(lambda: folders.count("") == 6, timeout=5_000)
    assert folders.count("2022") == 4


def test_duplicates_tab_invites_before_anything_was_looked_for(qtbot, window, tmp_path):
    folder = tmp_path / "photos"
    distinct_images(folder, 3, size=64)
    open_and_wait(qtbot, window, folder)
    window.tabs.setCurrentWidget(window.duplicates_page)
    assert window.duplicates_page.summary.text().startswith("Find groups of copies")
    assert window.details.name.text() == ""  # not the Images tab's image


def test_the_viewer_keeps_position_and_scale_in_a_narrow_window(qtbot, window, tmp_path):
    folder = tmp_path / "phone"
    (shot,) = distinct_images(tmp_path / "src", 1, size=96)
    folder.mkdir()
    shutil.copy(shot, folder / ("PXL_20240414_101010123.MP." * 4 + "jpg"))
    open_and_wait(qtbot, window, folder)
    window.resize(960, 700)
    window.grid.setFocus()
    window.grid.setCurrentIndex(window.model.index(0))
    qtbot.keyClick(window.grid, Qt.Key.Key_Space)
    viewer = window.viewer
    qtbot.waitUntil(lambda: viewer.info.text().endswith("%"), timeout=30_000)
    text = viewer.info.text()
    assert "… " not in text[-12:] and " — 1 / 1 — 96×96 — " in text
    assert viewer.info.fontMetrics().horizontalAdvance(text) <= viewer.info.width()


def test_the_open_folder_stays_up_to_date_without_f5(qtbot, window, tmp_path):
    """Photos copied into the open folder become findable by a text query with no user
    action; a deleted one leaves the results (issue 12: always up to date)."""
    from visualsearch.core.sample import skimage_photos

    folder = tmp_path / "photos"
    folder.mkdir()
    photos = {p.stem: p for p in skimage_photos()}
    for stem in ("coffee", "rocket", "astronaut"):
        shutil.copy(photos[stem], folder / photos[stem].name)
    open_and_wait(qtbot, window, folder)
    with qtbot.waitSignal(window.collection.indexing_finished, timeout=60_000) as run:
        shutil.copy(photos["chelsea"], folder / "new-cat.png")  # no click, no F5
    assert run.args[0].encoded == 1
    window.search_box.setText("a photo of a cat")
    result = wait_results(qtbot, window, window.results.search_entered)
    assert result.hits[0].path.name == "new-cat.png"
    with qtbot.waitSignal(window.collection.indexing_finished, timeout=60_000):
        (folder / "new-cat.png").unlink()
    result = wait_results(qtbot, window, window.results.search_entered)
    assert "new-cat.png" not in [hit.path.name for hit in result.hits]
    assert "new-cat.png" not in [item.path.name for item in window.model.items()]


def test_the_grid_shows_the_date_or_size_it_is_sorted_by(qtbot, window, tmp_path):
    """Sorted by date taken or size, the grid looked randomly ordered: the value now
    sits in the thumbnail's corner (a file's date marked as an estimate)."""
    import time as clock

    folder = tmp_path / "photos"
    shots = distinct_images(folder, 3, size=96)
    stamp = clock.mktime((2019, 5, 17, 12, 0, 0, 0, 0, -1))
    os.utime(shots[0], (stamp, stamp))
    open_and_wait(qtbot, window, folder)
    model = window.model
    window.results.sort_by("date")
    first = model.item(0)
    assert first.path.name == shots[0].name
    assert model.badge(first) == ("2019-05-17", True)  # no EXIF: the file's date
    window.results.sort_by("size", descending=True)
    sizes = [model.badge(item)[0] for item in model.items()]
    assert all(text.endswith(("KB", "MB", "B")) for text in sizes)
    window.grid.viewport().grab()  # painted with the badge, no error
    window.results.sort_by("name")
    assert model.badge(model.item(0)) is None  # browsing by name: nothing in the corner
