"""Per-collection store: an SQLite catalog of files, float16 vectors per model, thumbnails.

The store is the source of truth. Each batch is written in one transaction,
so a killed run loses at most the batch in flight. Vectors and thumbnails are
keyed by content hash, so a renamed or moved file is never encoded again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from visualsearch.core.integrity import valid_vectors

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,      -- relative to the collection root, POSIX separators
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT,                  -- SHA-256 of the content (128 bits); NULL if unreadable
    width INTEGER,
    height INTEGER,
    format TEXT,
    taken TEXT,                 -- EXIF date
    error TEXT                  -- why the file is skipped, or NULL
);
CREATE INDEX IF NOT EXISTS files_hash ON files(hash);
CREATE TABLE IF NOT EXISTS vectors (
    model TEXT NOT NULL,
    hash TEXT NOT NULL,
    vector BLOB NOT NULL,       -- float16, unit length
    PRIMARY KEY (model, hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS thumbnails (hash TEXT PRIMARY KEY, jpeg BLOB NOT NULL) WITHOUT ROWID;
-- labels a person sorts by (core/labels.py), kept per content so moves keep them
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    colour TEXT NOT NULL,       -- '#rrggbb'
    normal INTEGER NOT NULL DEFAULT 0  -- the label's images are the normal set (anomalies)
);
CREATE TABLE IF NOT EXISTS labelled (
    hash TEXT PRIMARY KEY,      -- one label per content
    label INTEGER NOT NULL,
    source TEXT NOT NULL        -- 'user', 'folder' (from subfolders), 'accepted' (a proposal)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rejected (  -- a proposal the person said was wrong
    hash TEXT NOT NULL,
    label INTEGER NOT NULL,
    PRIMARY KEY (hash, label)
) WITHOUT ROWID;
"""


def content_hash(data: bytes) -> str:
    """128-bit content identity. SHA-256 runs on the CPU's SHA instructions: 1.7 ms for a
    3 MB photo here, against 3.2 ms for BLAKE2b (hashing is ~10 % of decoding a photo)."""
    return hashlib.sha256(data).hexdigest()[:32]


def slug(text: str) -> str:
    """`text` as a safe file-name part ('clip:ViT-B-32' → 'clip_ViT-B-32')."""
    return re.sub(r"[^\w.-]+", "_", text)


def default_store_dir(folder: Path, data_dir: Path) -> Path:
    """Where a folder's store lives by default: under the user data dir, keyed by its real path."""
    real = os.path.realpath(folder)
    key = hashlib.sha1(real.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    name = slug(os.path.basename(real) or "root")[:40]
    return Path(data_dir) / "collections" / f"{name}-{key}"


# the `files` columns in FileRecord's field order
_RECORD_COLUMNS = "path, size, mtime_ns, hash, width, height, format, taken, error"

CATALOG = "catalog.sqlite"


def db_path(path: str) -> str | bytes:
    """A catalog key as SQLite stores it: text, or for a name that is not valid UTF-8
    (Python holds its bytes as surrogate escapes) the raw bytes, kept as a BLOB. Text and
    BLOB keys never compare equal, so the mapping is lossless and one-to-one."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape")
    return path


def py_path(value: str | bytes) -> str:
    """The inverse of `db_path`."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def sound_blobs(blobs: list[bytes], blob_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(n,) bool: which float16 vector blobs are sound (`blob_len` bytes, finite, unit
    length), and the float32 vectors of those, in order."""
    ok = np.array([len(b) == blob_len for b in blobs], bool)
    dim = blob_len // 2
    if not ok.any():
        return ok, np.zeros((0, dim), np.float32)
    sized = b"".join(b for b, good in zip(blobs, ok, strict=True) if good)
    matrix = np.frombuffer(sized, np.float16).reshape(-1, dim).astype(np.float32)
    valid = valid_vectors(matrix)
    ok[np.flatnonzero(ok)[~valid]] = False
    return ok, matrix[valid]


def _record(row) -> FileRecord:
    return FileRecord(py_path(row[0]), *row[1:])


class HashLookup:
    """`digest in lookup`: one indexed query on a shared connection, under a lock."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock, query: str, args) -> None:
        self.db, self.lock, self.query, self.args = db, lock, query, args

    def __contains__(self, digest: object) -> bool:
        with self.lock:
            return self.db.execute(self.query, self.args(digest)).fetchone() is not None


