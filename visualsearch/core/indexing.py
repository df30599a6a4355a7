"""scan → read/hash → decode (thread pool) → encode (batches) → store, with Progress.

Decoding runs in a thread pool (Pillow and the hashing release the GIL) while
the calling thread encodes full batches, so the two overlap. Each batch is one
transaction: cancel or kill the run and it resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import threading
import time
from collections.abc import Callable, Container, Generator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from visualsearch.core import imageio
from visualsearch.core.encoders.base import Encoder, ModelUnavailable, default_threads
from visualsearch.core.encoders.devices import CPU_BATCH
from visualsearch.core.encoders.jpeg_on_device import (
    JpegJob,
    JpegOnDevice,
    stack_pixels,
    whole_jpeg,
)
from visualsearch.core.integrity import valid_vectors
from visualsearch.core.progress import NullProgress, Progress
from visualsearch.core.scan import FileStat, scan_folder, scan_paths
from visualsearch.core.segments import ANNOY_THRESHOLD, SEAL_AT, maintain_index
from visualsearch.core.store import FileRecord, HashLookup, Store, content_hash

THUMBNAIL_SIZE = 256
# nvJPEG against the CPU's decode threads, indexing 12 MP photos with the model on an H100
# (bench/gpu.py): 2.2-2.5x on 4 cores, 1.2-1.3x on 8, 0.74-1.10x on 16
GPU_DECODE_CORES = 8


@dataclass
class IndexOptions:
    batch_size: int = 0  # 0: the encoder's own `batch_size` (devices.batch_size)
    workers: int = 0  # decode threads; 0 = one per core
    retry_errors: bool = False  # try again files that failed before and did not change
    max_pixels: int = imageio.DEFAULT_MAX_PIXELS
    # a file not read and decoded in this time is skipped (not recorded: tried again next
    # run); its thread, stuck in the OS on a hung network or FUSE drive, is abandoned
    file_timeout: float = imageio.READ_TIMEOUT_S
    thumbnail_size: int = THUMBNAIL_SIZE
    # With the model on a CUDA GPU, decode and thumbnail JPEGs there (nvJPEG). None: where
    # there are at most GPU_DECODE_CORES decode threads.
    decode_on_gpu: bool | None = None
    annoy_threshold: int = ANNOY_THRESHOLD  # from this many images on, build Annoy segments
    seal_at: int = SEAL_AT  # new images searched exactly until this many are sealed
    forget_missing: bool = False  # forget files not found even if their folder looks unmounted
    # Only these paths changed (relative; files or folders, as a watcher saw them): only
    # they are looked at, and only their catalog entries read — seconds at any size,
    # where a whole scan of a million files takes minutes. None: the whole folder.
    only: tuple[str, ...] | None = None


@dataclass
class IndexReport:
    """What one indexing run did. `encoded` counts images that went through the model."""

    folder: str
    model: str
    scanned: int = 0
    unchanged: int = 0
    new: int = 0
    changed: int = 0
    moved: int = 0
    removed: int = 0
    encoded: int = 0
    reused: int = 0  # vector found by content hash (moved, copied or re-touched files)
    failed: int = 0
    cancelled: bool = False
    missing_kept: int = 0  # not found, but kept: their folder looks unmounted
    warning: str = ""  # why they were kept
    index_problem: str = ""  # why the search index could not be built (searching is exact)
    seconds: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)  # new ones from this run
    problems: list[tuple[str, str]] = field(default_factory=list)  # from the scan

    @property
    def indexed(self) -> int:
        return self.encoded + self.reused


@dataclass
class PreparedFile:
    """One file read for an indexing run: its record, and what the model and the
    thumbnails need of it (`prepare_file` makes it, `embed_prepared` gives it its vector)."""

    stat: FileStat
    record: FileRecord
    pixels: np.ndarray | None = None  # preprocessed, when the model must see it
    thumbnail: bytes | None = None
    jpeg: JpegJob | None = None  # pixels and thumbnail still to make, on the model's GPU
    vector: np.ndarray | None = None  # the model's, once encoded
    claimed: str | None = None  # the content this file is the first of in this run
    waits: bool = False  # a copy of content an earlier file of this run brings
    transient: bool = False  # an error not to record (a timeout): tried again next run


def _failed(f: FileStat, reason: str, **flags) -> PreparedFile:
    """A file that cannot be used, and why."""
    return PreparedFile(f, FileRecord(f.path, f.size, f.mtime_ns, error=reason), **flags)


class Claims:
    """Contents seen in this run: the first file with a content decodes it; its copies
    only wait for it, so one content is decoded and encoded once per run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._claimed: set[str] = set()

    def claim(self, digest: str) -> bool:
        with self._lock:
            first = digest not in self._claimed
            self._claimed.add(digest)
            return first


