"""The controllers' lifecycle, found by a review of the split window: stale state
across folders, answers after closing, lost fallbacks, widgets touched from a worker
thread, the viewer pulled from under the user. Each test failed on the code before."""

from __future__ import annotations

import threading

import pytest

from tests.conftest import distinct_images
from tests.fakes import FakeEncoder, HeldEncoder
from tests.qt.conftest import Answers
from tests.qt.test_controllers import TIMEOUT_MS, Areas
from visualsearch.core.folder import ModelChoice
from visualsearch.qt.model_controller import ModelController


@pytest.fixture
def make_areas(qtbot, tmp_path):
    made = []

    def make(encoder=None) -> Areas:
        made.append(Areas(qtbot, tmp_path, encoder))
        return made[-1]

    yield make
    for areas in made:
        areas.close()


@pytest.fixture
def areas(make_areas):
    return make_areas()


def test_fallback_survives_a_switch_made_during_a_run(qtbot, make_areas, tmp_path):
    folder = tmp_path / "a"
    distinct_images(folder, 6, size=64)
    held = HeldEncoder("embed_images", TIMEOUT_MS / 1000)
    areas = make_areas(held)
    areas.collection.index_options.batch_size = 1
    builtin = ModelChoice("builtin")
    models = ModelController(builtin, areas.collection, areas.status, Answers(), None)
    areas.collection.open_folder(folder)
    assert held.holding.wait(TIMEOUT_MS / 1000)
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not weights")
    failed = []
    areas.collection.indexing_failed.connect(failed.append)
    models.set_model(ModelChoice("clip:ViT-B-32:laion2b_s34b_b79k", bogus))  # during the run
    held.release.set()
    qtbot.waitUntil(lambda: bool(failed), timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not areas.collection.busy(), timeout=TIMEOUT_MS)
    assert models.choice == ModelChoice("builtin"), "the broken model stays chosen"


def test_viewer_stays_open_when_the_run_ends(qtbot, make_areas, tmp_path):
    folder = tmp_path / "a"
    distinct_images(folder, 4, size=64)
    held = HeldEncoder("embed_images", TIMEOUT_MS / 1000, after=1)
    areas = make_areas(held)
    areas.collection.index_options.batch_size = 1
    areas.collection.open_folder(folder)
    assert held.holding.wait(TIMEOUT_MS / 1000)
    qtbot.waitUntil(lambda: areas.area.model.rowCount() >= 1, timeout=TIMEOUT_MS)
    areas.results.open_viewer(areas.area.model.index(0))
    assert areas.area.viewing()
    with qtbot.waitSignal(areas.collection.indexing_finished, timeout=TIMEOUT_MS):
        held.release.set()
    assert areas.area.viewing(), "the viewer was closed under the user when the run ended"


