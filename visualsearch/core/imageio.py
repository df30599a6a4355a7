"""Open any image safely and turn it into an upright 8-bit RGB picture.

Handles EXIF orientation, every Pillow mode (CMYK, 16-bit, palette with
transparency, greyscale…), fast JPEG downscaling with `Image.draft`, and
guards against decompression bombs. Every read is bounded: only regular files
are read (never a pipe or a device), at most `MAX_FILE_BYTES`, within a time
limit and with a cancel check between chunks; every decode is bounded by the
memory it would need. Every failure becomes an `ImageError` with a reason a
person can read.
"""

from __future__ import annotations

import io
import os
import stat
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageMode, ImageOps, UnidentifiedImageError

from visualsearch.core.exif import ORIENTATION
from visualsearch.core.exif import taken as exif_taken
from visualsearch.core.interrupts import raise_if_interrupted
from visualsearch.core.names import human_size
from visualsearch.core.raw import RAW_FORMAT, looks_raw, open_raw
from visualsearch.core.scan import reach

try:  # HEIC/HEIF (phone photos); optional so a broken libheif never stops indexing
    from pillow_heif import register_heif_opener

    register_heif_opener()
except Exception as exc:  # pragma: no cover - depends on the platform build
    raise_if_interrupted(exc)

# Pillow's own hard limit (2 × MAX_IMAGE_PIXELS, ~179 MP). An image this large would
# need >0.5 GB of memory per decode; we refuse it with a reason instead.
DEFAULT_MAX_PIXELS = 2 * 89_478_485
# Our own check replaces Pillow's warning for images between the two limits.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)

# No file larger than this holds an image we would decode: the largest uncompressed one
# within the pixel limit (179 MP of 16-bit RGB, 6 bytes a pixel) is 1 GiB; compressed
# formats are far smaller. A bigger "photo" (a sparse 3 GB x.jpg) is refused unread.
MAX_FILE_BYTES = 1 << 30
# Pillow keeps 8-bit RGB in 4 bytes a pixel, so an RGB image at the pixel limit needs
# 716 MB decoded: every 8-bit image Pillow accepts fits, while 16-bit or float images of
# the same size (2–4× the bytes, plus their conversion) are refused by what they cost.
# It is also the budget shared by all decode threads: concurrent decodes wait for room.
MAX_DECODE_BYTES = 1 << 30
# A read that has not finished in this time is given up (a hung network or FUSE drive).
READ_TIMEOUT_S = 60.0
_CHUNK = 4 << 20


