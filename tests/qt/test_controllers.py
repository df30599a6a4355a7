"""Each area's controller on its own, without the main window, with the fake encoder:
what it shows, and the one "latest wins" rule for background results."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import QLineEdit

from tests.conftest import distinct_images
from tests.fakes import FakeEncoder, HeldEncoder
from tests.qt.conftest import Answers
from visualsearch.core.encoders.base import ModelInfo
from visualsearch.core.folder import ModelChoice
from visualsearch.core.indexing import IndexOptions
from visualsearch.core.query import ImageQuery, TextQuery
from visualsearch.core.store import Store
from visualsearch.qt.cleanup_controller import CleanupController
from visualsearch.qt.collection_controller import CollectionController
from visualsearch.qt.duplicates_page import DuplicatesPage
from visualsearch.qt.image_list_model import ImageListModel
from visualsearch.qt.map_controller import MapController
from visualsearch.qt.map_page import MapPage
from visualsearch.qt.model_controller import ModelController
from visualsearch.qt.results_area import ResultsArea
from visualsearch.qt.results_controller import ResultsController
from visualsearch.qt.thumbnails import ImageLoader, StoreThumbnails, load_preview
from visualsearch.qt.viewer import ImageViewer
from visualsearch.qt.widgets import JobStatus
from visualsearch.qt.workers import EncoderProvider, TaskSlot, wait_for_outliving

TIMEOUT_MS = 60_000


class Areas:
    """The controllers wired as the window wires them, over widgets of their own."""

    def __init__(self, qtbot, tmp_path: Path, encoder: FakeEncoder | None = None) -> None:
        self.pool = QThreadPool()
        self.pool.setMaxThreadCount(2)
        self.encoder = encoder or FakeEncoder()
        self.encoders = EncoderProvider(
            tmp_path / "cache", preloaded={ModelChoice("builtin"): self.encoder}
        )
        self.status = JobStatus()
        self.collection = CollectionController(
            self.encoders, IndexOptions(), tmp_path / "stores", self.status, self.pool
        )
        thumbnails = ImageLoader(StoreThumbnails(), self.pool, "thumb")
        previews = ImageLoader(load_preview, self.pool, "preview", threads=1)
        self.viewer = ImageViewer(self.pool)
        self.area = ResultsArea(ImageListModel(thumbnails, 96), 96, self.viewer)
        self.search_box = QLineEdit()
        self.results = ResultsController(
            self.collection,
            self.area,
            self.search_box,
            previews,
            self.encoders,
            tmp_path / "cache",
            [],
            self.pool,
        )
        self.page = DuplicatesPage(thumbnails)
        self.confirm = Answers(answer=False)
        self.cleanup = CleanupController(
            self.page, self.collection, self.results, self.encoders, self.pool, self.confirm, None
        )
        self.map_page = MapPage(thumbnails)
        self.maps = MapController(
            self.map_page,
            self.collection,
            self.results,
            self.encoders,
            tmp_path / "cache",
            self.status,
            self.pool,
            None,
        )
        self.messages: list[tuple[str, str]] = []
        for source in (self.collection, self.cleanup, self.maps):
            source.message.connect(lambda text, kind: self.messages.append((kind, text)))
        self.qtbot = qtbot
        for widget in (self.area, self.page, self.map_page, self.status):
            qtbot.addWidget(widget)

    def open(self, folder: Path):
        with self.qtbot.waitSignal(self.collection.indexing_finished, timeout=TIMEOUT_MS) as b:
            self.collection.open_folder(folder)
        return b.args[0]

    def shown(self) -> list[str]:
        return [item.rel for item in self.area.model.items()]

    def close(self) -> None:
        self.collection.shut_down()  # stops its folder watcher too
        self.results.shut_down()
        assert self.results.join_engine(TIMEOUT_MS)
        self.pool.waitForDone(TIMEOUT_MS)
        assert wait_for_outliving()


@pytest.fixture
def areas(qtbot, tmp_path):
    made = Areas(qtbot, tmp_path)
    yield made
    made.close()


def test_collection_indexes_and_tells_the_model(qtbot, areas, tmp_path):
    folder = tmp_path / "a"
    distinct_images(folder, 5, size=64)
    with qtbot.waitSignal(areas.collection.model_ready, timeout=TIMEOUT_MS) as ready:
        report = areas.open(folder)
    assert report.encoded == 5 and len(areas.collection.records) == 5
    # what the window needs of the model comes with the signal: it never loads one itself
    assert ready.args[0] == ModelInfo("fake-v1", 0.9, True, 48, "cpu")
    assert sorted(areas.shown()) == sorted(areas.collection.records)  # all images, in the grid


def test_opening_another_folder_during_a_run_opens_it_when_the_run_stops(qtbot, areas, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    distinct_images(a, 6, size=64)
    distinct_images(b, 3, size=64)
    areas.collection.index_options.batch_size = 1
    with qtbot.waitSignal(areas.collection.folder_opened, timeout=TIMEOUT_MS):
        areas.collection.open_folder(a)
        areas.collection.open_folder(b)  # cancels a's run; b is opened once it has stopped
    qtbot.waitUntil(lambda: areas.collection.target.folder == b.resolve(), timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not areas.collection.busy(), timeout=TIMEOUT_MS)
    assert len(areas.collection.records) == 3
    assert sorted(Path(p).name for p in areas.shown()) == sorted(p.name for p in b.iterdir())


def test_results_answer_a_query_and_older_tickets_are_dropped(qtbot, areas, tmp_path):
    folder = tmp_path / "a"
    paths = distinct_images(folder, 6, size=64)
    areas.open(folder)
    with qtbot.waitSignal(areas.results.results_shown, timeout=TIMEOUT_MS) as shown:
        areas.results.run_query(ImageQuery(paths[2]))
    result = shown.args[0]
    hits = [hit.path.name for hit in result.hits]
    assert len(hits) == 5 and paths[2].name not in hits  # the others, most alike first
    assert areas.shown() == hits
    assert "images like" in areas.area.query_label.text()
    old = areas.results.ticket
    newer = areas.results.supersede()
    item = areas.results.item_for(paths[0].name)
    assert not areas.results.show_items(old, [item], "stale")  # superseded: dropped
    assert areas.results.show_items(newer, [item], "one image")
    assert areas.shown() == [paths[0].name]


def test_odd_ones_out_for_a_folder_left_behind_are_dropped(qtbot, areas, tmp_path):
    """Odd ones out computed for folder A and arriving after B was opened were shown
    with B's root (and their ticket was taken on arrival, over newer queries)."""
    a, b = tmp_path / "a", tmp_path / "b"
    distinct_images(a, 6, size=64)
    distinct_images(b, 4, size=64)
    areas.open(a)
    gate = threading.Event()
    areas.pool.setMaxThreadCount(1)
    areas.pool.start(lambda: gate.wait(TIMEOUT_MS / 1000))  # holds the only pool thread
    areas.cleanup.show_outliers()  # queued behind the gate
    areas.open(b)
    gate.set()
    areas.pool.waitForDone(TIMEOUT_MS)
    qtbot.wait(200)  # any answer has been delivered by now
    assert sorted(areas.shown()) == sorted(p.name for p in b.iterdir())
    assert not areas.area.query_label.text().startswith("Odd ones out")


