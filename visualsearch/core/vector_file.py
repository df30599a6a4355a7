"""A model's vectors as float16 rows in a file that is memory-mapped and only appended to.

The catalog (SQLite) stays the source of truth; this file is a verified cache of it in
the form a query wants: row r is `vectors-<model>.f16[r]`, the content hash it belongs
to is `vectors-<model>.hashes[r]` (16 bytes). A row never changes once written, so an
index segment can name its items by row. Opening a collection maps both files and only
appends the vectors of contents it has not seen (read from the catalog by hash): one new
photo costs one row, not a reload of every vector (3.6 s at 100k, a full float32 copy).

Crash safety: vectors are written and flushed before their hashes, and the number of
rows is the length of the shorter file, so a torn or killed append leaves rows no one
counts; the next append cuts them off. Every appended vector is checked (finite, unit
length) and a row read for a query is checked again before its score is used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from filelock import FileLock

from visualsearch.core.integrity import valid_vectors
from visualsearch.core.store import Store, py_path, slug, sound_blobs

log = logging.getLogger(__name__)

HASH_BYTES = 16
# rows read from the catalog per query while filling the file: bounded memory at any size
_CHUNK = 4096


def to_keys(hashes: Iterable[str]) -> np.ndarray:
    """Content hashes as 16-byte keys: a store's hashes are 32 hex digits (their bytes);
    any other text (a test's or an old store's) is keyed by its BLAKE2b digest."""
    hexes = list(hashes)
    if not hexes:
        return np.zeros(0, f"S{HASH_BYTES}")
    try:
        raw = bytes.fromhex("".join(hexes))
        # a store's own hashes: 32 hex digits each (none longer and n × 16 bytes in all)
        if len(raw) == HASH_BYTES * len(hexes) and max(map(len, hexes)) == 2 * HASH_BYTES:
            return np.frombuffer(raw, f"S{HASH_BYTES}").copy()
    except ValueError:
        pass
    return np.array([_key(h) for h in hexes], f"S{HASH_BYTES}")


def _key(digest: str) -> bytes:
    if len(digest) == 2 * HASH_BYTES:
        try:
            return bytes.fromhex(digest)
        except ValueError:
            pass
    return hashlib.blake2b(digest.encode(), digest_size=HASH_BYTES).digest()


class VectorFile:
    """The float16 rows of one model in one store directory, with their content keys."""

    def __init__(self, directory: Path, model: str, dim: int, owner: str = "") -> None:
        """`owner`: the catalog's identity; a file written for another catalog (one that
        was deleted and made again, reaching the same hashes) is started over."""
        self.model, self.dim, self.owner = model, dim, owner
        base = Path(directory) / f"vectors-{slug(model)}"
        self.vectors_path = base.with_suffix(".f16")
        self.hashes_path = base.with_suffix(".hashes")
        self.id_path = base.with_suffix(".id")
        self.bad_path = base.with_suffix(".bad")  # rows found damaged: filled again
        self.lock = FileLock(str(base.with_suffix(".lock")))
        self.row_bytes = dim * 2
        self._map()

    def _map(self) -> None:
        """Map what is on disk now: whole rows present in both files."""
        try:
            n_vec = self.vectors_path.stat().st_size // self.row_bytes
            n_hash = self.hashes_path.stat().st_size // HASH_BYTES
            self.epoch = self.id_path.read_text().strip()
        except (OSError, UnicodeDecodeError):
            n_vec = n_hash = 0
            self.epoch = ""
        if not self.epoch.startswith(f"{self.owner}:"):
            self.epoch = ""
        self.rows = min(n_vec, n_hash) if self.epoch else 0
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None
        self.bad = np.zeros(0, np.int64)
        if self.rows and self.bad_path.exists():
            self.bad = np.fromfile(self.bad_path, "<i8")
            self.bad = self.bad[(self.bad >= 0) & (self.bad < self.rows)]
        if self.rows:
            self.matrix = np.memmap(self.vectors_path, np.float16, "r", shape=(self.rows, self.dim))
            self.keys = np.fromfile(self.hashes_path, f"S{HASH_BYTES}", count=self.rows)
        else:
            self.matrix = np.zeros((0, self.dim), np.float16)
            self.keys = np.zeros(0, f"S{HASH_BYTES}")

    def __len__(self) -> int:
        return self.rows

    # -- reading ------------------------------------------------------------------------

    def rows_of(self, keys: np.ndarray) -> np.ndarray:
        """The row holding each content key, or -1. A key written twice (its vector was
        encoded again) maps to its newest row."""
        if self.rows == 0 or len(keys) == 0:
            return np.full(len(keys), -1, np.int64)
        if self._lookup is None:
            usable = np.ones(self.rows, bool)
            usable[self.bad] = False  # a damaged row's content reads as missing: appended again
            order = np.flatnonzero(usable)
            order = order[np.argsort(self.keys[order], kind="stable")]
            sorted_keys = self.keys[order]
            # the last of each run of equal keys: the newest row
            last = np.ones(len(sorted_keys), bool)
            last[:-1] = sorted_keys[1:] != sorted_keys[:-1]
            self._lookup = sorted_keys[last], order[last]
        sorted_keys, order = self._lookup
        if not len(sorted_keys):  # every row marked damaged
            return np.full(len(keys), -1, np.int64)
        at = np.searchsorted(sorted_keys, keys)
        at = np.minimum(at, len(sorted_keys) - 1)
        found = sorted_keys[at] == keys
        return np.where(found, order[at], -1).astype(np.int64)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Float32 copies of `rows`."""
        return np.asarray(self.matrix[np.asarray(rows, np.int64)], np.float32)

    def read_sound(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The `rows` that are sound (finite, unit length) and their float32 copies. A
        damaged one is left out and forgotten: the next sync appends it again."""
        rows = np.asarray(rows, np.int64)
        matrix = self.read(rows)
        ok = valid_vectors(matrix) if len(rows) else np.zeros(0, bool)
        if not ok.all():
            log.warning("%d damaged vectors in %s left out", (~ok).sum(), self.model)
            self.forget(rows[~ok])
        return rows[ok], matrix[ok]

    # -- appending ----------------------------------------------------------------------

    def sync(self, store: Store, hashes: Iterable[str]) -> np.ndarray:
        """Make sure every content in `hashes` that has a vector in the catalog has a row;
        return each one's row (-1: no valid vector). Missing vectors are read from the
        catalog by hash and appended, in chunks: bounded memory even on a first fill of
        a million images."""
        hashes = list(hashes)
        keys = to_keys(hashes)
        rows = self.rows_of(keys)
        if (rows >= 0).all():
            return rows
        with self.lock:
            self._map()  # another process may have appended meanwhile
            rows = self.rows_of(keys)
            missing = np.flatnonzero(rows < 0)
            if len(missing):
                self._append_from(store, sorted({hashes[i] for i in missing.tolist()}))
                self._map()
                rows[missing] = self.rows_of(keys[missing])
        return rows

    def _append_from(self, store: Store, hexes: list[str]) -> None:
        if not self.epoch:
            self._start_new()
        self._cut_torn_tail()
        blob_len = self.row_bytes
        with open(self.vectors_path, "ab") as vf, open(self.hashes_path, "ab") as hf:
            for lo in range(0, len(hexes), _CHUNK):
                chunk = hexes[lo : lo + _CHUNK]
                marks = ",".join("?" * len(chunk))
                found = store.conn.execute(
                    f"SELECT hash, vector FROM vectors WHERE model=? AND hash IN ({marks})",
                    (self.model, *chunk),
                ).fetchall()
                ok, _ = sound_blobs([v for _, v in found], blob_len)
                lengths = {len(v) for _, v in found}
                if found and not ok.any() and len(lengths) == 1 and blob_len not in lengths:
                    # every vector of another size: the caller's size is wrong, they are not
                    # damaged (dropping them would lose the whole model's vectors)
                    raise ValueError(
                        f"the stored {self.model} vectors have {lengths.pop() // 2} values, "
                        f"not {self.dim}"
                    )
                damaged = [h for (h, _), good in zip(found, ok, strict=True) if not good]
                store.drop_vectors(self.model, damaged)  # the next run encodes them again
                found = [f for f, good in zip(found, ok, strict=True) if good]
                if not found:
                    continue
                vf.write(b"".join(v for _, v in found))
                vf.flush()
                os.fsync(vf.fileno())  # vectors first: a row counts once its hash is there
                hf.write(b"".join(_key(h) for h, _ in found))
                hf.flush()
                os.fsync(hf.fileno())

    def _start_new(self) -> None:
        for path in (self.vectors_path, self.hashes_path, self.bad_path):
            path.unlink(missing_ok=True)
        tmp = self.id_path.with_suffix(f".{os.getpid()}.tmp")
        self.epoch = f"{self.owner}:{uuid.uuid4().hex}"
        tmp.write_text(self.epoch)
        os.replace(tmp, self.id_path)
        self.rows = 0

    def _cut_torn_tail(self) -> None:
        """Drop bytes beyond the last whole row counted in both files (a killed append)."""
        for path, size in ((self.vectors_path, self.row_bytes), (self.hashes_path, HASH_BYTES)):
            if path.exists() and path.stat().st_size != self.rows * size:
                os.truncate(path, self.rows * size)

    def forget(self, rows: np.ndarray) -> None:
        """Rows found damaged (not finite, not unit length): their contents read as
        missing from now on, so the next sync appends them again from the catalog."""
        rows = np.asarray(rows, "<i8")
        if not len(rows):
            return
        with self.lock:
            with open(self.bad_path, "ab") as fh:
                fh.write(rows.tobytes())
                fh.flush()
                os.fsync(fh.fileno())
            self._map()

    def remap(self) -> None:
        """Map the rows appended since (by another thread or process); rows already
        mapped keep their place and content."""
        self._map()


def for_store(store: Store, model: str, dim: int) -> VectorFile:
    """The vector file of `model` in `store`'s directory."""
    return VectorFile(store.directory, model, dim, store.identity)


def live_files(store: Store) -> tuple[list[str], list[str]]:
    """Every readable catalogued file's path (sorted) and content hash."""
    rows = store.conn.execute(
        "SELECT path, hash FROM files WHERE error IS NULL AND hash IS NOT NULL ORDER BY path"
    ).fetchall()
    return [p if type(p) is str else py_path(p) for p, _ in rows], [h for _, h in rows]


class DamagedRows(ValueError):
    """Rows of a vector file read damaged (not finite, not unit length). They are
    forgotten already: the next sync appends their contents again from the catalog."""

    def __init__(self, model: str, rows: np.ndarray) -> None:
        super().__init__(f"{len(rows)} damaged {model} vectors in the vector file")
        self.rows = rows


class RowVectors:
    """Float32 vectors of some rows of a vector file, read when indexed: an array-like
    that analyses go through in chunks instead of holding every vector. Each row read is
    checked; a damaged one raises DamagedRows (a NaN made the map's layout fail)."""

    dtype = np.dtype(np.float32)

    def __init__(self, vectors: VectorFile, rows: np.ndarray) -> None:
        self.file, self.rows = vectors, np.asarray(rows, np.int64)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), self.file.dim

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> np.ndarray:
        return self._checked(self.rows[index])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self._checked(self.rows), dtype or np.float32)

    def _checked(self, rows: np.ndarray) -> np.ndarray:
        matrix = self.file.read(rows)
        ok = valid_vectors(matrix.reshape(-1, self.file.dim))
        if not ok.all():
            bad = np.unique(np.atleast_1d(rows)[~ok])
            self.file.forget(bad)
            raise DamagedRows(self.file.model, bad)
        return matrix