class ImageError(Exception):
    """An image that cannot be used; `str(err)` is the reason to show (never empty)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason.strip() or "cannot be read (no reason was given)")


def describe(exc: BaseException, with_type: bool = False) -> str:
    """A readable one-line reason for any exception, never empty: its message, or what it
    is when it has none (a bare `MemoryError()`); `with_type` names its type as well."""
    if isinstance(exc, ImageError):
        return str(exc)
    message = "not enough memory" if isinstance(exc, MemoryError) else str(exc).strip()
    if not message:
        return type(exc).__name__
    return f"{type(exc).__name__}: {message}" if with_type else message


@dataclass
class ImageInfo:
    """What we learn from the header without decoding pixels."""

    width: int  # after EXIF orientation
    height: int
    format: str
    taken: str | None  # EXIF date, "YYYY:MM:DD HH:MM:SS"
    orientation: int = 1  # EXIF: how the stored pixels are turned upright (1: as they are)


@dataclass
class DecodedImage:
    image: Image.Image  # RGB, upright, at least `min_side` on its short side when possible
    info: ImageInfo


_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO swapped in never blocks the open
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "not a regular file (a pipe); not read"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "not a regular file (a device); not read"
    if stat.S_ISSOCK(mode):
        return "not a regular file (a socket); not read"
    return "not a regular file; not read"


def open_regular(path: str | os.PathLike) -> int:
    """A descriptor of a regular file, opened for reading; a pipe, device or socket is
    refused with an ImageError, never opened (checked before opening, and again on the
    opened descriptor in case it was swapped). OS errors are raised as they are."""
    with reach(path) as (dir_fd, name):
        mode = os.stat(name, dir_fd=dir_fd).st_mode
        if not stat.S_ISREG(mode):
            raise ImageError(_kind(mode))
        fd = os.open(name, _OPEN_FLAGS, dir_fd=dir_fd)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ImageError(_kind(mode))
    if _OPEN_FLAGS & getattr(os, "O_NONBLOCK", 0):
        os.set_blocking(fd, True)
    return fd


def read_bytes(
    path: str | os.PathLike,
    *,
    max_bytes: int = MAX_FILE_BYTES,
    timeout: float = READ_TIMEOUT_S,
    cancelled: Callable[[], bool] | None = None,
) -> bytearray:
    """Read a regular file whole: at most `max_bytes` and what `fstat` reported, in chunks,
    giving up after `timeout` seconds or when `cancelled()` turns true.

    OS errors and refusals become `ImageError` reasons. A read that blocks inside the OS
    (a hung network drive) cannot be ended from here: the caller runs it in a thread it
    can abandon (see `pipeline`).
    """
    try:
        fd = open_regular(path)
    except FileNotFoundError as exc:
        raise ImageError("file disappeared before it could be read") from exc
    except PermissionError as exc:
        raise ImageError("permission denied") from exc
    except IsADirectoryError as exc:
        raise ImageError("is a folder, not a file") from exc
    except OSError as exc:
        raise ImageError(f"cannot read file: {exc.strerror or exc}") from exc
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise ImageError(
                f"file too large for an image: {human_size(size)}, "
                f"over the limit of {human_size(max_bytes)}"
            )
        return _read_exactly(fd, size, time.monotonic() + timeout, timeout, cancelled)
    except OSError as exc:
        raise ImageError(f"cannot read file: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def _read_exactly(
    fd: int, size: int, deadline: float, timeout: float, cancelled: Callable[[], bool] | None
) -> bytearray:
    # One byte more than fstat said shows a file that grows while we read it.
    buf = bytearray(size + 1)
    view = memoryview(buf)
    got = 0
    with os.fdopen(fd, "rb", buffering=0, closefd=False) as fh:
        while got <= size:
            if cancelled is not None and cancelled():
                raise ImageError("cancelled while reading")
            if time.monotonic() > deadline:
                raise ImageError(f"reading took longer than {timeout:.0f} s (a hung drive?)")
            n = fh.readinto(view[got : min(got + _CHUNK, size + 1)])
            if not n:
                break
            got += n
    view.release()
    if got != size:
        change = "grew" if got > size else "shrank"
        raise ImageError(f"file {change} while being read (still being written?)")
    del buf[size:]
    return buf


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
        img = open_raw(data, max_pixels) if looks_raw(data) else None
    except ValueError as exc:
        raise ImageError(str(exc)) from exc
    try:
        if img is None:  # not a RAW file
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise ImageError("not an image, or a format that cannot be read") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image too large to open safely ({exc})") from exc
    except Exception as exc:
        raise ImageError(f"cannot read image header: {exc}") from exc
    w, h = img.size
    if w <= 0 or h <= 0:
        raise ImageError(f"invalid image size {w}×{h}")
    if w * h > max_pixels:
        raise ImageError(
            f"image too large: {w}×{h} = {w * h / 1e6:.0f} MP, over the limit of "
            f"{max_pixels / 1e6:.0f} MP"
        )
    return img


def _info(img: Image.Image) -> ImageInfo:
    w, h = img.size
    taken = None
    orientation = 1
    try:
        # PNG's getexif() decodes the whole image to look for EXIF after the pixels: only
        # EXIF found in the header is read here, before the memory check.
        late_png_exif = img.format == "PNG" and "exif" not in img.info
        exif = Image.Exif() if late_png_exif else img.getexif()
        orientation = int(exif.get(ORIENTATION, 1) or 1)
        taken = exif_taken(exif)
    except Exception:  # broken EXIF must not make a good photo unusable
        pass
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    kind = RAW_FORMAT if img.info.get("raw") else img.format or "?"
    return ImageInfo(width=w, height=h, format=kind, taken=taken, orientation=orientation)


def probe(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Read size, format and date from the header, without decoding pixels."""
    return _info(_open(data, max_pixels))


