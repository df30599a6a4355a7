"""All images of a large folder are arranged (listed, filtered, sorted) in the pool, not on
the GUI thread: a million took 7-30 s there. `arrange_at_once = 0` sends even a few
images through that path, so that it is tested with real files and the real indexer."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.conftest import distinct_images
from tests.qt.test_controllers import TIMEOUT_MS, areas  # noqa: F401 (fixture)
from visualsearch.core.query import ImageQuery
from visualsearch.core.sorting import folder_tree
from visualsearch.qt import results_controller
from visualsearch.qt.arrangement import arrange, browse_items
from visualsearch.qt.image_list_model import ItemPaths


def _names(areas_) -> list[str]:
    return [item.rel for item in areas_.area.model.items()]


def test_sorting_all_images_happens_in_the_pool_and_keeps_the_current_image(
    qtbot,
    areas,  # noqa: F811
    tmp_path,
):
    folder = tmp_path / "a"
    paths = distinct_images(folder / "x", 3, size=64) + distinct_images(folder, 3, size=96)
    results = areas.results
    results.arrange_at_once = 0
    areas.open(folder)
    qtbot.waitUntil(lambda: results._source is None, timeout=TIMEOUT_MS)  # arranged
    assert len(_names(areas)) == 6
    current = paths[4].relative_to(folder).as_posix()
    results.grid.setCurrentIndex(results.model.index(_names(areas).index(current)))
    before = _names(areas)

    results.sort_by("size", descending=True)
    assert _names(areas) == before  # nothing arranged on this thread yet
    assert "arranging 6 images" in areas.area.query_label.text()
    by_size = sorted(_names(areas), key=lambda rel: -(folder / rel).stat().st_size)
    qtbot.waitUntil(lambda: _names(areas) == by_size, timeout=TIMEOUT_MS)
    assert "arranging" not in areas.area.query_label.text()
    row = results.grid.currentIndex().row()
    assert results.model.item(row).rel == current  # the same image stays current

    # the viewer gets the grid's paths as they are asked for; ←/→ move the grid with it
    results.open_viewer(results.model.index(0))
    viewer = areas.area.viewer
    assert isinstance(viewer._paths, ItemPaths) and len(viewer._paths) == 6
    viewer.go_to(2)
    assert results.grid.currentIndex().row() == 2
    assert viewer.current_path() == folder / by_size[2]


def test_images_indexed_while_all_images_are_arranged_join_them(
    qtbot,
    areas,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """A watcher's run can commit a batch while a million images are still being
    arranged; the grid then shows the arrangement and the new image, not one of them."""
    folder = tmp_path / "a"
    distinct_images(folder, 4, size=64)
    areas.results.arrange_at_once = 0
    areas.open(folder)
    qtbot.waitUntil(lambda: areas.results._source is None, timeout=TIMEOUT_MS)
    assert len(_names(areas)) == 4
    held, arranging = threading.Event(), threading.Event()

    def held_arrange(*args, **kwargs):
        arranging.set()
        assert held.wait(TIMEOUT_MS / 1000)
        return arrange(*args, **kwargs)

    monkeypatch.setattr(results_controller, "arrange", held_arrange)
    areas.results.show_all()  # all images again, held in the pool
    assert arranging.wait(TIMEOUT_MS / 1000)
    other = distinct_images(tmp_path / "other", 6, size=80)
    with qtbot.waitSignal(areas.collection.batch_committed, timeout=TIMEOUT_MS):
        (folder / "new.jpg").write_bytes(other[5].read_bytes())  # the watcher indexes it
    assert "new.jpg" not in _names(areas)
    held.set()
    qtbot.waitUntil(lambda: "new.jpg" in _names(areas), timeout=TIMEOUT_MS)
    assert sorted(_names(areas)) == sorted(areas.collection.records)
    assert len(_names(areas)) == 5


def test_a_query_during_an_arrangement_drops_it(
    qtbot,
    areas,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """All images still being arranged when a query is asked: the query's matches are
    shown, and the arrangement that ends later changes nothing."""
    folder = tmp_path / "a"
    distinct_images(folder, 4, size=64)
    areas.results.arrange_at_once = 0
    areas.open(folder)
    qtbot.waitUntil(lambda: areas.results._source is None, timeout=TIMEOUT_MS)
    held = threading.Event()

    def held_arrange(*args, **kwargs):
        assert held.wait(TIMEOUT_MS / 1000)
        return arrange(*args, **kwargs)

    monkeypatch.setattr(results_controller, "arrange", held_arrange)
    areas.results.show_all()
    assert "arranging" in areas.area.query_label.text()
    monkeypatch.undo()
    with qtbot.waitSignal(areas.results.results_shown, timeout=TIMEOUT_MS):
        areas.results.run_query(ImageQuery(sorted(folder.iterdir())[0]))
    qtbot.waitUntil(lambda: areas.results._source is None, timeout=TIMEOUT_MS)
    shown = _names(areas)  # the query's matches
    held.set()  # the dropped arrangement ends: it changes nothing
    qtbot.wait(200)
    assert _names(areas) == shown and len(shown) < 4
    assert "arranging" not in areas.area.query_label.text()
    assert "like" in areas.area.query_label.text()


def _opened_and_settled(qtbot, made, tmp_path) -> None:
    """A folder of 3 opened in `made` (Areas), its folder tree counted in the pool,
    nothing left running."""
    folder = tmp_path / "a"
    distinct_images(folder, 3, size=64)
    made.results.arrange_at_once = 0
    made.open(folder)
    qtbot.waitUntil(lambda: made.results._source is None, timeout=TIMEOUT_MS)
    made.pool.waitForDone(TIMEOUT_MS)
    qtbot.wait(50)


def test_a_folder_count_that_ends_after_shut_down_is_dropped(
    qtbot,
    areas,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """The folder tree counted in the pool and finished after the controller was shut down
    was handed to the folder filter, deleted by then: a RuntimeError in the next test."""
    _opened_and_settled(qtbot, areas, tmp_path)
    held, shown = threading.Event(), []

    def held_tree(paths):
        assert held.wait(TIMEOUT_MS / 1000)
        return folder_tree(paths)

    monkeypatch.setattr(results_controller, "folder_tree", held_tree)
    monkeypatch.setattr(areas.area.folders, "set_tree", shown.append)
    areas.results._update_folders()
    areas.results.shut_down()
    held.set()
    areas.pool.waitForDone(TIMEOUT_MS)
    qtbot.wait(100)
    assert shown == []


def test_browse_items_join_paths_only_when_asked(tmp_path):
    from visualsearch.core.store import FileRecord

    records = [FileRecord(f"d/{i}.jpg", i, 0) for i in (3, 1, 2)]
    items = browse_items(tmp_path, records)
    assert [it.rel for it in items] == ["d/1.jpg", "d/2.jpg", "d/3.jpg"]
    assert all(it._path is None for it in items)  # a million joins took 7 s
    assert items[0].path == tmp_path / "d" / "1.jpg"
    assert ItemPaths(items)[1:] == [tmp_path / "d/2.jpg", tmp_path / "d/3.jpg"]
    assert [Path(p) for p in ItemPaths(items)] == [tmp_path / it.rel for it in items]


def test_select_all_on_many_images_asks_no_tags_and_lists_no_paths(
    qtbot, make_window, tmp_path, monkeypatch
):
    """Ctrl+A listed every selected path (a million joins) to suggest tags for their mean
    vector; above TAGS_FOR_UP_TO images no tags are asked for."""
    from tests.fakes import FakeEncoder
    from visualsearch.qt import main_window

    window = make_window(encoder=FakeEncoder())
    distinct_images(tmp_path / "a", 4, size=64)
    with qtbot.waitSignal(window.collection.indexing_finished, timeout=TIMEOUT_MS):
        window.open_folder(tmp_path / "a")
    asked = []
    monkeypatch.setattr(window.results, "request_tags", asked.append)
    monkeypatch.setattr(main_window, "TAGS_FOR_UP_TO", 3)
    window.grid.selectAll()
    assert window.files.selection_size() == 4 and not asked
    monkeypatch.setattr(main_window, "TAGS_FOR_UP_TO", 4)
    window.grid.clearSelection()
    window.grid.selectAll()
    assert len(asked) == 1 and len(asked[0]) == 4


def test_a_run_told_after_shut_down_touches_no_widget(
    qtbot,
    areas,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """A run's end told after the controller was shut down started a folder count whose
    answer reached the deleted folder filter (CI: RuntimeError in the next test)."""
    _opened_and_settled(qtbot, areas, tmp_path)
    shown: list = []
    monkeypatch.setattr(areas.area.folders, "set_tree", shown.append)
    rows = areas.area.model.rowCount()
    areas.results.shut_down()
    areas.results.shut_down()  # twice, as a window closed twice does
    areas.collection.catalog_loaded.emit()
    areas.collection.catalog_replaced.emit()
    areas.collection.batch_committed.emit(list(areas.collection.records.values()))
    areas.pool.waitForDone(TIMEOUT_MS)
    qtbot.wait(700)  # past the folder tree's timer
    assert shown == []
    assert areas.area.model.rowCount() == rows