def test_folder_filter_is_not_carried_into_another_folder(qtbot, areas, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    distinct_images(a / "x", 2, size=64)
    distinct_images(a, 2, size=64)
    distinct_images(b / "x", 1, size=64)
    distinct_images(b, 3, size=64)
    areas.open(b)  # b was indexed before: its catalog has x/ when it is opened again
    areas.open(a)
    folders = areas.area.folders
    folders.view.setCurrentIndex(folders.index_of("x"))  # the user picks a/x
    assert folders.folder() == "x" and len(areas.shown()) == 2
    areas.open(b)
    assert folders.folder() == "", f"b opened filtered to {folders.folder()!r}: {areas.shown()}"
    assert len(areas.shown()) == 4


def test_two_trash_requests_both_report(qtbot, areas, tmp_path):
    folder = tmp_path / "a"
    paths = distinct_images(folder, 4, size=64)
    (folder / "copy0.jpg").write_bytes(paths[0].read_bytes())
    (folder / "copy1.jpg").write_bytes(paths[1].read_bytes())
    areas.open(folder)
    with qtbot.waitSignal(areas.cleanup.duplicates_ready, timeout=TIMEOUT_MS):
        areas.cleanup.find_duplicates(0.95)
    assert len(areas.page.groups) == 2
    areas.confirm.answer = True
    gate = threading.Event()
    areas.pool.setMaxThreadCount(1)
    areas.pool.start(lambda: gate.wait(TIMEOUT_MS / 1000))
    areas.cleanup.trash_files([folder / "copy0.jpg"])
    areas.cleanup.trash_files([folder / "copy1.jpg"])
    gate.set()
    areas.pool.waitForDone(TIMEOUT_MS)
    qtbot.wait(300)
    assert not (folder / "copy0.jpg").exists() and not (folder / "copy1.jpg").exists()
    moved = [t for k, t in areas.messages if t.startswith("Moved")]
    assert len(moved) == 2, f"one trash went unreported: {moved}; groups {len(areas.page.groups)}"
    qtbot.waitUntil(lambda: not areas.collection.busy(), timeout=TIMEOUT_MS)


def test_thumbnails_follow_a_new_store_location(qtbot, make_window, tmp_path):
    w = make_window(encoder=FakeEncoder())
    folder = tmp_path / "p"
    distinct_images(folder, 3, size=64)
    with qtbot.waitSignal(w.collection.indexing_finished, timeout=TIMEOUT_MS):
        w.open_folder(folder)
    w.set_store_root(tmp_path / "elsewhere")
    with qtbot.waitSignal(w.collection.indexing_finished, timeout=TIMEOUT_MS):
        w.collection.reindex()
    assert w.collection.target.store_dir.is_relative_to(tmp_path / "elsewhere")
    assert w._store_thumbs.store_dir == w.collection.target.store_dir


def test_reset_settings_resets_the_store_location(qtbot, make_window, tmp_path, app_paths):
    w = make_window(encoder=FakeEncoder())
    w.ctx.confirm = Answers(True)
    w.set_store_root(tmp_path / "elsewhere")
    w.reset_settings()
    assert w.settings.store_root == ""
    assert w.collection.store_base == app_paths.data_dir


def test_no_indexing_starts_after_the_window_closed(qtbot, make_window):
    w = make_window(encoder=FakeEncoder())
    started = []
    w.collection.run_started.connect(lambda: started.append(w.isVisible()))
    w.open_sample()
    w.close()
    assert not w.isVisible()
    qtbot.wait(1500)
    assert started == [], f"indexing started after close: {started}, busy={w.collection.busy()}"


def test_export_finishes_in_the_gui_thread(qtbot, areas, tmp_path):
    from PySide6.QtCore import Qt

    folder = tmp_path / "a"
    distinct_images(folder, 12, size=64)
    areas.open(folder)
    with qtbot.waitSignal(areas.maps.map_ready, timeout=TIMEOUT_MS):
        areas.maps.set_visible(True)
    where = []
    areas.maps.export_finished.connect(
        lambda _r: where.append(threading.current_thread().name), Qt.ConnectionType.DirectConnection
    )
    with qtbot.waitSignal(areas.maps.export_finished, timeout=TIMEOUT_MS):
        areas.maps.export_rows([0, 1], tmp_path / "out")
    assert where == [threading.main_thread().name], f"_exported ran in thread {where}"


def test_show_more_keeps_the_users_sort(qtbot, areas, tmp_path):
    from visualsearch.core.query import ImageQuery

    folder = tmp_path / "a"
    paths = distinct_images(folder, 9, size=64)
    areas.open(folder)
    areas.results.page_size = 3
    with qtbot.waitSignal(areas.results.results_shown, timeout=TIMEOUT_MS):
        areas.results.run_query(ImageQuery(paths[0]))
    areas.results.sort_by("name")
    assert areas.area.sort_bar.key() == "name"
    with qtbot.waitSignal(areas.results.results_shown, timeout=TIMEOUT_MS):
        areas.results.show_more()
    assert areas.area.sort_bar.key() == "name", "Show more put the results back in relevance order"


def test_closing_never_blocks_on_pool_work(qtbot, make_window):
    import time

    w = make_window(encoder=FakeEncoder())
    w.pool.start(lambda: time.sleep(3))  # e.g. odd ones out / duplicates at 100k images
    qtbot.wait(50)
    t = time.perf_counter()
    w.close()
    blocked = time.perf_counter() - t
    assert blocked < 2.5  # a bounded wait, then "Closing…" (it blocked until the task ended)
    assert w.isVisible() and "Closing" in w.indexing.label.text()
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=TIMEOUT_MS)