def decode(
    data: bytes,
    min_side: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_memory: int = MAX_DECODE_BYTES,
) -> DecodedImage:
    """Decode image bytes to an upright RGB image.

    With `min_side`, the picture is made smaller while both sides stay at least
    `min_side` pixels: JPEGs are decoded at a reduced scale (DCT scaling, several times
    faster), other formats are reduced by a whole factor right after decoding, so the
    conversions work on a small picture. An image whose decode would need more than
    `max_memory` bytes (judged from its header: size × bytes per pixel) is refused.
    """
    img = _open(data, max_pixels)
    info = _info(img)
    try:
        if min_side and img.format == "JPEG":
            img.draft("RGB", (min_side, min_side))
        cost = _decode_cost(img, min_side)
        if cost > max_memory:
            w, h = img.size
            raise ImageError(
                f"image too large to decode safely: {w}×{h} {img.mode} needs about "
                f"{human_size(cost)} of memory, over the limit of {human_size(max_memory)}"
            )
        with _BUDGET.hold(cost):
            img.load()
            img = ImageOps.exif_transpose(_shrink(img, min_side))
            rgb = to_rgb(img)
    except ImageError:
        raise
    except MemoryError as exc:
        w, h = img.size
        raise ImageError(f"not enough memory to decode this {w}×{h} image") from exc
    except OSError as exc:
        msg = describe(exc)
        if "truncated" in msg or "broken data stream" in msg or "premature end" in msg.lower():
            raise ImageError(f"file is truncated or corrupt ({msg})") from exc
        raise ImageError(f"cannot decode image: {msg}") from exc
    except (ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot decode image: {describe(exc)}") from exc
    return DecodedImage(image=rgb, info=info)


class _MemoryBudget:
    """Bytes of decoded pixels that all decode threads together may hold at once."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._free = total
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, n: int) -> Iterator[None]:
        n = min(n, self.total)
        with self._cond:
            self._cond.wait_for(lambda: self._free >= n)
            self._free -= n
        try:
            yield
        finally:
            with self._cond:
                self._free += n
                self._cond.notify_all()


_BUDGET = _MemoryBudget(MAX_DECODE_BYTES)
# Modes Image.reduce cannot work on: made 8-bit at full size first.
_NOT_REDUCIBLE = {"1": 1, "P": 4, "I;16": 1, "I;16B": 1, "I;16L": 1, "I;16N": 1}


def _bytes_per_pixel(mode: str) -> int:
    """Bytes Pillow keeps per pixel: 1, 2 or 4 for one band, 4 for several 8-bit bands."""
    try:
        m = ImageMode.getmode(mode)
    except KeyError:
        return 8
    return np.dtype(m.typestr).itemsize if len(m.bands) == 1 else 4


def _reduce_factor(size: tuple[int, int], min_side: int) -> int:
    return max(1, min(size) // min_side) if min_side else 1


def _decode_cost(img: Image.Image, min_side: int) -> int:
    """Peak bytes to decode `img` (after `draft`) and make it RGB: the decoded raster, an
    8-bit copy for modes that cannot be reduced directly, and the RGB result."""
    w, h = img.size
    factor = _reduce_factor(img.size, min_side)
    cost = w * h * _bytes_per_pixel(img.mode)
    if factor > 1 or img.mode.startswith("I;16"):
        cost += w * h * _NOT_REDUCIBLE.get(img.mode, 0)
    return cost + (w // factor) * (h // factor) * 4


def _shrink(img: Image.Image, min_side: int) -> Image.Image:
    """Reduce a decoded image by a whole factor (box filter) while both sides stay at
    least `min_side`; 16-bit greyscale becomes 8-bit first, a strip at a time."""
    if img.mode.startswith("I;16"):
        img = _sixteen_bit_to_l(img)
    factor = _reduce_factor(img.size, min_side)
    if factor < 2:
        return img
    if img.mode == "1":
        img = img.convert("L")
    elif img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    return img.reduce(factor)


def _sixteen_bit_to_l(img: Image.Image) -> Image.Image:
    """16-bit greyscale → 8-bit (the high byte, value / 256), without a full-size wide copy."""
    w, h = img.size
    out = np.empty((h, w), np.uint8)
    rows = max(1, (4 << 20) // max(1, 2 * w))
    for top in range(0, h, rows):
        strip = np.asarray(img.crop((0, top, w, min(h, top + rows))))
        out[top : top + strip.shape[0]] = strip >> 8
    return Image.fromarray(out, "L")


def to_rgb(img: Image.Image, background=(255, 255, 255)) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency goes over `background`."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16"):
        return _sixteen_bit_to_l(img).convert("RGB")
    if mode in ("I", "F"):
        arr = np.array(img, dtype=np.float32)  # the one wide copy; the rest works in place
        top = float(np.nanmax(arr)) if arr.size and not np.isnan(arr).all() else 0.0
        if mode == "F" and top <= 1.0:
            arr *= 255.0
        elif top > 255:
            arr *= 255.0 / 65535.0
        np.clip(arr, 0, 255, out=arr)
        np.nan_to_num(arr, copy=False)
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return img.convert("RGB")


def fit_square(img: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square and resize to `size`×`size` in one resampling pass."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.resize(
        (size, size),
        Image.Resampling.BICUBIC,
        box=(left, top, left + side, top + side),
        reducing_gap=3.0,
    )


def thumbnail_jpeg(img: Image.Image, size: int = 256, quality: int = 85) -> bytes:
    """A JPEG thumbnail that fits in `size`×`size`, aspect kept."""
    thumb = img.copy()
    thumb.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=quality, optimize=False)
    return buf.getvalue()
