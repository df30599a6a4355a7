"""Open any image safely and turn it into an upright 8-bit RGB picture.

Handles EXIF orientation, every Pillow mode (CMYK, 16-bit, palette with
transparency, greyscale…), fast JPEG downscaling with `Image.draft`, and
guards against decompression bombs. Every failure becomes an `ImageError`
with a reason a person can read.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

try:  # HEIC/HEIF (phone photos); optional so a broken libheif never stops indexing
    from pillow_heif import register_heif_opener

    register_heif_opener()
except Exception:  # pragma: no cover - depends on the platform build
    pass

# Pillow's own hard limit (2 × MAX_IMAGE_PIXELS, ~179 MP). An image this large would
# need >0.5 GB of memory per decode; we refuse it with a reason instead.
DEFAULT_MAX_PIXELS = 2 * 89_478_485
# Our own check replaces Pillow's warning for images between the two limits.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_DATETIME = 0x0132


class ImageError(Exception):
    """An image that cannot be used; `str(err)` is the reason to show."""


@dataclass
class ImageInfo:
    """What we learn from the header without decoding pixels."""

    width: int  # after EXIF orientation
    height: int
    format: str
    taken: str | None  # EXIF date, "YYYY:MM:DD HH:MM:SS"


@dataclass
class DecodedImage:
    image: Image.Image  # RGB, upright, at least `min_side` on its short side when possible
    info: ImageInfo


def read_bytes(path) -> bytes:
    """Read a whole file, translating OS errors into `ImageError` reasons."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError as exc:
        raise ImageError("file disappeared before it could be read") from exc
    except PermissionError as exc:
        raise ImageError("permission denied") from exc
    except IsADirectoryError as exc:
        raise ImageError("is a folder, not a file") from exc
    except OSError as exc:
        raise ImageError(f"cannot read file: {exc.strerror or exc}") from exc


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
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
        exif = img.getexif()
        orientation = int(exif.get(0x0112, 1) or 1)
        value = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if value:
            taken = str(value).strip("\x00 ").strip() or None
    except Exception:  # broken EXIF must not make a good photo unusable
        pass
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    return ImageInfo(width=w, height=h, format=img.format or "?", taken=taken)


def probe(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Read size, format and date from the header, without decoding pixels."""
    return _info(_open(data, max_pixels))


def decode(data: bytes, min_side: int = 0, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode image bytes to an upright RGB image.

    With `min_side`, JPEGs are decoded at a reduced scale (DCT scaling, several
    times faster) that still keeps both sides at least `min_side` pixels.
    """
    img = _open(data, max_pixels)
    info = _info(img)
    try:
        if min_side and img.format == "JPEG":
            img.draft("RGB", (min_side, min_side))
        img.load()
        img = ImageOps.exif_transpose(img)
        rgb = to_rgb(img)
    except ImageError:
        raise
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg or "broken data stream" in msg or "premature end" in msg.lower():
            raise ImageError(f"file is truncated or corrupt ({msg})") from exc
        raise ImageError(f"cannot decode image: {msg}") from exc
    except (ValueError, SyntaxError, MemoryError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot decode image: {exc}") from exc
    return DecodedImage(image=rgb, info=info)


def to_rgb(img: Image.Image, background=(255, 255, 255)) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency goes over `background`."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        if mode.startswith("I;16"):
            arr = arr / 257.0
        elif mode == "F" and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = arr * 255.0
        elif arr.size and float(arr.max()) > 255:
            arr = arr * (255.0 / 65535.0)
        arr = np.nan_to_num(np.clip(arr, 0, 255)).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
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
