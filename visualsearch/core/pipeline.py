"""scan → read/hash → decode (thread pool) → encode (batches) → store, with Progress.

Decoding runs in a thread pool (Pillow and the hashing release the GIL) while
the calling thread encodes full batches, so the two overlap. Each batch is one
transaction: cancel or kill the run and it resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from visualsearch.core import imageio
from visualsearch.core.encoders.base import Encoder, ModelUnavailable, default_threads
from visualsearch.core.index import ANNOY_THRESHOLD, open_index
from visualsearch.core.integrity import valid_vectors
from visualsearch.core.progress import NullProgress, Progress
from visualsearch.core.scan import FileStat, scan_folder
from visualsearch.core.store import FileRecord, Store, content_hash

THUMBNAIL_SIZE = 256


@dataclass
class IndexOptions:
    # bench/index.py: EfficientNet-Lite2 in ONNX Runtime ran 91 img/s at batch 8, 61 at 16
    batch_size: int = 8
    workers: int = 0  # decode threads; 0 = one per core
    retry_errors: bool = False  # try again files that failed before and did not change
    max_pixels: int = imageio.DEFAULT_MAX_PIXELS
    thumbnail_size: int = THUMBNAIL_SIZE
    annoy_threshold: int = ANNOY_THRESHOLD  # from this many images on, build Annoy
    forget_missing: bool = False  # forget files not found even if their folder looks unmounted


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
    seconds: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)  # new ones from this run
    problems: list[tuple[str, str]] = field(default_factory=list)  # from the scan

    @property
    def indexed(self) -> int:
        return self.encoded + self.reused


@dataclass
class _Item:
    """A decode worker's result for one file."""

    stat: FileStat
    record: FileRecord
    pixels: np.ndarray | None = None  # preprocessed, when the model must see it
    thumbnail: bytes | None = None


def prepare_file(
    root: Path,
    f: FileStat,
    encoder: Encoder,
    known: frozenset[str],
    have_thumbs: frozenset[str],
    opts: IndexOptions,
) -> _Item:
    """Read, hash and, only where needed, decode + preprocess + thumbnail one file.

    Runs in a decode thread; never raises: failures become a record with an error.
    """
    try:
        data = imageio.read_bytes(root / f.path)
        digest = content_hash(data)
        need_vector = digest not in known
        need_thumb = digest not in have_thumbs
        if need_vector or need_thumb:
            min_side = max(
                encoder.input_size if need_vector else 0, opts.thumbnail_size if need_thumb else 0
            )
            decoded = imageio.decode(data, min_side=min_side, max_pixels=opts.max_pixels)
            info = decoded.info
            pixels = encoder.preprocess(decoded.image) if need_vector else None
            thumb = (
                imageio.thumbnail_jpeg(decoded.image, opts.thumbnail_size) if need_thumb else None
            )
        else:
            info = imageio.probe(data, max_pixels=opts.max_pixels)
            pixels = thumb = None
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
        return _Item(f, record, pixels, thumb)
    except imageio.ImageError as exc:
        return _Item(f, FileRecord(f.path, f.size, f.mtime_ns, error=str(exc)))
    except Exception as exc:  # a bug in a decoder must not end the run
        return _Item(f, FileRecord(f.path, f.size, f.mtime_ns, error=f"unexpected error: {exc!r}"))


def index_folder(
    folder: Path,
    store: Store,
    encoder: Encoder,
    progress: Progress | None = None,
    options: IndexOptions | None = None,
    on_commit: Callable[[list[FileRecord]], None] | None = None,
) -> IndexReport:
    """Bring the store up to date with `folder` for `encoder`'s model.

    Unchanged files (same size and mtime) are only stat-ed. New and changed
    files are read and hashed; a hash that already has a vector (a moved or
    copied file) is not decoded again. Files that vanished are dropped at the
    end of a complete run, unless their folder looks unmounted (`keep_if_unmounted`).
    One run per store at a time (`run_lock`). Never writes to `folder`. `on_commit` gets
    each batch's records right after its transaction (the window shows them as they arrive).
    """
    progress = progress or NullProgress()
    opts = options or IndexOptions()
    root = Path(folder).expanduser().resolve()
    with run_lock(store.directory, progress):
        return _index_locked(root, store, encoder, progress, opts, on_commit)


