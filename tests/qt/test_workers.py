"""JobSlot (one background job of a kind at a time) and SearchEngine's newest-request rule,
with small jobs that wait on an Event and the fake encoder."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, QThread, Signal

from tests.conftest import distinct_images
from tests.fakes import FakeEncoder, HeldEncoder
from visualsearch.core.folder import ModelChoice
from visualsearch.core.indexing import index_folder
from visualsearch.core.query import TextQuery
from visualsearch.core.store import Store
from visualsearch.qt.workers import (
    _OUTLIVING,
    EncoderProvider,
    FolderTarget,
    JobSlot,
    SearchEngine,
    WorkerJob,
)

TIMEOUT_MS = 10_000


class GatedJob(WorkerJob):
    """Works until `release` is set, then returns `value`."""

    def __init__(self, value: object = "done") -> None:
        super().__init__()
        self.release = threading.Event()
        self.value = value

    def work(self) -> object:
        if not self.release.wait(TIMEOUT_MS / 1000):
            raise TimeoutError("the test never released the job")
        return self.value


def finished_thread(job: GatedJob) -> QThread:
    """Releases `job` and returns its thread once it has quit, without running the GUI
    thread's event loop: the slot's queued done-handler has not run yet."""
    thread = job.thread()
    job.release.set()
    assert thread.wait(TIMEOUT_MS)
    return thread


@pytest.fixture
def slot(qtbot):
    s = JobSlot()
    yield s
    s.cancel()
    s.wait(TIMEOUT_MS)


def test_a_job_started_in_the_gap_before_the_old_one_is_cleaned_up_is_refused(qtbot, slot):
    first = GatedJob()
    slot.start(first)
    thread = finished_thread(first)
    assert thread.isFinished() and slot.busy() and slot.job is first
    with pytest.raises(RuntimeError):  # not started, so neither waited on nor forgotten
        slot.start(GatedJob())
    with qtbot.waitSignal(slot.idle, timeout=TIMEOUT_MS):
        pass
    assert not slot.busy() and slot.job is None


def test_the_follow_up_started_on_idle_is_kept_and_cleaned_up_in_turn(qtbot, slot):
    first, second = GatedJob("first"), GatedJob("second")
    results: list[object] = []
    first.finished.connect(results.append)
    second.finished.connect(results.append)

    def follow_up() -> None:  # what the window does: start the next job once idle
        slot.idle.disconnect(follow_up)
        slot.start(second)

    slot.idle.connect(follow_up)
    slot.start(first)
    finished_thread(first)
    qtbot.waitUntil(lambda: slot.job is second, timeout=TIMEOUT_MS)
    assert slot.busy()  # the old handler did not forget the new job
    second.release.set()
    with qtbot.waitSignal(slot.idle, timeout=TIMEOUT_MS):
        pass
    assert results == ["first", "second"] and not slot.busy()
    assert second.thread() is None or not second.thread().isRunning()


def test_wait_returns_true_once_the_job_has_ended(qtbot, slot):
    assert slot.wait(0)  # nothing running
    job = GatedJob()
    slot.start(job)
    job.release.set()
    assert slot.wait(TIMEOUT_MS)
    with qtbot.waitSignal(slot.idle, timeout=TIMEOUT_MS):
        pass
    assert not slot.busy()


def test_a_job_still_running_after_wait_is_left_to_finish(qtbot, slot):
    job = GatedJob()
    slot.start(job)
    thread = job.thread()
    assert not slot.wait(50)
    assert thread in _OUTLIVING and thread.parent() is None
    job.release.set()
    assert thread.wait(TIMEOUT_MS)


OUTLIVE_SCRIPT = """
import gc, sys, threading
from PySide6.QtCore import QCoreApplication
from tests.qt.test_workers import GatedJob
from visualsearch.qt.workers import JobSlot, _OUTLIVING

app = QCoreApplication([])
slot, job = JobSlot(), GatedJob()
slot.start(job)
assert not slot.wait(50)
del slot  # the window that owned the slot is gone while the job runs
gc.collect()
job.release.set()
assert all(t.wait(10_000) for t in _OUTLIVING)
print("ok")
"""


def test_a_job_outliving_its_slot_does_not_abort_the_process():
    """Qt aborts the process when a running QThread is destroyed: run it in a child."""
    out = subprocess.run(
        [sys.executable, "-c", OUTLIVE_SCRIPT],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


class Requests(QObject):
    """The GUI side: requests reach the engine's thread queued, as in the window."""

    query = Signal(int, object, object, int)
    shutdown = Signal()


