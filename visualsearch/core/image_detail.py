"""How much real picture information a file holds: its effective resolution.

An upscaled copy has more pixels but no more detail: its spectrum stops at the
source's resolution. A heavily re-compressed copy loses fine detail (and gains
8-pixel block edges, which are left out of the measure). This is what the copy to
keep among duplicates is judged by, before file size or resolution.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from visualsearch.core import imageio

ANALYSIS_SIDE = 1536  # larger images are decoded reduced (by a whole factor) down to this
WINDOW = 1024  # the spectrum is measured on a central window of at most this many pixels
DETAIL_SHARE = 0.9  # the effective cutoff holds this share of the (1/f-weighted) detail energy
_EXIF_MAKE, _EXIF_MODEL = 0x010F, 0x0110


@dataclass(frozen=True)
class ImageDetail:
    """What one file holds. `bandwidth` is the share (0–1) of its pixel grid that carries
    most of its detail on each axis: about 0.6–0.75 for a photo at its own resolution, half
    that for a 2× upscale of it."""

    width: int  # upright, as stored
    height: int
    bandwidth_x: float
    bandwidth_y: float
    camera: str | None  # EXIF "Make Model", when a camera wrote it

    @property
    def bandwidth(self) -> float:
        return float(np.sqrt(self.bandwidth_x * self.bandwidth_y))

    @property
    def effective_size(self) -> tuple[int, int]:
        """The resolution its detail would fit in (an upscale: about its source's)."""
        return round(self.width * self.bandwidth_x), round(self.height * self.bandwidth_y)

    @property
    def effective_pixels(self) -> float:
        w, h = self.effective_size
        return float(w * h)


def measure_detail(path: Path) -> ImageDetail | None:
    """Read and measure one file (bounded read and decode); None if it cannot be read."""
    try:
        data = imageio.read_bytes(path)
        decoded = imageio.decode(data, min_side=ANALYSIS_SIDE)
    except (imageio.ImageError, OSError, MemoryError):
        return None
    info = decoded.info
    gray = np.asarray(decoded.image.convert("L"), np.float32)
    window = _central_window(gray, WINDOW)
    # a reduced decode saw a downscaled picture: its cutoff applies to that scale, and the
    # full-size file is assumed to hold at least as much, relative to its own grid
    return ImageDetail(
        info.width,
        info.height,
        _cutoff(window, axis=1) * 2,
        _cutoff(window, axis=0) * 2,
        camera_model(data),
    )


def camera_model(data: bytes) -> str | None:
    """EXIF Make and Model (read from the header only), or None."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            exif = img.getexif()
            parts = [str(exif.get(tag) or "").strip("\x00 ") for tag in (_EXIF_MAKE, _EXIF_MODEL)]
    except Exception:  # broken EXIF only means no camera is known
        return None
    return " ".join(p for p in parts if p) or None


def _central_window(gray: np.ndarray, size: int) -> np.ndarray:
    """The centre of the picture, its origin on the 8-pixel grid (JPEG blocks stay aligned)."""
    h, w = gray.shape
    ch, cw = min(h, size), min(w, size)
    top, left = (h - ch) // 2 // 8 * 8, (w - cw) // 2 // 8 * 8
    return gray[top : top + ch, left : left + cw]


def _cutoff(gray: np.ndarray, axis: int) -> float:
    """The frequency (cycles per pixel, up to 0.5) below which DETAIL_SHARE of the picture's
    detail energy lies along `axis`, measured on the 1/f-weighted power spectrum with the
    JPEG block harmonics (multiples of 1/8) left out."""
    rows = np.moveaxis(gray, axis, 1)
    n = rows.shape[1]
    if n < 16:
        return 0.5
    rows = rows - rows.mean(axis=1, keepdims=True)
    power = (np.abs(np.fft.rfft(rows * np.hanning(n).astype(np.float32), axis=1)) ** 2).mean(0)
    freq = np.fft.rfftfreq(n)
    weighted = power * freq
    for k in range(1, 5):
        weighted[np.abs(freq - k / 8) <= 1.5 / n] = 0.0
    total = weighted.sum()
    if not np.isfinite(total) or total <= 0:
        return 0.5  # a flat picture: nothing to tell its copies apart by
    cumulative = np.cumsum(weighted) / total
    return float(freq[min(np.searchsorted(cumulative, DETAIL_SHARE), len(freq) - 1)])
