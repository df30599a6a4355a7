"""Background work for the window: core functions run in worker threads, their
Progress turned into signals. The GUI thread never decodes, encodes or builds an index."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QRunnable, Qt, QThread, QThreadPool, Signal, Slot

from visualsearch.core.collection import Collection, NotIndexed
from visualsearch.core.collection_map import CollectionMap, build_map
from visualsearch.core.encoders import Encoder, load_encoder
from visualsearch.core.encoders.base import ModelInfo
from visualsearch.core.encoders.download import download_clip_weights
from visualsearch.core.errors import is_user_error, user_message
from visualsearch.core.export import export_groups
from visualsearch.core.folder import ModelChoice, index_and_record, scan_problems
from visualsearch.core.indexing import IndexOptions, IndexReport
from visualsearch.core.progress import CancelToken
from visualsearch.core.query import Query, run_query
from visualsearch.core.store import FileRecord, Store
from visualsearch.core.tags import suggest_tags, tag_vocabulary

log = logging.getLogger(__name__)


def describe(exc: BaseException) -> str:
    """The one line the CLI prints for the same failure (core.errors); a bug is logged."""
    if is_user_error(exc):
        return user_message(exc)
    log.exception("unexpected error in a worker", exc_info=exc)
    return f"Unexpected error: {exc!r}. Details were written to the log."


class EncoderProvider:
    """Loads each model once, in whichever worker thread first needs it, and shares it."""

    def __init__(self, cache_dir: Path, preloaded: dict[ModelChoice, Encoder] | None = None):
        self.cache_dir = cache_dir
        self.fast_clip = False  # see set_fast_clip
        self._encoders: dict[ModelChoice, Encoder] = dict(preloaded or {})
        self._lock = threading.Lock()  # guards _locks
        self._locks: dict[ModelChoice, threading.Lock] = {}

    def get(self, choice: ModelChoice) -> Encoder:
        # one lock per model: while CLIP loads (seconds to minutes), queries with the model
        # in use go on (one lock for all blocked every query until CLIP was loaded)
        with self._lock:
            lock = self._locks.setdefault(choice, threading.Lock())
        with lock:
            encoder = self._encoders.get(choice)
            if encoder is None:
                encoder = load_encoder(
                    choice.spec,
                    cache_dir=self.cache_dir,
                    weights=choice.weights,
                    fast_clip=self.fast_clip,
                )
                self._encoders[choice] = encoder
            return encoder

    def set_fast_clip(self, on: bool) -> None:
        """CLIP's image model on OpenVINO bf16 (opt-in): CLIP models loaded before are
        let go of, and load again the new way when next asked for (the vectors of both
        ways mix in a store: they agree to a cosine of 0.99)."""
        with self._lock:
            if on == self.fast_clip:
                return
            self.fast_clip = on
            clips = [c for c in list(self._encoders) if c.spec.startswith("clip")]
            locks = [self._locks.setdefault(c, threading.Lock()) for c in clips]
        for choice, lock in zip(clips, locks, strict=True):
            with lock:  # not while it is being loaded or handed out
                self._encoders.pop(choice, None)


@dataclass(frozen=True)
class FolderTarget:
    """What a worker needs to open a collection; plain values, safe to pass between threads."""

    folder: Path
    store_dir: Path
    model: ModelChoice


class WorkerJob(QObject):
    """A core function run in a QThread: progress and cancel through a CancelToken,
    the result as `finished`, a readable error as `failed` ('' when cancelled)."""

    progress = Signal(int, int, str)
    finished = Signal(object)
    failed = Signal(str)
    done = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.token = CancelToken(on_report=lambda d, t, m: self.progress.emit(d, t, m))

    def cancel(self) -> None:
        self.token.cancel()

    def work(self) -> object:
        raise NotImplementedError

    @Slot()
    def run(self) -> None:
        try:
            self.finished.emit(self.work())
        except InterruptedError:
            self.failed.emit("")
        except Exception as exc:
            self.failed.emit(describe(exc))
        finally:
            self.done.emit()


@dataclass
class IndexOutcome:
    """What an indexing run leaves: readable records by path, made in the worker (a dict of
    a million records takes 0.3 s, not to be spent on the GUI thread)."""

    report: IndexReport
    records: dict[str, FileRecord]  # the catalog after the run (with `only`: of those paths)
    skipped: list[tuple[str, str]]  # files that could not be indexed, and why
    only: tuple[str, ...] | None = None  # the run looked at these paths only
    gone: tuple[str, ...] = ()  # with `only`: readable images there before, not after
    replaced: bool = False  # without `only`: other paths than the window holds


def by_path(records: Iterable[FileRecord]) -> dict[str, FileRecord]:
    return {r.path: r for r in records}


def reuse(records: dict[str, FileRecord], held: dict[str, FileRecord]) -> dict[str, FileRecord]:
    """`records`, with each one equal to a record `held` replaced by that object: the window
    then lets go of its old catalog without freeing a million records on the GUI thread
    (0.3 s at 1M)."""
    out = {}
    for path, record in records.items():
        same = held.get(path)
        if same == record:
            out[same.path] = same  # its key too: the old dict then frees no strings either
        else:
            out[path] = record
    return out


class IndexJob(WorkerJob):
    """Indexes one folder: first the catalog as stored, then each committed batch;
    `finished` carries an IndexOutcome. Cancel stops after the batch in flight (kept)."""

    catalog = Signal(object)  # {path: FileRecord} of the readable images already stored
    model_ready = Signal(object)  # ModelInfo: what the window needs of the model
    batch = Signal(object)  # list[FileRecord] just committed

    def __init__(
        self, target: FolderTarget, encoders: EncoderProvider, options: IndexOptions | None = None
    ) -> None:
        super().__init__()
        self.target = target
        self.encoders = encoders
        self.options = options or IndexOptions()

    def work(self) -> object:
        t, only = self.target, self.options.only
        shown: dict[str, FileRecord] = {}  # what the window holds, as it will have it
        with Store(t.store_dir, root=t.folder) as store:
            if only is None:  # a run over some paths: the window keeps what it shows
                catalog = by_path(store.image_records())
                self.catalog.emit(catalog)
                shown = dict(catalog)  # a copy: the window changes the dict it was given
            before = store.records_within(only) if only is not None else {}

            def committed(records: list[FileRecord]) -> None:
                shown.update((r.path, r) for r in records if r.error is None)
                self.batch.emit(records)

            self.progress.emit(0, 0, "Loading the model…")
            encoder = self.encoders.get(t.model)
            info = ModelInfo.of(encoder)
            self.model_ready.emit(info)
            report = index_and_record(
                t.folder,
                store,
                encoder,
                t.model,
                self.token,
                self.options,
                on_commit=committed,
                cache_dir=self.encoders.cache_dir,
            )
            settled = ModelInfo.of(encoder)  # "auto" settles on a device as images load
            if settled != info:
                self.model_ready.emit(settled)
            skipped = store.errors() + scan_problems(store)
            if only is None:
                after = by_path(store.image_records())
                replaced = after.keys() != shown.keys()
                return IndexOutcome(report, reuse(after, shown), skipped, replaced=replaced)
            now = by_path(r for r in store.records_within(only).values() if r.error is None)
            gone = tuple(p for p, r in before.items() if r.error is None and p not in now)
            return IndexOutcome(report, now, skipped, only, gone)


@dataclass
class MapOutcome:
    target: FolderTarget  # the folder it was asked for
    model_id: str
    cmap: CollectionMap


class MapJob(WorkerJob):
    """Builds (or loads) the collection's map; `finished` carries a MapOutcome."""

    def __init__(
        self,
        target: FolderTarget,
        encoders: EncoderProvider,
        cache_dir: Path,
        k: int | None,
        relayout: bool = False,
    ) -> None:
        super().__init__()
        self.target, self.encoders, self.cache_dir, self.k = target, encoders, cache_dir, k
        self.relayout = relayout

    def work(self) -> object:
        with Store(self.target.store_dir) as store:
            encoder = self.encoders.get(self.target.model)
            cmap = build_map(store, encoder, self.cache_dir, self.k, self.token, self.relayout)
            return MapOutcome(self.target, encoder.id, cmap)