@pytest.fixture
def engine_thread(qtbot, tmp_path):
    """A SearchEngine in its own thread over six indexed images, and its gated encoder."""
    folder = tmp_path / "photos"
    distinct_images(folder, 6, size=64)
    with Store(tmp_path / "store", root=folder) as store:
        index_folder(folder, store, FakeEncoder())
    encoder = HeldEncoder("embed_text", TIMEOUT_MS / 1000)
    model = ModelChoice("fake")
    engine = SearchEngine(EncoderProvider(tmp_path / "cache", preloaded={model: encoder}), tmp_path)
    engine.set_target(FolderTarget(folder, tmp_path / "store", model), live=True)
    thread = QThread()
    engine.moveToThread(thread)
    requests = Requests()
    requests.query.connect(engine.run)
    requests.shutdown.connect(engine.shutdown)  # the store is closed in its own thread
    thread.start()
    yield engine, encoder, requests
    encoder.release.set()
    requests.shutdown.emit()
    thread.quit()
    assert thread.wait(TIMEOUT_MS)


def test_the_engine_answers_only_the_newest_request(qtbot, engine_thread):
    engine, encoder, requests = engine_thread
    answered: list[int] = []
    engine.results.connect(lambda request_id, result: answered.append(request_id))

    engine.latest_request = 1
    requests.query.emit(1, TextQuery("first"), None, 0)
    assert encoder.holding.wait(TIMEOUT_MS / 1000)  # the engine is busy with request 1
    for request_id in (2, 3, 4):  # typed while it works: queued behind it
        engine.latest_request = request_id
        requests.query.emit(request_id, TextQuery(f"query {request_id}"), None, 0)
    encoder.release.set()
    qtbot.waitUntil(lambda: 4 in answered, timeout=TIMEOUT_MS)
    requests.query.emit(5, TextQuery("late"), None, 0)  # newer than latest_request: answered
    qtbot.waitUntil(lambda: 5 in answered, timeout=TIMEOUT_MS)
    assert answered == [1, 4, 5]  # 2 and 3 were superseded before their turn


def test_a_result_carries_the_request_it_answers(qtbot, engine_thread):
    engine, encoder, requests = engine_thread
    encoder.holding.set()  # no hold
    answers: list[tuple[int, object]] = []
    # a plain list, not qtbot.waitSignal: its timer must not be stopped from the engine thread
    engine.results.connect(lambda request_id, result: answers.append((request_id, result)))
    engine.latest_request = 7
    requests.query.emit(7, TextQuery("a cat"), None, 3)
    qtbot.waitUntil(lambda: bool(answers), timeout=TIMEOUT_MS)
    [(request_id, result)] = answers
    assert request_id == 7 and len(result.hits) == 3


def test_a_model_loading_does_not_hold_up_the_one_in_use(tmp_path, monkeypatch):
    """One lock for all models: every query waited while CLIP loaded."""
    import visualsearch.qt.workers as workers

    loading, release = threading.Event(), threading.Event()

    def slow_load(spec, cache_dir, weights=None, fast_clip=False):  # a CLIP load taking time
        loading.set()
        release.wait(10)
        return FakeEncoder()

    monkeypatch.setattr(workers, "load_encoder", slow_load)
    provider = EncoderProvider(tmp_path, preloaded={ModelChoice("builtin"): FakeEncoder()})
    loader = threading.Thread(target=provider.get, args=(ModelChoice("clip:ViT-B-32:x"),))
    loader.start()
    assert loading.wait(10)
    got = []
    getter = threading.Thread(target=lambda: got.append(provider.get(ModelChoice("builtin"))))
    getter.start()
    getter.join(2)
    answered_meanwhile = bool(got)
    release.set()
    loader.join(10)
    getter.join(10)
    assert answered_meanwhile  # the model in use answered while the other was loading


def test_fast_clip_lets_go_of_loaded_clip_models_only(tmp_path):
    """The opt-in takes effect on the next CLIP model loaded: one loaded before is let go
    of (here a stand-in, which then loads for real: no weights here, so it says so)."""
    from tests.fakes import FakeEncoder
    from visualsearch.core.encoders import ModelUnavailable
    from visualsearch.core.folder import ModelChoice
    from visualsearch.qt.workers import EncoderProvider

    builtin, clip = ModelChoice("builtin"), ModelChoice("clip:ViT-B-32:laion2b_s34b_b79k")
    stand_in, other = FakeEncoder(), FakeEncoder()
    provider = EncoderProvider(tmp_path, preloaded={builtin: stand_in, clip: other})
    assert provider.get(clip) is other
    provider.set_fast_clip(True)
    assert provider.fast_clip and provider.get(builtin) is stand_in
    with pytest.raises(ModelUnavailable):
        provider.get(clip)