class LiveVectors:
    """The vectors of every readable catalogued file with one for `model`: `paths`
    (sorted), each one's row in `file`, and `vectors` reading them (`RowVectors`). The
    vector file is brought up to date first: only contents it has not seen are read."""

    def __init__(self, store: Store, model: str, dim: int) -> None:
        self.model = model
        self.file = for_store(store, model, dim)
        paths, hashes = live_files(store)
        rows = self.file.sync(store, hashes)
        keep = (rows >= 0).tolist()
        self.paths = [p for p, ok in zip(paths, keep, strict=True) if ok]
        self.hashes = [h for h, ok in zip(hashes, keep, strict=True) if ok]
        self.rows = rows[rows >= 0]
        self.vectors = RowVectors(self.file, self.rows)

    def unique_rows(self) -> np.ndarray:
        """The rows in use, each once, sorted (a mask: np.unique sorted 1M rows in 1 s)."""
        used = np.zeros(len(self.file), bool)
        used[self.rows] = True
        return np.flatnonzero(used)

    def key(self) -> str:
        """Changes whenever a path or its content changes (a cache key)."""
        key = hashlib.sha256(self.model.encode() + b"\n")
        key.update("\0".join(self.paths).encode("utf-8", "surrogateescape") + b"\n")
        key.update("".join(self.hashes).encode())  # one join: 0.1 s at 1M, not 0.9 s
        return key.hexdigest()[:32]