def prepare_file(
    root: Path,
    f: FileStat,
    encoder: Encoder,
    known: Container[str],
    have_thumbs: Container[str],
    opts: IndexOptions,
    claims: Claims | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> PreparedFile:
    """Read, hash and, only where needed, decode + preprocess + thumbnail one file.

    Runs in a decode thread; never raises: failures become a record with an error. With
    `claims`, a content already claimed by another file of this run is not decoded: the
    item `waits` for that file's vector and thumbnail.
    """
    claimed = None
    try:
        data = imageio.read_bytes(root / f.path, timeout=opts.file_timeout, cancelled=cancelled)
        digest = content_hash(data)
        need_vector = digest not in known
        need_thumb = digest not in have_thumbs
        waits = False
        if (need_vector or need_thumb) and claims is not None:
            if claims.claim(digest):
                claimed = digest
            else:
                need_vector = need_thumb = False
                waits = True
        pixels = thumb = jpeg = None
        thumb_side = opts.thumbnail_size if need_thumb else 0
        if (need_vector or need_thumb) and _gpu_decoder(encoder, opts) and whole_jpeg(data):
            info = imageio.probe(data, max_pixels=opts.max_pixels)
            jpeg = JpegJob(data, info.orientation, need_vector, thumb_side)  # made in the batch
        elif need_vector or need_thumb:
            info, pixels, thumb = _decode(data, encoder, need_vector, thumb_side, opts.max_pixels)
        else:
            info = imageio.probe(data, max_pixels=opts.max_pixels)
        record = FileRecord(
            f.path,
            len(data),
            f.mtime_ns,
            digest,
            info.width,
            info.height,
            info.format,
            info.taken,
            None,
        )
        return PreparedFile(f, record, pixels, thumb, jpeg, claimed=claimed, waits=waits)
    except Exception as exc:  # a bug in a decoder or model must not end the run either
        return _failed(f, _reason(exc), claimed=claimed)


def _reason(exc: Exception) -> str:
    """Why a file is unusable: an unreadable image's own words, else the unexpected error."""
    if isinstance(exc, imageio.ImageError):
        return str(exc)
    return f"unexpected error: {imageio.describe(exc, with_type=True)}"


def _gpu_decoder(encoder: Encoder, opts: IndexOptions) -> JpegOnDevice | None:
    """The model's JPEG decoder on its GPU (nvJPEG), or None: decode on the CPU."""
    decoder = getattr(encoder, "jpeg_decoder", None)  # models that only run on the CPU have none
    on = opts.decode_on_gpu
    if on is None:
        on = (opts.workers or default_threads()) <= GPU_DECODE_CORES  # decode threads
    return decoder() if decoder is not None and on else None


def _decode(data: bytes, encoder: Encoder, vector: bool, thumb_side: int, max_pixels: int):
    """(info, the model's input or None, a thumbnail or None), decoded on the CPU."""
    min_side = max(encoder.input_size if vector else 0, thumb_side)
    decoded = imageio.decode(data, min_side=min_side, max_pixels=max_pixels)
    pixels = encoder.preprocess(decoded.image) if vector else None
    thumb = imageio.thumbnail_jpeg(decoded.image, thumb_side) if thumb_side else None
    return decoded.info, pixels, thumb


NO_VECTOR = "the model computed no valid vector for this image"


def embed_prepared(items: list[PreparedFile], encoder: Encoder, opts: IndexOptions) -> None:
    """Give each item that needs the model its `vector`: JPEGs waiting for the GPU are
    decoded there first (one batch), then all pixels are encoded in one batch, each
    content once. An item the model makes no valid vector for gets an error instead;
    raises ModelUnavailable when no vector of the batch is valid."""
    if any(it.jpeg is not None for it in items):
        _decode_jpegs(items, _gpu_decoder(encoder, opts), encoder, opts)
    to_encode = list({it.record.hash: it for it in items if it.pixels is not None}.values())
    if not to_encode:
        return
    embedded = encoder.embed_images(stack_pixels([it.pixels for it in to_encode]))
    valid = valid_vectors(embedded)
    if not valid.any():
        raise ModelUnavailable(
            f"the model {encoder.id} computed no valid vector for a whole batch "
            "(NaN or zero): its files may be damaged. Nothing of that batch was stored"
        )
    vectors = {
        it.record.hash: v for it, v, ok in zip(to_encode, embedded, valid, strict=True) if ok
    }
    for it in items:
        if it.pixels is not None:
            it.pixels = None
            it.vector = vectors.get(it.record.hash)
            if it.vector is None:
                it.record = replace(it.record, error=NO_VECTOR)


def _decode_jpegs(items: list[PreparedFile], decoder: JpegOnDevice, encoder: Encoder, opts) -> None:
    """Give the items waiting for their JPEG their pixels and thumbnail, decoded on the GPU
    in one batch; one the GPU cannot read (CMYK, damaged) goes the CPU's way, which says
    why it is unusable."""
    waiting = [it for it in items if it.jpeg is not None]
    try:
        made_all = decoder.prepare([it.jpeg for it in waiting])
    except RuntimeError:  # out of GPU memory: all of them the CPU's way
        made_all = [None] * len(waiting)
    for it, made in zip(waiting, made_all, strict=True):
        job, it.jpeg = it.jpeg, None
        if made is not None:
            it.pixels, it.thumbnail = made
            continue
        try:
            _, it.pixels, it.thumbnail = _decode(
                job.data, encoder, job.pixels, job.thumbnail_size, opts.max_pixels
            )
        except Exception as exc:  # recorded as prepare_file records it
            r = it.record
            it.record = FileRecord(r.path, r.size, r.mtime_ns, error=_reason(exc))


def index_folder(
    folder: Path,
    store: Store,
    encoder: Encoder,
    progress: Progress | None = None,
    options: IndexOptions | None = None,
    on_commit: Callable[[list[FileRecord]], None] | None = None,
    remote: RemoteEncoding | None = None,
) -> IndexReport:
    """Bring the store up to date with `folder` for `encoder`'s model.

    Unchanged files (same size and mtime) are only stat-ed. New and changed
    files are read and hashed; a hash that already has a vector (a moved or
    copied file) is not decoded again. Files that vanished are dropped at the
    end of a complete run, unless their folder looks unmounted (`keep_if_unmounted`).
    One run per store at a time (`run_lock`). Never writes to `folder`. `on_commit` gets
    each batch's records right after its transaction (the window shows them as they arrive).
    With `remote` (a Ray cluster: ray_ingest.py) the files are read and encoded there, and
    everything else happens here as in a local run.
    """
    progress = progress or NullProgress()
    opts = options or IndexOptions()
    root = Path(folder).expanduser().resolve()
    if remote is not None and opts.only is not None:
        raise ValueError("a run over a few changed paths is not sent to a cluster")
    with run_lock(store.directory, progress):
        return _index_locked(root, store, encoder, progress, opts, on_commit, remote)


def _index_locked(root, store, encoder, progress, opts, on_commit, remote) -> IndexReport:
    started = time.perf_counter()
    report = IndexReport(folder=str(root), model=encoder.id)
    if progress.cancelled():
        report.cancelled = True
        return report

    progress.report(0, 0, "Scanning folder…")
    if opts.only is None:
        scan = scan_folder(root, exclude=[store.directory])
        records = store.file_records()
        known, thumbs = store.known_hashes(encoder.id, encoder.dim), store.thumbnail_hashes()
    else:  # a few paths: their entries and, for each hash, a question (not sets of all)
        scan = scan_paths(root, opts.only, exclude=[store.directory])
        records = store.records_within(opts.only)
        known, thumbs = store.hash_lookup(encoder.id, encoder.dim)
    report.scanned = len(scan.files)
    report.problems = scan.problems
    seen = {f.path for f in scan.files}

    todo: list[FileStat] = []
    replaced: set[str] = set()
    for f in scan.files:
        old = records.get(f.path)
        if old is None:
            report.new += 1
            todo.append(f)
        elif old.size != f.size or old.mtime_ns != f.mtime_ns:
            report.changed += 1
            todo.append(f)
            if old.hash:
                replaced.add(old.hash)  # its vector and thumbnail may now be nobody's
        elif old.error is not None:
            if opts.retry_errors:
                todo.append(f)
            else:
                report.unchanged += 1
        elif old.hash not in known:
            todo.append(f)  # unchanged, but not yet seen by this model
        else:
            report.unchanged += 1

    unreadable = tuple(d + "/" for d in scan.unreadable_dirs if d)
    root_unreadable = "" in scan.unreadable_dirs
    not_looked_at = set(scan.unreadable_dirs)  # with a file a targeted run could not stat
    gone = [
        p
        for p in records
        if p not in seen
        and not root_unreadable
        and not p.startswith(unreadable)
        and p not in not_looked_at
    ]
    device = _device(root)
    if not opts.forget_missing and opts.only is None:  # a watcher saw those go
        gone, report.missing_kept, report.warning = keep_if_unmounted(
            root, gone, len(scan.files), store.get_meta("root_device"), device
        )
    gone_hashes = {records[p].hash for p in gone if records[p].hash}

    total = len(todo)
    done = 0
    progress.report(0, total, f"{total} images to index")
    try:
        if total:
            done = _run(
                root,
                todo,
                store,
                encoder,
                progress,
                opts,
                (known, thumbs),
                gone_hashes,
                report,
                on_commit,
                remote,
            )
    finally:
        if isinstance(known, HashLookup):
            known.db.close()  # the lookups' own connection

    if not report.cancelled:
        report.removed = store.remove_paths(gone)
        if report.removed or replaced:
            store.collect_garbage(None if opts.only is None else gone_hashes | replaced)
        if not report.missing_kept and scan.files and opts.only is None:
            store.set_meta("root_device", str(device))
    store.set_meta("model", encoder.id)
    # a run over a few changed paths leaves sealing to a whole run unless it indexed many
    # (the check alone reads every path: 3.5 s at 1M); meanwhile they are searched exactly
    many = opts.only is None or report.indexed >= opts.seal_at // 10
    if not report.cancelled and many and store.counts()["files"] >= opts.annoy_threshold:
        # sealed now (the rest were sealed during the run), so the first query is instant
        _maintain(store, encoder, progress, opts, done, total, report)
    report.seconds = time.perf_counter() - started
    progress.report(done, total, "Cancelled" if report.cancelled else "Done")
    return report


def _maintain(store, encoder, progress, opts, done: int, total: int, report) -> None:
    """Seal new vectors into index segments and merge them (`segments.maintain`). A disk
    too full for a segment leaves searching exact and says so; the run goes on."""

    class Told(NullProgress):
        def report(self, *_args) -> None:
            progress.report(done, total, "Building the search index…")

        def cancelled(self) -> bool:
            return progress.cancelled()

    try:
        maintain_index(store, encoder.id, encoder.dim, Told(), opts.annoy_threshold, opts.seal_at)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        report.index_problem = exc.strerror


def _device(root: Path) -> int:
    return os.stat(root).st_dev


def keep_if_unmounted(
    root: Path, gone: list[str], found: int, recorded_device: str | None, device: int
) -> tuple[list[str], int, str]:
    """Split the catalogued files that were not found into those to forget and a count
    of those kept, with a warning, because their folder looks unmounted rather than
    emptied: the whole folder is empty, it is on another filesystem than when it was
    indexed, or they lie under a subfolder that is now empty (an unmounted drive's
    mount point) or a link to a folder that is not there. Forgetting them would throw
    away every vector of a drive that is merely unplugged; `forget_missing` does that on
    request."""
    if not gone:
        return gone, 0, ""
    advice = "Nothing was forgotten; plug the drive in, or forget them on request."
    if found == 0:
        warning = (
            f"{root} looks empty or unmounted: none of its {len(gone):,} catalogued images "
            f"were found. {advice}"
        )
        return [], len(gone), warning
    if recorded_device is not None and recorded_device != str(device):
        warning = (
            f"{root} is on another drive or filesystem than when it was indexed, and "
            f"{len(gone):,} catalogued images were not found. {advice}"
        )
        return [], len(gone), warning
    empty: dict[str, bool] = {}

    def under_empty_folder(rel: str) -> bool:
        parent = os.path.dirname(rel)
        while parent:
            if parent not in empty:
                folder = root / parent
                try:
                    empty[parent] = not os.listdir(folder)
                except OSError:  # a link to a folder that is not there: an unplugged drive
                    empty[parent] = folder.is_symlink() and not folder.exists()
            if empty[parent]:
                return True
            parent = os.path.dirname(parent)
        return False

    kept = [p for p in gone if under_empty_folder(p)]
    if not kept:
        return gone, 0, ""
    folders = sorted({f for f, is_empty in empty.items() if is_empty})
    shown = ", ".join(folders[:3]) + (" …" if len(folders) > 3 else "")
    kept_set = set(kept)
    warning = (
        f"{len(kept):,} catalogued images lie under folders that are now empty ({shown}), "
        f"as an unmounted drive's would. {advice}"
    )
    return [p for p in gone if p not in kept_set], len(kept), warning


@contextlib.contextmanager
def run_lock(store_dir: Path, progress: Progress):
    """One indexing run per store at a time: a second run waits (and can be cancelled)
    and then finds the work done, instead of encoding everything a second time."""
    try:
        import fcntl
    except ImportError:  # Windows: SQLite's own locking still keeps the store consistent
        yield
        return
    store_dir.mkdir(parents=True, exist_ok=True)
    with open(store_dir / "indexing.lock", "a+b") as fh:
        waited = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    progress.report(0, 0, "Waiting for another indexing run of this folder…")
                    waited = True
                if progress.cancelled():
                    break
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class _DaemonPool:
    """Decode threads that never keep the process alive.

    `ThreadPoolExecutor` waits for its threads on shutdown and at interpreter exit, so one
    thread stuck in a read the OS never ends (a hung network or FUSE drive) would hang the
    run and Ctrl+C. Here a stuck thread is abandoned (it ends by itself if the read ever
    returns), a fresh one takes its place, and `shutdown` waits for none of them.
    """

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running: dict[Future, tuple[float, threading.Thread]] = {}
        self._abandoned: set[threading.Thread] = set()
        self._threads: list[threading.Thread] = []
        for _ in range(workers):
            self._spawn()

    def _spawn(self) -> None:
        thread = threading.Thread(target=self._work, name="decode", daemon=True)
        self._threads.append(thread)
        thread.start()

    def submit(self, fn: Callable[..., PreparedFile], *args) -> Future:
        future: Future = Future()
        self._tasks.put((future, fn, args))
        return future

    def _work(self) -> None:
        me = threading.current_thread()
        while (task := self._tasks.get()) is not None:
            future, fn, args = task
            if not future.set_running_or_notify_cancel():
                continue
            with self._lock:
                self._running[future] = (time.monotonic(), me)
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)
            with self._lock:
                self._running.pop(future, None)
                if me in self._abandoned:
                    self._abandoned.discard(me)
                    return

    def overdue(self, seconds: float) -> list[Future]:
        """Tasks running for longer than `seconds`."""
        now = time.monotonic()
        with self._lock:
            return [f for f, (start, _) in self._running.items() if now - start > seconds]

    def abandon(self, future: Future) -> None:
        """Give up on a running task: its thread is left to itself, another replaces it."""
        with self._lock:
            entry = self._running.pop(future, None)
            if entry is None:
                return
            self._abandoned.add(entry[1])
        self._spawn()

    def shutdown(self, grace: float = 0.5) -> None:
        """Cancel the tasks not started; wait at most `grace` seconds in all for the threads
        to end (idle ones end at once; a thread still alive at interpreter exit can abort
        C++ libraries' teardown), then let the rest go."""
        while True:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                break
            if task is not None:
                task[0].cancel()
        for _ in range(self._workers):
            self._tasks.put(None)
        deadline = time.monotonic() + grace
        with self._lock:
            live = [t for t in self._threads if t not in self._abandoned]
        for thread in live:
            thread.join(max(0.0, deadline - time.monotonic()))


