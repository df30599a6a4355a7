"""The encoder contract: images and text map into one L2-normalised vector space."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)


class ModelUnavailable(RuntimeError):
    """The model cannot be loaded here (weights missing, bad checkpoint…).

    The message says what to do about it.
    """


class Encoder(Protocol):
    """One model = one vector space. All outputs are float32 rows of unit length."""

    id: str  # stable identifier; vectors in the store are keyed by it
    dim: int
    input_size: int  # the decoder downsamples no further than this
    backend: str  # what runs it, for `info` and About ("onnxruntime", "pytorch (cpu)"…)
    # cosine similarity above which two images count as copies of one another
    near_duplicate_threshold: float
    # (1000, dim) ImageNet class rows when the model's vocabulary is its own classifier
    # (the built-in model), else None: then tags are "a photo of a {word}" prompts
    classifier: np.ndarray | None

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """RGB image → CHW float32 array. Thread-safe: runs in decode threads."""
        ...

    def embed_images(self, batch: np.ndarray) -> np.ndarray:
        """NCHW batch from `preprocess` → (N, dim) unit vectors."""
        ...

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Texts → (N, dim) unit vectors in the image space."""
        ...


@dataclass(frozen=True)
class ModelInfo:
    """What the window needs to know about a loaded model (so it never loads one)."""

    id: str
    near_duplicate_threshold: float
    accepts_own_words: bool  # tags may include the user's own words (CLIP, not built-in)
    dim: int  # of its vectors: with `id`, enough to open a Collection's stored vectors
    # where it runs ("cpu", "cuda:0", "mps"; "" while not settled); not Encoder.backend,
    # which loads the model (an unchanged folder never does)
    device: str = "cpu"

    @classmethod
    def of(cls, encoder: Encoder) -> ModelInfo:
        return cls(
            encoder.id,
            encoder.near_duplicate_threshold,
            encoder.classifier is None,
            encoder.dim,
            _device(encoder),
        )


def _device(encoder: Encoder) -> str:
    if hasattr(encoder, "device_settled"):  # the built-in model on "auto"
        return encoder.device_settled or ""
    return str(getattr(encoder, "device", "cpu"))


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def embed_files(
    encoder: Encoder, paths: Sequence[Path], batch: int = 16
) -> tuple[np.ndarray, list[tuple[Path, Exception]]]:
    """The vectors of image files, read, decoded and encoded `batch` at a time, and the
    files that could not be read with why (left out of the vectors)."""
    from visualsearch.core import imageio

    vectors, failed = [], []
    for lo in range(0, len(paths), batch):
        pixels = []
        for path in paths[lo : lo + batch]:
            try:
                decoded = imageio.decode(imageio.read_bytes(path), min_side=encoder.input_size)
            except Exception as exc:
                failed.append((path, exc))
                continue
            pixels.append(encoder.preprocess(decoded.image))
        if pixels:
            vectors.append(np.asarray(encoder.embed_images(np.stack(pixels)), np.float32))
    dim = encoder.dim
    return (np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)), failed


def default_threads() -> int:
    """Threads for model inference: every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def save_array(path: Path, array: np.ndarray) -> None:
    """Write a .npy file atomically (a temporary file renamed into place), so a reader
    never sees half of it and two processes never mix their writes. On failure (a full
    disk) nothing is left behind and the error is raised."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    try:
        np.save(tmp, array)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def cache_array(path: Path, array: np.ndarray) -> None:
    """`save_array` for a cache: one that cannot be written (a read-only or full disk)
    is computed again next time, and says so in the log."""
    try:
        save_array(path, array)
    except OSError as exc:
        log.warning("cannot cache %s (%s); it is computed again next time", path.name, exc)


def save_npz(path: Path, **arrays) -> None:
    """Write an .npz file under a temporary name of its own, then rename it into place:
    a reader sees the whole file or the one before, and concurrent saves never mix. On
    failure (a full disk) nothing is left behind and the error is raised."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_unit_rows(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """A cached array of unit rows saved by `save_array`, or None when it is missing,
    of another shape, or damaged (unreadable, NaN, not unit length): then it is rebuilt."""
    from visualsearch.core.integrity import valid_vectors

    try:
        array = np.load(path, allow_pickle=False)
    except Exception:  # missing, torn or garbled
        return None
    if array.shape != shape or not valid_vectors(array).all():
        return None
    return array.astype(np.float32, copy=False)