def test_odd_ones_out_are_shown_for_the_open_folder(qtbot, areas, tmp_path):
    folder = tmp_path / "a"
    distinct_images(folder, 6, size=64)
    areas.open(folder)
    with qtbot.waitSignal(areas.results.results_shown, timeout=TIMEOUT_MS):
        areas.cleanup.show_outliers()
    assert areas.area.query_label.text().startswith("Odd ones out · 6 images")
    scores = [item.score for item in areas.area.model.items()]
    assert scores == sorted(scores, reverse=True)


def test_duplicates_found_then_trash_refused_moves_nothing(qtbot, areas, tmp_path):
    folder = tmp_path / "a"
    paths = distinct_images(folder, 4, size=64)
    (folder / "copy.jpg").write_bytes(paths[0].read_bytes())
    areas.open(folder)
    with qtbot.waitSignal(areas.cleanup.duplicates_ready, timeout=TIMEOUT_MS) as found:
        areas.cleanup.find_duplicates(0.95)
    groups = found.args[0]
    assert len(groups) == 1
    assert {Path(r.path).name for r in groups[0].members} == {paths[0].name, "copy.jpg"}
    areas.cleanup.trash_files([folder / "copy.jpg"])  # the user answers no
    assert areas.confirm.asked and (folder / "copy.jpg").exists()