class ExportJob(WorkerJob):
    """Copies or links images into group folders; `finished` carries the ExportReport."""

    def __init__(self, items: list, dest: Path, link: bool) -> None:
        super().__init__()
        self.items, self.dest, self.link = items, dest, link

    def work(self) -> object:
        return export_groups(self.items, self.dest, self.link, self.token)


class DownloadJob(WorkerJob):
    """Downloads CLIP weights; `finished` carries the file's path."""

    def __init__(self, arch: str, tag: str) -> None:
        super().__init__()
        self.arch, self.tag = arch, tag

    def work(self) -> object:
        return download_clip_weights(self.arch, self.tag, self.token)


# Threads still running when their window closed. Qt aborts the whole process when a
# running QThread is destroyed (seen: the window closed while the text model was loading),
# so they are kept here until the process ends; a closed window leaves at most a few.
_OUTLIVING: list[QThread] = []
_OUTLIVING_POOLS: list[QThreadPool] = []


def wait_for_outliving(ms: int = 30_000) -> bool:
    """Before the process ends: give threads left running by closed windows time to end
    (a QThread destroyed while running aborts the process). True if all ended."""
    threads = all(thread.wait(ms) for thread in _OUTLIVING)
    return all(pool.waitForDone(ms) for pool in _OUTLIVING_POOLS) and threads


