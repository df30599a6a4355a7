# ruff: noqa: F811  (the `areas` fixture is imported from test_controllers)
"""Races a user can cause while a large list is arranged in the pool (seconds at a
million images): each was found by an adversarial run, and each test failed before its
fix. `arrange_at_once = 0` sends a few images through the pool; `Hold` keeps each
arrangement there until released."""

from __future__ import annotations

import threading

from tests.conftest import distinct_images
from tests.qt.test_controllers import TIMEOUT_MS, areas  # noqa: F401 (fixture)
from visualsearch.core.query import ImageQuery
from visualsearch.qt import results_controller
from visualsearch.qt.arrangement import arrange


class Hold:
    """Each arrangement waits in the pool until `release`."""

    def __init__(self, monkeypatch) -> None:
        self.gate, self.started = threading.Event(), threading.Event()
        self.count = 0

        def held(*args, **kwargs):
            if threading.current_thread() is threading.main_thread():
                return arrange(*args, **kwargs)  # a few items, arranged at once
            self.count += 1
            self.started.set()
            assert self.gate.wait(TIMEOUT_MS / 1000)
            return arrange(*args, **kwargs)

        monkeypatch.setattr(results_controller, "arrange", held)

    def release(self) -> None:
        self.gate.set()


def names(areas) -> list[str]:
    return [item.rel for item in areas.area.model.items()]


def settle(qtbot, areas) -> None:
    qtbot.waitUntil(lambda: areas.results._source is None, timeout=TIMEOUT_MS)
    areas.pool.waitForDone(TIMEOUT_MS)
    qtbot.wait(100)


def _open_with_current(qtbot, areas, tmp_path):
    folder = tmp_path / "a"
    distinct_images(folder, 3, size=64)
    distinct_images(folder / "x", 3, size=96)
    areas.results.arrange_at_once = 0
    areas.open(folder)
    settle(qtbot, areas)
    current = "x/" + sorted(p.name for p in (folder / "x").iterdir())[1]
    results = areas.results
    results.grid.setCurrentIndex(results.model.index(names(areas).index(current)))
    return folder, current


def test_sort_changed_twice_while_arranging_keeps_the_current_image(
    qtbot, areas, tmp_path, monkeypatch
):
    _folder, current = _open_with_current(qtbot, areas, tmp_path)
    hold = Hold(monkeypatch)
    areas.results.sort_by("size", descending=True)  # held in the pool
    assert hold.started.wait(TIMEOUT_MS / 1000)
    areas.results.sort_by("date")  # the user changes their mind meanwhile
    hold.release()
    settle(qtbot, areas)
    row = areas.results.grid.currentIndex().row()
    assert row >= 0, "no current image after the second sort"
    assert areas.results.model.item(row).rel == current


def test_a_folder_picked_while_sorting_keeps_the_current_image(qtbot, areas, tmp_path, monkeypatch):
    _folder, current = _open_with_current(qtbot, areas, tmp_path)
    hold = Hold(monkeypatch)
    areas.results.sort_by("size", descending=True)
    assert hold.started.wait(TIMEOUT_MS / 1000)
    folders = areas.area.folders
    folders.view.setCurrentIndex(folders.index_of("x"))  # the user clicks folder "x"
    assert folders.folder() == "x"
    hold.release()
    settle(qtbot, areas)
    assert sorted(names(areas)) == sorted(r for r in areas.collection.records if r.startswith("x/"))
    row = areas.results.grid.currentIndex().row()
    assert row >= 0, "no current image after the folder was picked"
    assert areas.results.model.item(row).rel == current


def test_the_current_image_stays_current_when_sorting_after_show_more(qtbot, areas, tmp_path):
    folder = tmp_path / "a"
    paths = distinct_images(folder, 7, size=64)
    results = areas.results
    results.page_size = 2
    areas.open(folder)
    settle(qtbot, areas)
    with qtbot.waitSignal(results.results_shown, timeout=TIMEOUT_MS):
        results.run_query(ImageQuery(paths[0]))
    assert results._shown is not None and results._shown.more
    with qtbot.waitSignal(results.results_shown, timeout=TIMEOUT_MS):
        results.show_more()
    assert len(names(areas)) == 4
    results.grid.setCurrentIndex(results.model.index(1))  # an image of the first page
    current = results.model.item(1).rel
    results.sort_by("name", descending=True)
    settle(qtbot, areas)
    assert sorted(names(areas), reverse=True) == names(areas)
    row = results.grid.currentIndex().row()
    assert row >= 0, "the current image was lost"
    assert results.model.item(row).rel == current


def test_an_arrangement_landing_does_not_close_the_open_viewer(qtbot, areas, tmp_path, monkeypatch):
    folder = tmp_path / "a"
    distinct_images(folder, 5, size=64)
    results = areas.results
    results.arrange_at_once = 0
    areas.open(folder)
    settle(qtbot, areas)
    hold = Hold(monkeypatch)
    results.sort_by("size", descending=True)
    assert hold.started.wait(TIMEOUT_MS / 1000)
    assert "arranging" in areas.area.query_label.text()
    results.open_viewer(results.model.index(2))  # Space on the grid as it still is
    assert areas.area.viewing()
    shown = areas.area.viewer.current_path()
    hold.release()
    settle(qtbot, areas)
    assert areas.area.viewing(), "the viewer was closed by the arrangement landing"
    assert areas.area.viewer.current_path() == shown


def _setup(qtbot, areas, tmp_path):
    folder = tmp_path / "a"
    top = distinct_images(folder, 4, size=64)
    distinct_images(folder / "x", 3, size=96)
    results = areas.results
    results.arrange_at_once = 0
    results.page_size = 2
    areas.open(folder)
    settle(qtbot, areas)
    return folder, top


def test_folder_picked_after_the_query_is_shown_asks_it_there(qtbot, areas, tmp_path):
    """The control: what the user gets when the matches were already shown."""
    _folder, top = _setup(qtbot, areas, tmp_path)
    with qtbot.waitSignal(areas.results.results_shown, timeout=TIMEOUT_MS):
        areas.results.run_query(ImageQuery(top[0]))
    settle(qtbot, areas)
    folders = areas.area.folders
    with qtbot.waitSignal(areas.results.results_shown, timeout=TIMEOUT_MS):
        folders.view.setCurrentIndex(folders.index_of("x"))
    settle(qtbot, areas)
    assert len(names(areas)) == 2 and all(n.startswith("x/") for n in names(areas))
    assert "in “x”" in areas.area.query_label.text()


def test_folder_picked_while_the_query_is_arranged_asks_it_there(
    qtbot, areas, tmp_path, monkeypatch
):
    _folder, top = _setup(qtbot, areas, tmp_path)
    hold = Hold(monkeypatch)
    with qtbot.waitSignal(areas.results.results_shown, timeout=TIMEOUT_MS):
        areas.results.run_query(ImageQuery(top[0]))
    assert hold.started.wait(TIMEOUT_MS / 1000)  # the matches are arranged in the pool
    folders = areas.area.folders
    folders.view.setCurrentIndex(folders.index_of("x"))  # the user picks folder x meanwhile
    hold.release()
    settle(qtbot, areas)
    print(areas.area.query_label.text(), names(areas))
    assert "in “x”" in areas.area.query_label.text()
    assert len(names(areas)) == 2 and all(n.startswith("x/") for n in names(areas))
