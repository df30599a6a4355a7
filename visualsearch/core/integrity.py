"""Checks that what is read back is what was written: file checksums, sane vectors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def file_checksum(path: Path) -> str:
    """SHA-256 of a file (CPU SHA instructions: ~1.5 GB/s here, 0.1 s for a 20k index)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def valid_vectors(matrix: np.ndarray) -> np.ndarray:
    """(n,) bool: rows that are finite and of unit length (float16 storage keeps the norm
    within ~1e-3 of 1; a damaged model or blob gives NaN, inf, zeros or garbage)."""
    matrix = np.asarray(matrix, np.float32)
    with np.errstate(all="ignore"):
        norms = np.linalg.norm(matrix, axis=1)
    return np.isfinite(matrix).all(1) & (np.abs(norms - 1.0) < 0.01)
