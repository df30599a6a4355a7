"""Sealed index segments: what they are (the manifest), and building and merging them
in the background — never in a query's path.

A segment is an Annoy index over compact vectors (the full vectors projected onto their
leading principal directions) of a set of rows of the model's `VectorFile`; its item i
is row `rows[i]`. Rows never change, so a segment stays right for every row it holds:
a deleted or changed file only makes its row dead (a tombstone, filtered at query time),
and new images are searched exactly until enough of them are sealed into a new segment.
Segments of similar size are merged (size-tiered, as in an LSM tree), so each row is
rebuilt O(log n) times over the library's life and the count of segments stays small.

The manifest (one catalog meta value) names the segments; a new one is written with a
compare-and-set only after its files are complete, fsynced and checksummed, and the
files it replaced are deleted after that: a merge killed at any point loses nothing.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from visualsearch.core.encoders.base import save_array
from visualsearch.core.integrity import cache_checksum, verified_checksum
from visualsearch.core.progress import NullProgress, Progress
from visualsearch.core.store import Store, slug
from visualsearch.core.vector_file import LiveVectors, VectorFile

log = logging.getLogger(__name__)

# bench/search.py on 2 cores, 1280-d, k=10: exact search took 1.8 ms at 10k vectors
# and 20 ms at 100k; Annoy 3.0 ms and 6.3 ms. Below 20k vectors exact search is as fast
# and exact, so no segment is built there.
ANNOY_THRESHOLD = 20_000
# Segments index projections of the vectors onto their leading principal directions,
# re-ranked with the full float16 vectors. bench/scale.py --options at 1M × 1280-d
# (README): 128-d 3,739 bytes an image with the float16 row, built in 70 s, 11.9 ms,
# recall@10 1.000; 256-d 4,156 bytes, 88 s, 15.0 ms, 1.000. At 60k the 512-d and full
# 1280-d options also kept 1.000 at 1.4× and 2.2× the bytes and 2.5-5× the build time.
COMPACT_DIM = 128
TREES = 40
# Annoy inspects candidates × trees × this many nodes per query and segment, and hands
# `CANDIDATES` to the exact re-ranking. At 1M × 1280-d (128-d segment, 2 cores busy
# with a build beside it): 300 and 4 kept recall@10 1.00 in 13 ms; 200 and 4 0.99 in
# 6 ms; 400 and 8 1.00 in 48 ms; 150 and 4 only 0.90.
SEARCH_FACTOR = 4
CANDIDATES = 300
# new rows searched exactly until this many are sealed into a segment: 10,000 × 1280-d
# float32 is 51 MB and 4 ms a query, and sealing them takes a few seconds
SEAL_AT = 10_000
# a segment with this share of dead rows is rebuilt at the next maintenance
DEAD_SHARE = 0.3
# rows used to fit the projection (a 20,000 × 1280 SVD: about a second)
PROJECTION_SAMPLE = 20_000


ROW_DTYPE = np.dtype([("row", "<i8"), ("key", "S16")])


def sealed_rows(directory: Path, entry: SegmentFile, vectors: VectorFile) -> np.ndarray | None:
    """The vector-file rows of a segment's items, or None when the segment cannot be
    used: its files are damaged or missing (`intact`), or its rows no longer hold the
    contents it was built from (a vector file cut short and filled again in another
    order) or lie beyond the file. The file is mapped again once if they lie beyond it:
    another thread or process may have appended and sealed since."""
    if not intact(directory, entry):
        log.warning("index segment %s is damaged or missing: not used", entry.name)
        return None
    try:
        items = np.load(rows_path(directory, entry.name), allow_pickle=False)
    except (OSError, ValueError):
        return None
    if items.dtype != ROW_DTYPE or items.ndim != 1 or len(items) != entry.n or not len(items):
        return None
    rows = items["row"]
    if rows.min() < 0:
        return None
    if rows.max() >= len(vectors):
        vectors.remap()
        if rows.max() >= len(vectors):
            return None
    if not np.array_equal(vectors.keys[rows], items["key"]):
        log.warning("index segment %s no longer matches the vector file: not used", entry.name)
        return None
    return rows


@dataclass(frozen=True)
class SegmentFile:
    name: str  # "<base>.ann"; its rows are in "<base>.rows.npy"
    n: int
    size: int
    checksum: str  # integrity.cache_checksum
    rows_checksum: str


@dataclass(frozen=True)
class Manifest:
    epoch: str = ""  # the VectorFile's identity: rows mean nothing in another one
    projection: str = ""  # file name of the (dim, COMPACT_DIM) projection
    projection_checksum: str = ""
    segments: tuple[SegmentFile, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> Manifest:
        """The manifest in `text`; anything malformed reads as no manifest (rebuilt)."""
        try:
            raw = json.loads(text) if text else {}
            segments = tuple(SegmentFile(**s) for s in raw.pop("segments", []))
            manifest = cls(**raw, segments=segments)
        except (TypeError, ValueError, AttributeError):
            return cls()
        texts = [manifest.epoch, manifest.projection, manifest.projection_checksum]
        for s in segments:
            texts += [s.name, s.checksum, s.rows_checksum]
        numbers = [n for s in segments for n in (s.n, s.size)]
        names = [s.name for s in segments]
        if (
            not all(isinstance(t, str) for t in texts)
            or not all(type(n) is int and n >= 0 for n in numbers)
            or len(set(names)) != len(names)
            or not all(n.startswith("seg-") and "/" not in n for n in names)
        ):
            return cls()
        return manifest


def meta_key(model: str) -> str:
    return f"segments:{model}"


def read_manifest(store: Store, model: str) -> tuple[str | None, Manifest]:
    text = store.get_meta(meta_key(model))
    return text, Manifest.from_json(text)


def prefix(model: str) -> str:
    return f"seg-{slug(model)}-"


def rows_path(directory: Path, name: str) -> Path:
    return Path(directory) / (name.removesuffix(".ann") + ".rows.npy")


def intact(directory: Path, entry: SegmentFile) -> bool:
    """The segment's files are there and are the very files that were written."""
    ann, rows = Path(directory) / entry.name, rows_path(directory, entry.name)
    try:
        return (
            ann.stat().st_size == entry.size
            and verified_checksum(ann) == entry.checksum
            and verified_checksum(rows) == entry.rows_checksum
        )
    except OSError:
        return False