def test_map_controller_shows_a_cluster_in_the_grid(qtbot, areas, tmp_path):
    folder = tmp_path / "a"
    distinct_images(folder, 12, size=64)
    areas.open(folder)
    with qtbot.waitSignal(areas.maps.map_ready, timeout=TIMEOUT_MS) as ready:
        areas.maps.set_visible(True)
    cmap = ready.args[0]
    assert len(cmap.paths) == 12
    areas.maps.show_cluster(0)
    assert sorted(areas.shown()) == sorted(cmap.paths[r] for r in cmap.members(0))
    assert areas.area.query_label.text().startswith("Cluster “")


def test_a_model_that_cannot_load_falls_back_to_the_previous(qtbot, areas, tmp_path):
    folder = tmp_path / "a"
    distinct_images(folder, 3, size=64)
    areas.open(folder)
    models = ModelController(
        ModelChoice("builtin"), areas.collection, areas.status, Answers(), None
    )
    messages = []
    models.message.connect(lambda text, kind: messages.append(text))
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not weights")
    with qtbot.waitSignal(areas.collection.indexing_finished, timeout=TIMEOUT_MS):
        models.set_model(ModelChoice("clip:ViT-B-32:laion2b_s34b_b79k", bogus))
    assert models.choice == ModelChoice("builtin")
    assert any("Still using the Built-in model" in m for m in messages)
    assert areas.collection.model == ModelChoice("builtin")


def test_task_slot_delivers_only_the_newest(qtbot):
    pool = QThreadPool()
    slot = TaskSlot(pool)
    got: list[object] = []
    gate = threading.Event()
    slot.start(lambda: gate.wait(10) and "old", got.append, got.append)
    slot.start(lambda: "new", got.append, got.append)
    qtbot.waitUntil(lambda: got == ["new"], timeout=TIMEOUT_MS)
    gate.set()
    pool.waitForDone(TIMEOUT_MS)
    qtbot.wait(100)
    assert got == ["new"]  # the older answer came later and was dropped
    slot.start(lambda: 1 / 0, got.append, lambda message: got.append(("failed", message)))
    qtbot.waitUntil(lambda: len(got) == 2, timeout=TIMEOUT_MS)
    assert got[1][0] == "failed" and "ZeroDivisionError" in got[1][1]
    slot.start(lambda: "late", got.append, got.append)
    slot.supersede()
    pool.waitForDone(TIMEOUT_MS)
    qtbot.wait(100)
    assert got[-1] != "late"


def test_closing_during_a_batch_says_so_and_closes_when_it_is_kept(
    qtbot, tmp_path, app_paths, make_window
):
    """Closing used to block the GUI thread for up to 4 × 60 s, with no word."""
    from visualsearch.core.store import Store, default_store_dir

    encoder = HeldEncoder("embed_images", TIMEOUT_MS / 1000)
    window = make_window(encoder=encoder, batch_size=2)
    folder = tmp_path / "photos"
    distinct_images(folder, 6, size=64)
    window.open_folder(folder)
    assert encoder.holding.wait(TIMEOUT_MS / 1000)
    window.close()  # returns at once: the batch in flight is still being encoded
    assert window.isVisible()
    assert "Closing" in window.indexing.label.text() and window.indexing.isVisible()
    encoder.release.set()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=TIMEOUT_MS)
    store_dir = default_store_dir(folder.resolve(), app_paths.data_dir)
    with Store(store_dir) as store:
        assert len(store.load_vectors(encoder.id)[0]) == 2  # the batch in flight was kept