class RemoteEncoding(Protocol):
    """Reads and encodes an indexing run's files elsewhere (ray_ingest.RayEncoding)."""

    def prepare(
        self,
        root: Path,
        todo: list[FileStat],
        known: Container[str],
        have_thumbs: Container[str],
        opts: IndexOptions,
        progress: Progress,
    ) -> Generator[PreparedFile, None, None]:
        """Each file of `todo` prepared by `prepare_file` and given its vector by
        `embed_prepared`, in any order; closing the generator stops the work."""
        ...


def _run(
    root, todo, store, encoder, progress, opts, have, gone_hashes, report, on_commit, remote
) -> int:
    """`have`: (contents with a vector, contents with a thumbnail) before the run."""
    workers = opts.workers or default_threads()
    if remote is not None:  # commits only: asking the encoder would load its network here
        batch_size = max(1, opts.batch_size or CPU_BATCH)
    else:
        batch_size = max(1, opts.batch_size or getattr(encoder, "batch_size", CPU_BATCH))
    window = max(batch_size * 3, workers * 2)  # bounds memory held by decoded pixels
    known, have_thumbs = have
    claims = Claims()
    pending: dict[Future, FileStat] = {}
    queue_ = iter(todo)
    batch: list[PreparedFile] = []
    # copies of a content whose first file has not come back yet, and the first files' results
    held: dict[str, list[PreparedFile]] = {}
    firsts: dict[str, str | None] = {}
    done = 0
    started = time.perf_counter()
    exhausted = False
    unsealed = 0

    def flush(items: list[PreparedFile]) -> None:
        nonlocal done, unsealed
        embed_prepared(items, encoder, opts)
        for it in items:
            if it.claimed is not None and it.record.error is not None:
                firsts[it.claimed] = it.record.error  # its copies fail with it
        vectors = {it.record.hash: it.vector for it in items if it.vector is not None}
        for it in items:
            if it.waits and firsts.get(it.record.hash):  # its content failed after all
                it.record = replace(it.record, error=firsts[it.record.hash])
        thumbs = {it.record.hash: it.thumbnail for it in items if it.thumbnail is not None}
        records = [it.record for it in items if not it.transient]
        store.commit_batch(encoder.id, records, vectors, thumbs)
        if on_commit is not None:
            on_commit(records)
        unsealed += len(vectors)
        if unsealed >= opts.seal_at:  # a long run keeps its index current as it goes
            _maintain(store, encoder, progress, opts, done, len(todo), report)
            unsealed = 0
        encoded = set(vectors)
        for it in items:
            if it.record.error is not None:
                report.failed += 1
                report.errors.append((it.record.path, it.record.error))
            elif it.record.hash in encoded:
                encoded.discard(it.record.hash)  # one file per content counts as encoded
                report.encoded += 1
            else:
                report.reused += 1
                if it.record.hash in gone_hashes:
                    report.moved += 1
        done += len(items)
        rate = done / max(time.perf_counter() - started, 1e-6)
        progress.report(done, len(todo), f"{done}/{len(todo)} images, {rate:.1f}/s")

    def settle(copy: PreparedFile, error: str | None) -> PreparedFile:
        if error is None:
            return copy
        f = copy.stat
        return _failed(f, error)

    def arrive(item: PreparedFile) -> None:
        if item.waits:
            digest = item.record.hash
            if digest in firsts:
                batch.append(settle(item, firsts[digest]))
            else:
                held.setdefault(digest, []).append(item)
            return
        batch.append(item)
        if item.claimed is not None:
            firsts[item.claimed] = item.record.error
            batch.extend(settle(c, item.record.error) for c in held.pop(item.claimed, []))

    def submit(f: FileStat, with_claims: bool = True) -> None:
        args = (root, f, encoder, known, have_thumbs, opts, claims if with_claims else None)
        pending[pool.submit(prepare_file, *args, progress.cancelled)] = f

    if remote is not None:
        arrivals = remote.prepare(root, todo, known, have_thumbs, opts, progress)
        try:
            for item in arrivals:
                arrive(item)
                while len(batch) >= batch_size and not progress.cancelled():
                    flush(batch[:batch_size])
                    batch = batch[batch_size:]
                if progress.cancelled():
                    report.cancelled = True
                    return done
            # copies whose first file never came back (not seen): left to the next run
            why = "its first copy did not come back from the cluster; tried again next run"
            batch += [_failed(c.stat, why, transient=True) for cs in held.values() for c in cs]
            if batch:
                flush(batch)
        finally:
            arrivals.close()  # the cluster's work stops with the run
        return done

    pool = _DaemonPool(workers)
    try:
        while True:
            while not exhausted and len(pending) < window:
                f = next(queue_, None)
                if f is None:
                    exhausted = True
                    break
                submit(f)
            if not pending and held:
                # a first file never came back (timed out): its copies are read on their own
                for copies in held.values():
                    for c in copies:
                        submit(c.stat, with_claims=False)
                held.clear()
            if not pending:
                break
            finished, _ = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            if progress.cancelled():
                report.cancelled = True
                break
            for fut in finished:
                pending.pop(fut)
                arrive(fut.result())
            for fut in pool.overdue(opts.file_timeout + 1.0):
                pool.abandon(fut)
                f = pending.pop(fut)
                reason = f"no answer after {opts.file_timeout:.0f} s (a hung drive?); skipped"
                arrive(_failed(f, reason, transient=True))
            while len(batch) >= batch_size and not progress.cancelled():
                flush(batch[:batch_size])  # each batch may take seconds: check between them
                batch = batch[batch_size:]
            if progress.cancelled():
                report.cancelled = True
                break
            if batch and exhausted and not pending and not held:
                flush(batch)
                batch = []
        if batch and not report.cancelled:
            flush(batch)
    finally:
        pool.shutdown()
    return done


def ensure_dir_exists(path: Path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"folder not found: {path}")
    if not path.is_dir():
        raise NotADirectoryError(f"not a folder: {path}")
    if not os.access(path, os.R_OK | os.X_OK):
        raise PermissionError(f"cannot read folder: {path}")
    return path