@dataclass(frozen=True)
class VectorSet:
    """A model's vectors as loaded from the store."""

    paths: list[str]  # catalog paths, sorted
    matrix: np.ndarray  # (n, dim) float32 unit rows
    key: str  # changes whenever any path, content or vector set changes (cache key)
    hashes: list[str] = field(default_factory=list)  # each row's content hash


@dataclass(frozen=True, slots=True)
class FileRecord:
    path: str
    size: int
    mtime_ns: int
    hash: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    taken: str | None = None
    error: str | None = None


class StoreError(RuntimeError):
    pass


class StoreMissing(StoreError):
    """The folder has no store yet (it was never indexed)."""


def _when_free(action: Callable[[], object], seconds: float = 30.0) -> object:
    """`action`, again while SQLite says the catalog is locked: a new catalog made WAL
    while another connection opens it fails at once, without the wait a busy catalog
    gets (three opening a new store together: 14 of 200 tries failed)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            busy = "locked" in str(exc) or "busy" in str(exc)
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Store:
    """One collection's catalog, vectors and thumbnails in `directory/catalog.sqlite`."""

    def __init__(self, directory: Path, root: Path | None = None, create: bool = True) -> None:
        """Open (or with `create`, make) the store in `directory`. A damaged catalog raises
        StoreError with one line that says how to recover; with `create=False` a folder
        that has no store raises StoreMissing and nothing is written."""
        self.directory = Path(directory)
        if not create and not (self.directory / CATALOG).is_file():
            raise StoreMissing(f"no store in {self.directory}: the folder was never indexed")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.directory / CATALOG, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store in {self.directory}: {exc}") from exc
        try:
            _when_free(lambda: self.conn.execute("PRAGMA journal_mode=WAL"))
            # WAL + NORMAL: a crashed or killed process never loses a committed batch.
            self.conn.execute("PRAGMA synchronous=NORMAL")
            _when_free(lambda: self.conn.executescript(_SCHEMA))
            version = self.get_meta("schema_version")
        except sqlite3.DatabaseError as exc:  # damaged, or a full disk, a lock…: say which
            from visualsearch.core.errors import catalog_message  # it imports this module

            self.conn.close()
            raise StoreError(catalog_message(self.directory, exc)) from exc
        if version is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        elif int(version) > SCHEMA_VERSION:
            raise StoreError(
                f"the store in {self.directory} was written by a newer visualsearch "
                f"(schema {version}); update visualsearch or use another --store"
            )
        if self.get_meta("store_id") is None:
            # caches beside the catalog (vector file, index segments) belong to this one:
            # a catalog deleted and made again never inherits them
            self.replace_meta("store_id", None, uuid.uuid4().hex)
        if root is not None:
            real = db_path(os.path.realpath(root))  # a name not in UTF-8: its bytes
            # a moved collection folder keeps its vectors: relative paths still match
            if self.conn.execute("SELECT value FROM meta WHERE key='root'").fetchone() != (real,):
                with self.conn:
                    self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('root', ?)", (real,))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- meta ---------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def replace_meta(self, key: str, expected: str | None, value: str) -> bool:
        """Set `key` to `value` only if it still holds `expected` (None: absent), in one
        statement, so that another writer's change in between is never overwritten."""
        with self.conn:
            if expected is None:
                cur = self.conn.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
            else:
                cur = self.conn.execute(
                    "UPDATE meta SET value=? WHERE key=? AND value=?", (value, key, expected)
                )
            return cur.rowcount == 1

    @property
    def identity(self) -> str:
        return self.get_meta("store_id") or ""

    @property
    def generation(self) -> int:
        """Bumped on every change of files or vectors; caches (the index) compare against it."""
        return int(self.get_meta("generation") or 0)

    def _bump(self) -> None:
        self.conn.execute(
            "INSERT INTO meta VALUES ('generation', '1') ON CONFLICT(key) "
            "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    # -- reads --------------------------------------------------------------------------

    def file_records(self) -> dict[str, FileRecord]:
        rows = self.conn.execute(f"SELECT {_RECORD_COLUMNS} FROM files")
        return {record.path: record for record in map(_record, rows)}

    def records_for(self, paths: list[str]) -> list[FileRecord]:
        """The catalog records of `paths` (all in the catalog), in their order: looked up
        500 at a time when they are a few, else one scan of the catalog (1M: ~4 s)."""
        if len(paths) > 50_000:
            records = self.file_records()
            return [records[p] for p in paths]
        found: dict[str, FileRecord] = {}
        for lo in range(0, len(paths), 500):
            part = [db_path(p) for p in paths[lo : lo + 500]]
            rows = self.conn.execute(
                f"SELECT {_RECORD_COLUMNS} FROM files WHERE path IN ({','.join('?' * len(part))})",
                part,
            )
            found.update((r.path, r) for r in map(_record, rows))
        return [found[p] for p in paths]

    def records_within(self, paths: Iterable[str]) -> dict[str, FileRecord]:
        """The catalog records of `paths` and of everything under those that are folders
        (any error included), by path: one lookup per path, never the whole catalog."""
        found: dict[str, FileRecord] = {}
        query = (
            f"SELECT {_RECORD_COLUMNS} FROM files WHERE path = ? "
            "OR (path >= ? AND path < ?) OR (path >= ? AND path < ?)"
        )
        for rel in paths:
            raw = rel.encode("utf-8", "surrogateescape")
            # '/' + 1 is '0': [rel/, rel0) holds everything under rel; names that are not
            # UTF-8 are kept as BLOBs, which sort apart from text: both ranges are asked
            # (a folder whose own name is not UTF-8 holds BLOB keys only)
            text = (rel + "/", rel + "0") if isinstance(db_path(rel), str) else (b"", b"")
            bounds = (*text, raw + b"/", raw + b"0")
            for row in self.conn.execute(query, (db_path(rel), *bounds)):
                record = _record(row)
                found[record.path] = record
        return found

    def record(self, path: str) -> FileRecord | None:
        row = self.conn.execute(
            f"SELECT {_RECORD_COLUMNS} FROM files WHERE path=?",
            (db_path(path),),
        ).fetchone()
        return _record(row) if row else None

    def known_hashes(self, model: str, dim: int | None = None) -> set[str]:
        """Hashes with a stored vector for `model` (of `dim` values, when given: a blob of
        another length is damaged and will be encoded again)."""
        if dim is None:
            rows = self.conn.execute("SELECT hash FROM vectors WHERE model=?", (model,))
        else:
            rows = self.conn.execute(
                "SELECT hash FROM vectors WHERE model=? AND length(vector)=?", (model, dim * 2)
            )
        return {r[0] for r in rows}

    def thumbnail_hashes(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT hash FROM thumbnails")}

    def hash_lookup(self, model: str, dim: int) -> tuple[HashLookup, HashLookup]:
        """(contents with a vector for `model` of `dim` values, contents with a
        thumbnail): `known_hashes` and `thumbnail_hashes` asked one hash at a time, from
        any thread (a read-only connection of their own). A set of a million hashes took
        4 s to make, for a run over a few changed files."""
        db = sqlite3.connect(
            f"{(self.directory / CATALOG).as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
        lock = threading.Lock()
        vector = "SELECT 1 FROM vectors WHERE model=? AND hash=? AND length(vector)=?"
        thumb = "SELECT 1 FROM thumbnails WHERE hash=?"
        return (
            HashLookup(db, lock, vector, lambda h: (model, h, dim * 2)),
            HashLookup(db, lock, thumb, lambda h: (h,)),
        )

    def load_vector_set(self, model: str, dim: int | None = None) -> VectorSet:
        """Every indexed file's path (sorted) and float32 vector, with a key of the content.

        Stored vectors are verified: a blob of the wrong length (`dim` values, else the most
        common length) or a vector that is not finite and of unit length is left out and
        dropped from the store, so the next indexing run encodes that image again."""
        blob_len = dim * 2 if dim else self._common_vector_length(model)
        rows = self.conn.execute(
            "SELECT f.path, f.hash, v.vector FROM files f JOIN vectors v ON v.hash = f.hash "
            "WHERE v.model = ? AND f.error IS NULL ORDER BY f.path",
            (model,),
        ).fetchall()
        # one blob per content: every file of a content gets the same verdict
        ok, matrix = sound_blobs([r[2] for r in rows], blob_len)
        bad = {r[1] for r, good in zip(rows, ok, strict=True) if not good}
        rows = [r for r, good in zip(rows, ok, strict=True) if good]
        self.drop_vectors(model, bad)
        paths = [py_path(r[0]) for r in rows]
        key = hashlib.sha256(model.encode())
        for r in rows:
            key.update(r[0] if isinstance(r[0], bytes) else r[0].encode())
            key.update(b"\0" + r[1].encode() + b"\n")
        return VectorSet(paths, matrix, key.hexdigest()[:32], [r[1] for r in rows])

    def load_vectors(self, model: str, dim: int | None = None) -> tuple[list[str], np.ndarray]:
        """Paths (sorted) and their float32 vectors for every indexed file (verified)."""
        vectors = self.load_vector_set(model, dim)
        return vectors.paths, vectors.matrix

    def has_vectors(self, model: str) -> bool:
        """Whether any image has a vector of `model` (one indexed lookup)."""
        row = self.conn.execute("SELECT 1 FROM vectors WHERE model=? LIMIT 1", (model,))
        return row.fetchone() is not None

    def vector_dim(self, model: str) -> int | None:
        """How many values most of `model`'s stored vectors have (None: it has none)."""
        return self._common_vector_length(model) // 2 or None

    def _common_vector_length(self, model: str) -> int:
        row = self.conn.execute(
            "SELECT length(vector) FROM vectors WHERE model=? GROUP BY 1 "
            "ORDER BY COUNT(*) DESC LIMIT 1",
            (model,),
        ).fetchone()
        return row[0] if row else 0

    def drop_vectors(self, model: str, hashes: Iterable[str]) -> None:
        """Forget damaged vectors, so that their images are encoded again."""
        hashes = list(hashes)
        if not hashes:
            return
        log.warning("%d damaged vectors dropped; they are encoded again", len(hashes))
        with self.conn:
            self.conn.executemany(
                "DELETE FROM vectors WHERE model=? AND hash=?", [(model, h) for h in hashes]
            )
            self._bump()

    def vector(self, model: str, path: str) -> np.ndarray | None:
        row = self.conn.execute(
            "SELECT v.vector FROM files f JOIN vectors v ON v.hash = f.hash "
            "WHERE v.model = ? AND f.path = ?",
            (model, db_path(path)),
        ).fetchone()
        if row is None or len(row[0]) % 2:
            return None
        vector = np.frombuffer(row[0], np.float16).astype(np.float32)
        return vector if valid_vectors(vector[None])[0] else None

    def image_records(self) -> list[FileRecord]:
        """Every readable image in the catalog, sorted by path."""
        rows = self.conn.execute(
            f"SELECT {_RECORD_COLUMNS} FROM files WHERE error IS NULL ORDER BY path"
        )
        return [_record(r) for r in rows]

    def thumbnail_by_hash(self, digest: str) -> bytes | None:
        row = self.conn.execute("SELECT jpeg FROM thumbnails WHERE hash=?", (digest,)).fetchone()
        return row[0] if row else None

    def thumbnail(self, path: str) -> bytes | None:
        row = self.conn.execute(
            "SELECT t.jpeg FROM files f JOIN thumbnails t ON t.hash = f.hash WHERE f.path = ?",
            (db_path(path),),
        ).fetchone()
        return row[0] if row else None

    def errors(self) -> list[tuple[str, str]]:
        rows = self.conn.execute(
            "SELECT path, error FROM files WHERE error IS NOT NULL ORDER BY path"
        )
        return [(py_path(path), error) for path, error in rows]

    def counts(self) -> dict[str, int]:
        q = self.conn.execute
        return {
            "files": q("SELECT COUNT(*) FROM files").fetchone()[0],
            "errors": q("SELECT COUNT(*) FROM files WHERE error IS NOT NULL").fetchone()[0],
            "thumbnails": q("SELECT COUNT(*) FROM thumbnails").fetchone()[0],
        }

    def image_count(self) -> int:
        """The files that are readable images (the catalog's files less its errors)."""
        q = "SELECT COUNT(*) FROM files WHERE error IS NULL"
        return self.conn.execute(q).fetchone()[0]

    def vector_counts(self) -> dict[str, int]:
        """Indexed files per model id."""
        rows = self.conn.execute(
            "SELECT v.model, COUNT(*) FROM files f JOIN vectors v ON v.hash = f.hash "
            "WHERE f.error IS NULL GROUP BY v.model"
        )
        return dict(rows.fetchall())

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.directory.iterdir() if p.is_file())

    # -- writes -------------------------------------------------------------------------

    def commit_batch(
        self,
        model: str,
        records: list[FileRecord],
        vectors: dict[str, np.ndarray] | None = None,
        thumbnails: dict[str, bytes] | None = None,
    ) -> None:
        """Write file records, their new vectors and thumbnails in one transaction.
        A vector that is not finite and of unit length is refused (ValueError): the store
        never keeps a damaged vector under a content hash."""
        if vectors:
            matrix = np.stack([np.asarray(v, np.float32) for v in vectors.values()])
            if not valid_vectors(matrix).all():
                raise ValueError("refusing to store vectors that are not finite unit vectors")
        with self.conn:
            if vectors:
                self.conn.executemany(
                    "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                    [(model, h, np.asarray(v, np.float16).tobytes()) for h, v in vectors.items()],
                )
            if thumbnails:
                self.conn.executemany(
                    "INSERT OR REPLACE INTO thumbnails VALUES (?, ?)", list(thumbnails.items())
                )
            self.conn.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        db_path(r.path),
                        r.size,
                        r.mtime_ns,
                        r.hash,
                        r.width,
                        r.height,
                        r.format,
                        r.taken,
                        r.error,
                    )
                    for r in records
                ],
            )
            self._bump()

    def remove_paths(self, paths: Iterable[str]) -> int:
        paths = list(paths)
        if not paths:
            return 0
        with self.conn:
            self.conn.executemany("DELETE FROM files WHERE path=?", [(db_path(p),) for p in paths])
            self._bump()
        return len(paths)

    def collect_garbage(self, hashes: Iterable[str] | None = None) -> int:
        """Drop vectors and thumbnails that no file refers to any more (of `hashes` only,
        when given: a few removed files need not scan every content)."""
        if hashes is not None:
            n = 0
            with self.conn:
                models = [r[0] for r in self.conn.execute("SELECT DISTINCT model FROM vectors")]
                for h in set(hashes):
                    if self.conn.execute("SELECT 1 FROM files WHERE hash=?", (h,)).fetchone():
                        continue
                    for model in models:  # by the key (model, hash), not a scan per hash
                        n += self.conn.execute(
                            "DELETE FROM vectors WHERE model=? AND hash=?", (model, h)
                        ).rowcount
                    n += self.conn.execute("DELETE FROM thumbnails WHERE hash=?", (h,)).rowcount
            return n
        with self.conn:
            n = self.conn.execute(
                "DELETE FROM vectors WHERE hash NOT IN "
                "(SELECT hash FROM files WHERE hash IS NOT NULL)"
            ).rowcount
            n += self.conn.execute(
                "DELETE FROM thumbnails WHERE hash NOT IN "
                "(SELECT hash FROM files WHERE hash IS NOT NULL)"
            ).rowcount
        return n