def test_all_images_after_a_run_show_the_changed_records(qtbot, areas, tmp_path):
    """After a run, a changed file shows its new facts, a new one appears and a deleted
    one goes."""
    folder = tmp_path / "a"
    paths = distinct_images(folder, 4, size=64)
    areas.open(folder)
    before = {item.rel: item for item in areas.area.model.items()}
    other = distinct_images(tmp_path / "other", 6, size=80)
    paths[1].write_bytes(other[5].read_bytes())  # changed content
    paths[2].unlink()
    (folder / "new.jpg").write_bytes(other[4].read_bytes())
    areas.open(folder)
    after = {item.rel: item for item in areas.area.model.items()}
    assert set(after) == {paths[0].name, paths[1].name, paths[3].name, "new.jpg"}
    assert after[paths[1].name].record.hash != before[paths[1].name].record.hash
    assert after[paths[1].name].record == areas.collection.records[paths[1].name]


def test_changes_on_disk_are_indexed_by_their_paths_only(qtbot, areas, tmp_path):
    """The watcher's burst used to start a whole run (a scan of every file: minutes at a
    million); now only the paths it saw are looked at, and the grid follows."""
    folder = tmp_path / "a"
    paths = distinct_images(folder, 6, size=64)
    areas.open(folder)
    assert areas.collection.watcher is not None
    other = distinct_images(tmp_path / "other", 8, size=80)
    with qtbot.waitSignal(areas.collection.indexing_finished, timeout=TIMEOUT_MS) as run:
        paths[1].write_bytes(other[6].read_bytes())  # changed content
        paths[2].unlink()
        (folder / "new.jpg").write_bytes(other[7].read_bytes())
    report = run.args[0]
    assert report.scanned <= 2 and report.removed == 1  # the paths seen, not the folder
    expected = {paths[0].name, paths[1].name, paths[3].name, paths[4].name, paths[5].name}
    qtbot.waitUntil(lambda: set(areas.shown()) == expected | {"new.jpg"}, timeout=TIMEOUT_MS)
    assert set(areas.collection.records) == expected | {"new.jpg"}
    with Store(areas.collection.target.store_dir) as store:
        new_hash = store.record(paths[1].name).hash
    assert areas.collection.records[paths[1].name].hash == new_hash
    with qtbot.waitSignal(areas.collection.indexing_finished, timeout=TIMEOUT_MS) as run:
        paths[3].unlink()  # a burst with nothing left to look at is no "no images found"
    assert run.args[0].scanned == 0 and run.args[0].removed == 1
    qtbot.waitUntil(lambda: paths[3].name not in areas.shown(), timeout=TIMEOUT_MS)
    assert not [m for m in areas.messages if m[0] == "error"]


def test_a_search_during_the_odd_ones_out_stops_them(qtbot, areas, tmp_path, monkeypatch):
    """The odd ones out of a million images take minutes: a search meanwhile left the pass
    running and its progress overwrote the search's header. Now the pass stops, quietly."""
    import time

    import visualsearch.qt.cleanup_controller as cleanup

    ran = {}

    def slow(col, limit=None, neighbours=5, progress=None):
        for i in range(100):
            if progress.cancelled():
                ran["cancelled"] = True
                raise InterruptedError("cancelled")
            progress.report(i, 100, f"Compared {i * 4096:,} of 409,600 images with their nearest")
            time.sleep(0.05)
        return [(0, 0.5)]

    monkeypatch.setattr(cleanup, "collection_odd_ones_out", slow)
    distinct_images(tmp_path / "a", 6, size=64)
    areas.open(tmp_path / "a")
    areas.cleanup.show_outliers()
    qtbot.waitUntil(lambda: "Compared" in areas.area.query_label.text(), timeout=TIMEOUT_MS)
    with qtbot.waitSignal(areas.results.results_shown, timeout=TIMEOUT_MS):
        areas.results.run_query(TextQuery("cat"))
    shown = areas.area.query_label.text()
    qtbot.waitUntil(lambda: ran.get("cancelled", False), timeout=TIMEOUT_MS)
    qtbot.wait(200)
    assert areas.area.query_label.text() == shown and "Compared" not in shown
    assert not [m for m in areas.messages if m[0] == "error"]
