"""A tiny deterministic encoder for fast unit tests of the plumbing.

The real encoders are exercised in tests/core/test_semantics.py and test_clip.py.
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np
from PIL import Image

from visualsearch.core.encoders.base import l2_normalize


class FakeEncoder:
    id = "fake-v1"
    dim = 48
    input_size = 16
    backend = "numpy"
    near_duplicate_threshold = 0.9
    classifier = None

    def __init__(self) -> None:
        self.images_seen = 0

    def preprocess(self, image: Image.Image) -> np.ndarray:
        small = image.resize((4, 4))
        return np.asarray(small, np.float32).transpose(2, 0, 1) / 255.0

    def embed_images(self, batch: np.ndarray) -> np.ndarray:
        self.images_seen += len(batch)
        return l2_normalize(batch.reshape(len(batch), -1) - 0.5)

    def embed_text(self, texts) -> np.ndarray:
        """A fixed random vector per text (the same in every batch and every run)."""
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            rows.append(np.random.default_rng(seed).standard_normal(self.dim))
        return l2_normalize(np.array(rows, np.float32).reshape(len(texts), self.dim))


class HeldEncoder(FakeEncoder):
    """Holds its first call of `held` ("embed_text" or "embed_images") until `release`
    is set: a query or an index batch being worked on."""

    def __init__(self, held: str = "embed_text", timeout_s: float = 60, after: int = 0) -> None:
        super().__init__()
        self.held, self.timeout_s = held, timeout_s
        self.calls_before_hold = after  # this many calls go through first
        self.holding = threading.Event()
        self.release = threading.Event()

    def _hold(self, method: str) -> None:
        if method != self.held or self.holding.is_set():
            return
        if self.calls_before_hold > 0:
            self.calls_before_hold -= 1
            return
        self.holding.set()
        self.release.wait(self.timeout_s)

    def embed_text(self, texts):
        self._hold("embed_text")
        return super().embed_text(texts)

    def embed_images(self, batch):
        self._hold("embed_images")
        return super().embed_images(batch)