def test_a_folder_opened_while_the_sample_is_made_stays_open(qtbot, areas, tmp_path):
    mine = tmp_path / "mine"
    distinct_images(mine, 3, size=64)
    areas.collection.open_sample(tmp_path / "sample")  # the user clicks "Try the sample"…
    areas.open(mine)  # …then opens their own folder before it is ready
    areas.pool.waitForDone(TIMEOUT_MS)
    qtbot.wait(300)
    qtbot.waitUntil(lambda: not areas.collection.busy(), timeout=TIMEOUT_MS)
    assert areas.collection.target.folder == mine.resolve(), areas.collection.target.folder


def test_map_selection_bar_is_reset_with_another_folder(qtbot, areas, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    distinct_images(a, 12, size=64)
    distinct_images(b, 4, size=64)
    areas.open(a)
    with qtbot.waitSignal(areas.maps.map_ready, timeout=TIMEOUT_MS):
        areas.maps.set_visible(True)
    areas.maps.show_cluster(0)
    assert areas.map_page.more.isEnabled()
    areas.maps.set_visible(False)
    areas.open(b)
    label = areas.map_page.selection_label.text()
    assert not areas.map_page.more.isEnabled() and "selected" not in label, label


def test_a_run_ending_after_shut_down_touches_no_widget(qtbot, make_areas, tmp_path, monkeypatch):
    """The run that shut_down cancels still tells its end, later: it reached the status
    widget, deleted by then (CI: RuntimeError: JobStatus already deleted, in the next test)."""
    folder = tmp_path / "a"
    distinct_images(folder, 4, size=64)
    held = HeldEncoder("embed_images", TIMEOUT_MS / 1000)
    areas = make_areas(held)
    areas.collection.index_options.batch_size = 1
    areas.collection.open_folder(folder)
    assert held.holding.wait(TIMEOUT_MS / 1000)
    told: list[str] = []
    monkeypatch.setattr(areas.status, "finish", lambda: told.append("status"))
    areas.collection.indexing_finished.connect(lambda report: told.append("finished"))
    areas.collection.batch_committed.connect(lambda records: told.append("batch"))
    areas.collection.shut_down()
    held.release.set()
    qtbot.waitUntil(lambda: not areas.collection.jobs.busy(), timeout=TIMEOUT_MS)
    qtbot.wait(100)
    assert told == []


def test_a_map_ending_after_shut_down_touches_no_widget(qtbot, make_areas, tmp_path, monkeypatch):
    """The same for the map: a map job that ends after shut_down wrote to the map page."""
    from visualsearch.qt import workers

    folder = tmp_path / "a"
    distinct_images(folder, 6, size=64)
    areas = make_areas()
    areas.open(folder)
    started, release = threading.Event(), threading.Event()
    real_work = workers.MapJob.work

    def held_work(job):
        started.set()
        assert release.wait(TIMEOUT_MS / 1000)
        return real_work(job)

    monkeypatch.setattr(workers.MapJob, "work", held_work)
    told: list[object] = []
    areas.maps.map_ready.connect(told.append)
    areas.maps.refresh()
    assert started.wait(TIMEOUT_MS / 1000)
    areas.map_page.message.setText("before")
    areas.maps.shut_down()
    release.set()
    qtbot.waitUntil(lambda: not areas.maps.jobs.busy(), timeout=TIMEOUT_MS)
    qtbot.wait(100)
    assert told == [] and areas.map_page.message.text() == "before"