def load_projection(directory: Path, manifest: Manifest, dim: int) -> np.ndarray | None:
    if not manifest.projection:
        return None
    path = Path(directory) / manifest.projection
    try:
        if verified_checksum(path) != manifest.projection_checksum:
            return None
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    width = matrix.shape[1] if matrix.ndim == 2 else 0
    if matrix.shape[0] != dim or not 0 < width <= max(COMPACT_DIM, dim):
        return None
    if not np.isfinite(matrix).all():
        return None
    return matrix.astype(np.float32)


def fit_projection(vectors: VectorFile, rows: np.ndarray, seed: int = 0) -> np.ndarray:
    """(dim, COMPACT_DIM): the leading right singular vectors of a sample of the rows.
    Not centred: cosine ranking needs the dot product itself, not the covariance."""
    if vectors.dim <= COMPACT_DIM:
        return np.eye(vectors.dim, dtype=np.float32)  # small vectors are indexed as they are
    rng = np.random.default_rng(seed)
    sample = rows if len(rows) <= PROJECTION_SAMPLE else rng.choice(rows, PROJECTION_SAMPLE, False)
    matrix = vectors.read(np.sort(sample))
    _, _, vt = np.linalg.svd(matrix, full_matrices=False)
    return np.ascontiguousarray(vt[:COMPACT_DIM].T, np.float32)


