"""Checks that what is read back is what was written: file checksums, sane vectors."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np


def file_checksum(path: Path) -> str:
    """SHA-256 of a file (CPU SHA instructions: ~1.5 GB/s here, 0.1 s for a 20k index)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def cache_checksum(path: Path) -> str:
    """XXH3-128 of a file: damage detection for caches this program writes itself (index
    segments: 0.4 s for a 1.2 GB segment here, SHA-256 took 1.4 s on the first open)."""
    import xxhash

    digest = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


_VERIFIED: dict[tuple, str] = {}  # file identity → its checksum, in this process
_VERIFIED_LOCK = threading.Lock()


def verified_checksum(path: Path) -> str:
    """`cache_checksum`, computed once per file identity in a process: a file whose inode,
    size, mtime and ctime are unchanged was not rewritten (ctime cannot be set back by a
    program), so re-opening a collection after each change (folder watching) does not
    hash a 600 MB index again (0.57 s each time)."""
    st = os.stat(path)
    identity = (os.fspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _VERIFIED_LOCK:
        known = _VERIFIED.get(identity)
    if known is not None:
        return known
    digest = cache_checksum(path)
    with _VERIFIED_LOCK:
        _VERIFIED[identity] = digest
    return digest


# Two vectors that pass `valid_vectors` are at most this alike: a higher similarity (or a
# NaN) read from stored vectors means one of them is damaged.
MAX_SIMILARITY = 1.01


def valid_vectors(matrix: np.ndarray) -> np.ndarray:
    """(n,) bool: rows that are finite and of unit length (float16 storage keeps the norm
    within ~1e-3 of 1; a damaged model or blob gives NaN, inf, zeros or garbage)."""
    matrix = np.asarray(matrix, np.float32)
    with np.errstate(all="ignore"):
        norms = np.linalg.norm(matrix, axis=1)
    return np.isfinite(matrix).all(1) & (np.abs(norms - 1.0) < 0.01)