def outlive_pool(pool: QThreadPool) -> None:
    """A pool whose tasks are still running outlives its window (its destructor would
    block until they end)."""
    if pool.activeThreadCount():
        pool.setParent(None)
        _OUTLIVING_POOLS.append(pool)


def outlive(thread: QThread) -> None:
    """Let a thread that is still busy finish on its own after its owner is gone."""
    if thread.isRunning():
        thread.setParent(None)
        _OUTLIVING.append(thread)


class _JobThread:
    """One job (a QObject with `run` and a `done` signal) in its own QThread."""

    def __init__(self, job: QObject) -> None:
        self.job = job
        self.thread = QThread()
        self.thread.setObjectName(type(job).__name__)
        job.moveToThread(self.thread)
        self.thread.started.connect(job.run)
        # quit() is thread-safe; a direct call ends the event loop before anyone waits on it
        job.done.connect(self.thread.quit, Qt.ConnectionType.DirectConnection)


class JobSlot(QObject):
    """At most one job of a kind at a time (indexing, the map, an export, a download),
    each in its own QThread. `idle` is emitted in the GUI thread once a job has ended
    and its thread is gone, so a follow-up may start a new one there and then."""

    idle = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._current: _JobThread | None = None

    @property
    def job(self):
        return self._current.job if self._current is not None else None

    def busy(self) -> bool:
        """A job was started and has not been cleaned up yet (even if its thread just quit)."""
        return self._current is not None

    def start(self, job: WorkerJob) -> None:
        if self._current is not None:
            raise RuntimeError("a job of this kind is still running")
        self._current = _JobThread(job)
        job.done.connect(self._ended)  # this object lives in the GUI thread: queued here
        self._current.thread.start()

    def cancel(self) -> None:
        if self._current is not None:
            self._current.job.cancel()

    def wait(self, ms: int = 30_000) -> bool:
        """Wait for the running job; if it has not ended after `ms`, let it finish on its
        own (its results are dropped) rather than block or abort. True if it ended."""
        if self.join(ms):
            return True
        self.detach()
        return False

    def join(self, ms: int) -> bool:
        """Wait up to `ms` for the running job's thread; True when none is running."""
        return self._current is None or self._current.thread.wait(ms)

    def detach(self) -> None:
        """Let the running job's thread outlive its owner (the window may be deleted
        before it ends); `idle` still follows when it ends while the owner lives."""
        if self._current is not None:
            outlive(self._current.thread)

    def abandon(self) -> None:
        """Stop waiting for the running job: it ends on its own and nothing follows it."""
        if self._current is not None:
            self._current.job.done.disconnect(self._ended)
            outlive(self._current.thread)
            self._current = None

    @Slot()
    def _ended(self) -> None:
        if self._current is not None:
            self._current.thread.wait()
            self._current = None
        self.idle.emit()