def build_segment(
    directory: Path,
    model: str,
    vectors: VectorFile,
    projection: np.ndarray,
    rows: np.ndarray,
    progress: Progress | None = None,
    trees: int = TREES,
) -> SegmentFile:
    """Build an Annoy segment over `rows` (sorted) into new files; returns its entry.
    The Annoy file is built on disk (no second copy in memory) under a temporary name."""
    from annoy import AnnoyIndex

    progress = progress or NullProgress()
    # Annoy writes the file through a memory map: a full disk would kill the process
    # (SIGBUS), not raise. 1,179 bytes an item for 128-d and 40 trees at 1M: this is
    # a generous bound.
    need = len(rows) * (projection.shape[1] * 4 + 16) * (1 + trees / 12) + 64 * 2**20
    free = shutil.disk_usage(directory).free
    if free < need:
        raise OSError(
            errno.ENOSPC,
            f"not enough free space to build the search index ({need / 2**20:,.0f} MB "
            f"needed, {free / 2**20:,.0f} MB free in {directory}); searching stays exact",
        )
    base = f"{prefix(model)}{uuid.uuid4().hex[:12]}"
    final = Path(directory) / f"{base}.ann"
    tmp = final.with_suffix(f".{os.getpid()}.tmp")
    index = AnnoyIndex(projection.shape[1], "angular")
    index.set_seed(42)
    index.on_disk_build(str(tmp))
    try:
        step = 65_536
        for lo in range(0, len(rows), step):
            compact = vectors.read(rows[lo : lo + step]) @ projection
            for i, row in enumerate(compact, start=lo):
                index.add_item(i, row)
            progress.report(min(lo + step, len(rows)), len(rows), "Building the search index…")
        index.build(trees, n_jobs=-1)
        index.unload()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        items = np.empty(len(rows), ROW_DTYPE)  # each item's row and the content it held
        items["row"], items["key"] = rows, vectors.keys[rows]
        save_array(rows_path(directory, final.name), items)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        rows_path(directory, final.name).unlink(missing_ok=True)
        raise
    return SegmentFile(
        final.name,
        len(rows),
        final.stat().st_size,
        cache_checksum(final),
        cache_checksum(rows_path(directory, final.name)),
    )


def plan_merge(
    sizes: list[int], dead: list[int], fresh: int, seal_at: int = SEAL_AT
) -> list[int] | None:
    """Which segments (indices) to rebuild together with the fresh rows, or None for
    nothing to do. Fresh rows are sealed once there are `seal_at` of them (or when there
    is no segment yet); a segment joins when it is no more than twice the size of what
    is being built so far (size-tiered), or when `DEAD_SHARE` of it is dead."""
    rotten = [i for i, (n, d) in enumerate(zip(sizes, dead, strict=True)) if d > DEAD_SHARE * n]
    if fresh < seal_at and sizes and not rotten:
        return None
    if not fresh and not rotten:
        return None
    chosen = set(rotten)
    total = fresh + sum(sizes[i] - dead[i] for i in chosen)
    for i in sorted(range(len(sizes)), key=lambda i: sizes[i]):
        if i not in chosen and sizes[i] - dead[i] <= 2 * total:
            chosen.add(i)
            total += sizes[i] - dead[i]
    return sorted(chosen)