def _index_locked(root, store, encoder, progress, opts, on_commit) -> IndexReport:
    started = time.perf_counter()
    report = IndexReport(folder=str(root), model=encoder.id)
    if progress.cancelled():
        report.cancelled = True
        return report

    progress.report(0, 0, "Scanning folder…")
    scan = scan_folder(root, exclude=[store.directory])
    report.scanned = len(scan.files)
    report.problems = scan.problems
    records = store.file_records()
    known = store.known_hashes(encoder.id, encoder.dim)
    seen = {f.path for f in scan.files}

    todo: list[FileStat] = []
    for f in scan.files:
        old = records.get(f.path)
        if old is None:
            report.new += 1
            todo.append(f)
        elif old.size != f.size or old.mtime_ns != f.mtime_ns:
            report.changed += 1
            todo.append(f)
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
    gone = [
        p for p in records if p not in seen and not root_unreadable and not p.startswith(unreadable)
    ]
    device = _device(root)
    if not opts.forget_missing:
        gone, report.missing_kept, report.warning = keep_if_unmounted(
            root, gone, len(scan.files), store.get_meta("root_device"), device
        )
    gone_hashes = {records[p].hash for p in gone if records[p].hash}

    total = len(todo)
    done = 0
    progress.report(0, total, f"{total} images to index")
    if total:
        done = _run(
            root, todo, store, encoder, progress, opts, known, gone_hashes, report, on_commit
        )

    if not report.cancelled:
        report.removed = store.remove_paths(gone)
        if report.removed:
            store.collect_garbage()
        if not report.missing_kept and scan.files:
            store.set_meta("root_device", str(device))
    store.set_meta("model", encoder.id)
    if not report.cancelled and store.vector_counts().get(encoder.id, 0) >= opts.annoy_threshold:
        # built after ingest, so the first query is instant
        progress.report(done, total, "Building the search index…")
        open_index(store, encoder.id, threshold=opts.annoy_threshold)
    report.seconds = time.perf_counter() - started
    progress.report(done, total, "Cancelled" if report.cancelled else "Done")
    return report


def _device(root: Path) -> int:
    return os.stat(root).st_dev


def keep_if_unmounted(
    root: Path, gone: list[str], found: int, recorded_device: str | None, device: int
) -> tuple[list[str], int, str]:
    """Split the catalogued files that were not found into those to forget and a count
    of those kept, with a warning, because their folder looks unmounted rather than
    emptied: the whole folder is empty, it is on another filesystem than when it was
    indexed, or they lie under a subfolder that is now empty (an unmounted drive's
    mount point) or a link to a folder that is not there. Forgetting them would throw away every vector of a drive that is
    merely unplugged; `forget_missing` does that on request."""
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


def _run(root, todo, store, encoder, progress, opts, known, gone_hashes, report, on_commit) -> int:
    workers = opts.workers or default_threads()
    batch_size = max(1, opts.batch_size)
    window = max(batch_size * 3, workers * 2)  # bounds memory held by decoded pixels
    known_f = frozenset(known)
    thumbs_f = frozenset(store.thumbnail_hashes())
    pending: set[Future] = set()
    queue = iter(todo)
    batch: list[_Item] = []
    done = 0
    started = time.perf_counter()
    exhausted = False

    def flush(items: list[_Item]) -> None:
        nonlocal done
        # one encode per distinct content (copies of a file in one batch)
        to_encode = list({it.record.hash: it for it in items if it.pixels is not None}.values())
        vectors = {}
        if to_encode:
            embedded = encoder.embed_images(np.stack([it.pixels for it in to_encode]))
            valid = valid_vectors(embedded)
            if not valid.any():
                raise ModelUnavailable(
                    f"the model {encoder.id} computed no valid vector for a whole batch "
                    "(NaN or zero): its files may be damaged. Nothing of that batch was stored"
                )
            vectors = {
                it.record.hash: v
                for it, v, ok in zip(to_encode, embedded, valid, strict=True)
                if ok
            }
            for it in items:
                if it.pixels is not None and it.record.hash not in vectors:
                    it.record = replace(
                        it.record, error="the model computed no valid vector for this image"
                    )
                    it.pixels = None
        thumbs = {it.record.hash: it.thumbnail for it in items if it.thumbnail is not None}
        store.commit_batch(encoder.id, [it.record for it in items], vectors, thumbs)
        if on_commit is not None:
            on_commit([it.record for it in items])
        for it in items:
            if it.record.error is not None:
                report.failed += 1
                report.errors.append((it.record.path, it.record.error))
            elif it.pixels is not None:
                report.encoded += 1
            else:
                report.reused += 1
                if it.record.hash in gone_hashes:
                    report.moved += 1
        done += len(items)
        rate = done / max(time.perf_counter() - started, 1e-6)
        progress.report(done, len(todo), f"{done}/{len(todo)} images, {rate:.1f}/s")

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        try:
            while True:
                while not exhausted and len(pending) < window:
                    f = next(queue, None)
                    if f is None:
                        exhausted = True
                        break
                    pending.add(
                        pool.submit(prepare_file, root, f, encoder, known_f, thumbs_f, opts)
                    )
                if not pending:
                    break
                finished, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                if progress.cancelled():
                    report.cancelled = True
                    break
                batch.extend(fut.result() for fut in finished)
                while len(batch) >= batch_size:
                    flush(batch[:batch_size])
                    batch = batch[batch_size:]
                if batch and exhausted and not pending:
                    flush(batch)
                    batch = []
            if batch and not report.cancelled:
                flush(batch)
        finally:
            for fut in pending:
                fut.cancel()
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