class SearchEngine(QObject):
    """Lives in its own thread and owns the open Collection; runs queries in order.

    Only the newest request is run: older ones still queued are skipped, so typing
    fast never builds a backlog.
    """

    results = Signal(int, object)  # request id, QueryResult
    failed = Signal(int, str)
    opened = Signal(int)  # images searchable
    tags_ready = Signal(int, object)  # request id, [(tag, score)]

    def __init__(self, encoders: EncoderProvider, cache_dir: Path, k: int = 200) -> None:
        super().__init__()
        self.encoders = encoders
        self.cache_dir = cache_dir
        self.k = k
        self.latest_request = 0  # written by the GUI thread
        self.latest_tags = 0
        self.tag_words: list[str] = []  # the user's own candidate tags (CLIP), set by the GUI
        self._vocabulary = None
        self._target: FolderTarget | None = None
        self._live = False
        self._store: Store | None = None
        self._collection: Collection | None = None

    @Slot(object, bool)
    def set_target(self, target: FolderTarget | None, live: bool) -> None:
        """The folder to search; `live` while an indexing run is still adding images."""
        if target != self._target:
            self._close()
        self._target, self._live = target, live
        if target is not None and not live:
            try:  # warm up: vectors, index and the text model, before the first query
                col = self._open()
                col.encoder.embed_text(["a photo"])
                self.opened.emit(len(col))
            except Exception as exc:
                log.info("search engine warm-up: %s", exc)

    @Slot(int, object, object, int, str)
    def run(
        self,
        request_id: int,
        query: Query,
        min_score: float | None = None,
        k: int = 0,
        within: str = "",
    ) -> None:
        """Answer `query` with its best `k` matches (0: the engine's page size), among the
        images under the folder `within` ("" = all)."""
        if request_id < self.latest_request:
            return
        try:
            result = run_query(self._open(), query, k or self.k, min_score, within)
        except Exception as exc:
            self.failed.emit(request_id, describe(exc))
            return
        self.results.emit(request_id, result)

    @Slot(int, object)
    def suggest_tags(self, request_id: int, paths: list[Path]) -> None:
        """Tags for the images (their mean vector) from the model's vocabulary."""
        if request_id < self.latest_tags:
            return
        try:
            col = self._open()
            builtin = col.encoder.classifier is not None  # takes no own words
            key = (col.encoder.id, () if builtin else tuple(self.tag_words))
            if self._vocabulary is None or self._vocabulary[0] != key:
                self._vocabulary = (key, tag_vocabulary(col.encoder, self.cache_dir, key[1]))
            vectors = np.stack([col.image_vector(p)[0] for p in paths])
            tags = suggest_tags(self._vocabulary[1], vectors, calibration=col.calibration)
            self.tags_ready.emit(request_id, tags)
        except Exception as exc:
            log.debug("no tags: %s", exc)  # e.g. the file is gone: no tags is the answer
            self.tags_ready.emit(request_id, [])

    def _open(self) -> Collection:
        t = self._target
        if t is None:
            raise NotIndexed("open a folder first")
        if self._store is None:
            self._store = Store(t.store_dir)
        encoder = self.encoders.get(t.model)
        col = self._collection
        if col is None or col.generation != self._store.generation:
            # opening never builds an index: the indexing run and maintenance do that
            col = Collection(t.folder, self._store, encoder, cache_dir=self.cache_dir)
            self._collection = col
        if len(col) == 0:
            raise NotIndexed("no images are indexed yet" + (" (indexing…)" if self._live else ""))
        return col

    def _close(self) -> None:
        self._collection = None
        if self._store is not None:
            self._store.close()
            self._store = None

    @Slot()
    def shutdown(self) -> None:
        self._close()


class Task(QRunnable):
    """A function run in a QThreadPool; the result or error comes back as a signal."""

    class _Signals(QObject):
        done = Signal(object)
        failed = Signal(str)

    def __init__(self, fn: Callable[[], object]) -> None:
        super().__init__()
        self.fn = fn
        self.signals = Task._Signals()

    def run(self) -> None:
        try:
            result = self.fn()
        except Exception as exc:
            self.signals.failed.emit(describe(exc))
            return
        self.signals.done.emit(result)


def run_task(
    pool: QThreadPool,
    fn: Callable[[], object],
    on_done: Callable[[object], None],
    on_failed: Callable[[str], None],
) -> Task:
    task = Task(fn)
    task.signals.done.connect(on_done)
    task.signals.failed.connect(on_failed)
    pool.start(task)
    return task


class TaskSlot(QObject):
    """Short background tasks of one kind in the pool, where the newest request wins.

    `start` hands out a ticket; a result reaches its callback only while its ticket is
    still the newest, so a task for folder A that ends after B was opened (`supersede`)
    or after a newer request of the same kind is dropped, never shown with B's root.
    """

    def __init__(
        self, pool: QThreadPool, parent: QObject | None = None, every: bool = False
    ) -> None:
        """`every`: each answer is delivered (actions that change files, whose outcome
        must be told), not only the newest; `supersede` still drops them all."""
        super().__init__(parent)
        self._pool = pool
        self.ticket = 0
        self.every = every
        self._callbacks: dict[int, tuple[Callable, Callable]] = {}

    def start(
        self,
        fn: Callable[[], object],
        on_done: Callable[[object], None],
        on_failed: Callable[[str], None],
    ) -> int:
        self.ticket += 1
        ticket = self.ticket
        if not self.every:
            self._callbacks.clear()  # older answers will never be delivered
        self._callbacks[ticket] = (on_done, on_failed)

        def work() -> object:
            try:
                return ticket, True, fn()
            except Exception as exc:
                return ticket, False, describe(exc)

        # a bound slot of this GUI-thread object: the answer is queued here even when the
        # task's own signal object is gone by then (a lambda's queued call would be lost)
        run_task(self._pool, work, self._answered, self._answered)
        return ticket

    @Slot(object)
    def _answered(self, answer: object) -> None:
        if not isinstance(answer, tuple):
            return  # describe() of an error outside fn: not expected
        ticket, ok, value = answer
        callbacks = self._callbacks.pop(ticket, None)
        if callbacks is not None:
            callbacks[0 if ok else 1](value)

    def supersede(self) -> None:
        """Results of the tasks running now are no longer wanted."""
        self.ticket += 1
        self._callbacks = {}