def maintain(
    store: Store,
    vectors: VectorFile,
    live_rows: np.ndarray,
    progress: Progress | None = None,
    threshold: int = ANNOY_THRESHOLD,
    seal_at: int = SEAL_AT,
    on_built: Callable[[SegmentFile], None] | None = None,
) -> int:
    """Seal fresh rows and merge segments until the plan says nothing is left to do;
    returns how many segments were built. `live_rows`: the rows current files hold.
    Below `threshold` live rows nothing is built (exact search is as fast). One process
    maintains a store at a time; another one that finds it busy returns at once."""
    progress = progress or NullProgress()
    directory, model = store.directory, vectors.model
    lock = FileLock(str(Path(directory) / f"{prefix(model)}maintain.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return 0
    built = 0
    try:
        live = np.zeros(len(vectors), bool)
        live[live_rows] = True
        while len(live_rows) >= threshold and not progress.cancelled():
            text, manifest = read_manifest(store, model)
            manifest, seg_rows = _usable(directory, manifest, vectors)
            _remove_unlisted(directory, model, manifest)
            projection = load_projection(directory, manifest, vectors.dim)
            if projection is None:
                projection = fit_projection(vectors, live_rows)
                manifest = Manifest(vectors.epoch, *_save_projection(directory, model, projection))
                seg_rows = []
            held = np.zeros(len(vectors), bool)
            for rows in seg_rows:
                held[rows] = True
            fresh = np.flatnonzero(live & ~held)
            sizes = [s.n for s in manifest.segments]
            dead = [int((~live[rows]).sum()) for rows in seg_rows]
            plan = plan_merge(sizes, dead, len(fresh), seal_at)
            if plan is None:
                if manifest.to_json() != text:
                    store.replace_meta(meta_key(model), text, manifest.to_json())
                break
            parts = [fresh] + [seg_rows[i][live[seg_rows[i]]] for i in plan]
            rows = np.unique(np.concatenate(parts))
            entry = None  # nothing live left in them: they are only dropped
            if len(rows):
                entry = build_segment(directory, model, vectors, projection, rows, progress)
            kept = tuple(s for i, s in enumerate(manifest.segments) if i not in plan)
            new = Manifest(
                vectors.epoch,
                manifest.projection,
                manifest.projection_checksum,
                (*kept, entry) if entry else kept,
            )
            if not store.replace_meta(meta_key(model), text, new.to_json()):
                if entry:
                    _delete(directory, entry.name)  # the manifest changed under us: again
                continue
            for i in plan:
                _delete(directory, manifest.segments[i].name)
            built += entry is not None
            if on_built is not None and entry is not None:
                on_built(entry)
    finally:
        lock.release()
    return built


def maintain_index(
    store: Store,
    model: str,
    dim: int,
    progress: Progress | None = None,
    threshold: int = ANNOY_THRESHOLD,
    seal_at: int = SEAL_AT,
) -> int:
    """`maintain` for the store's current files: brings the vector file up to date, then
    seals and merges segments. Returns how many segments were built."""
    live = LiveVectors(store, model, dim)
    return maintain(store, live.file, live.unique_rows(), progress, threshold, seal_at)


def _usable(
    directory: Path, manifest: Manifest, vectors: VectorFile
) -> tuple[Manifest, list[np.ndarray]]:
    """The manifest without the segments that cannot be used (`sealed_rows`) or that
    belong to another vector file (their rows would point at other vectors), and the
    rows of those kept."""
    if manifest.epoch != vectors.epoch:
        return Manifest(vectors.epoch), []
    keep, rows = [], []
    for entry in manifest.segments:
        if (items := sealed_rows(directory, entry, vectors)) is not None:
            keep.append(entry)
            rows.append(items)
    kept = Manifest(manifest.epoch, manifest.projection, manifest.projection_checksum, tuple(keep))
    return kept, rows


def _save_projection(directory: Path, model: str, projection: np.ndarray) -> tuple[str, str]:
    name = f"{prefix(model)}{uuid.uuid4().hex[:12]}.projection.npy"
    save_array(Path(directory) / name, projection)
    return name, cache_checksum(Path(directory) / name)


def _remove_unlisted(directory: Path, model: str, manifest: Manifest) -> None:
    """Files of segments no manifest names: left by a killed build or merge. Called
    only under the maintenance lock, so no other process is writing one."""
    listed = {manifest.projection}
    for s in manifest.segments:
        listed |= {s.name, rows_path(directory, s.name).name}
    for path in Path(directory).glob(f"{prefix(model)}*"):
        if path.name not in listed and not path.name.endswith(".lock"):
            path.unlink(missing_ok=True)
    for old in Path(directory).glob(f"index-{slug(model)}.*"):  # before segments
        old.unlink(missing_ok=True)


def _delete(directory: Path, name: str) -> None:
    for path in (Path(directory) / name, rows_path(directory, name)):
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:  # mapped by a reader where that forbids it: next time
            log.info("segment file %s stays for now: %s", path.name, exc)
