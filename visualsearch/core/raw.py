"""Camera RAW files (CR2, CR3, NEF, ARW, RAF, ORF, RW2, DNG…), read from their previews.

Developing a RAW file (demosaicing tens of megapixels of sensor data) takes seconds; the
JPEG preview the camera embeds is what its own screen shows, usually full size, and
decodes like any JPEG (DCT scaling included). LibRaw (through rawpy) finds the largest
preview and the orientation the camera recorded; a file whose preview is missing or
smaller than MIN_PREVIEW_SIDE is developed at half size instead.

The preview comes back as a PIL image carrying the RAW's orientation and date as EXIF,
so everything downstream (upright decoding, sizes, dates) treats it as any photo. Only
JPEG previews are used (cameras embed JPEG); an uncompressed one is developed instead.
"""

from __future__ import annotations

import io
import logging

import numpy as np
from PIL import Image

from visualsearch.core.exif import DATETIME, ORIENTATION
from visualsearch.core.exif import taken as exif_taken
from visualsearch.core.interrupts import optional_import

log = logging.getLogger(__name__)

RAW_EXTENSIONS = frozenset(
    {
        ".3fr",
        ".arw",
        ".cr2",
        ".cr3",
        ".crw",
        ".dcr",
        ".dng",
        ".erf",
        ".iiq",
        ".kdc",
        ".mef",
        ".mos",
        ".mrw",
        ".nef",
        ".nrw",
        ".orf",
        ".pef",
        ".raf",
        ".rw2",
        ".rwl",
        ".sr2",
        ".srf",
        ".srw",
        ".x3f",
    }
)
RAW_FORMAT = "RAW"  # ImageInfo.format of a RAW file
# A preview this small (old cameras' 160×120 thumbnails) is not the photo: develop it.
MIN_PREVIEW_SIDE = 640
# LibRaw's `flip` → the EXIF orientation that rotates the same way
_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}
_DNG_VERSION, _SUB_IFDS, _PHOTOMETRIC, _CFA, _LINEAR_RAW = 50706, 330, 262, 32803, 34892


def looks_raw(data: bytes) -> bool:
    """Whether `data` is a RAW file by its first bytes: the RAW containers, and TIFFs
    that carry a camera's sensor data (LibRaw also takes a plain 16-bit grey TIFF, and
    "develops" it: those stay Pillow's)."""
    head = bytes(data[:16])
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _raw_tiff(data)
    return (
        head[:4] in (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00")  # ORF, RW2
        or head.startswith((b"FUJIFILMCCD-RAW", b"FOVb", b"\x00MRM"))  # RAF, X3F, MRW
        or head[4:12] == b"ftypcrx "  # CR3
        or head[6:14] == b"HEAPCCDR"  # CRW
    )


def _raw_tiff(data: bytes) -> bool:
    """A TIFF with a camera's sensor data: a DNG, a CR2, or one whose first directory
    holds or points to it (sub-directories, a colour filter array: NEF, ARW, PEF…)."""
    if bytes(data[8:10]) == b"CR":  # CR2
        return True
    try:
        tags = Image.open(io.BytesIO(data)).tag_v2
    except Exception:  # Pillow cannot parse it: LibRaw may (it says when it cannot)
        return True
    return (
        _DNG_VERSION in tags or _SUB_IFDS in tags or tags.get(_PHOTOMETRIC) in (_CFA, _LINEAR_RAW)
    )


def open_raw(data: bytes, max_pixels: int) -> Image.Image | None:
    """The RAW file's picture (its preview, or developed at half size), with its
    orientation and date as EXIF; None when LibRaw does not take `data` (a TIFF that is
    not a RAW file). Raises ValueError with the reason for a RAW it cannot read."""
    rawpy = optional_import("rawpy")
    if rawpy is None:  # optional: without it RAW files are skipped with a reason
        return None
    try:
        raw = rawpy.imread(io.BytesIO(data))
    except rawpy.LibRawFileUnsupportedError:
        return None
    except (rawpy.LibRawIOError, EOFError) as exc:
        raise ValueError("the RAW file is cut short or damaged") from exc
    except (rawpy.LibRawError, OSError) as exc:
        raise ValueError(f"cannot read the RAW file ({_reason(exc)})") from exc
    with raw:
        orientation = _ORIENTATION.get(raw.sizes.flip, 1)
        image = _preview(raw, rawpy)
        if image is None:
            width, height = raw.sizes.width, raw.sizes.height
            if width * height > max_pixels:
                raise ValueError(
                    f"RAW image too large: {width}×{height}, over the limit of "
                    f"{max_pixels / 1e6:.0f} MP"
                )
            try:
                pixels = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
            except (rawpy.LibRawError, MemoryError) as exc:
                raise ValueError(f"cannot develop the RAW file ({_reason(exc)})") from exc
            if pixels.ndim == 3 and pixels.shape[2] == 1:  # a monochrome sensor
                pixels = pixels[..., 0]
            image = Image.fromarray(np.ascontiguousarray(pixels)).convert("RGB")
            orientation = 1  # developing turns it upright
        try:  # after the pictures: a failed read here leaves LibRaw unusable
            recorded = getattr(raw.other, "timestamp", None)  # rawpy ≥ 0.22; 1970: none
        except rawpy.LibRawError:  # a file cut short
            recorded = None
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    taken = _taken(data)
    if not taken and recorded is not None and recorded.year > 1970:
        taken = recorded.strftime("%Y:%m:%d %H:%M:%S")  # CR3, RAF: LibRaw's reading
    if taken:
        exif[DATETIME] = taken
    image.info["exif"] = exif.tobytes()
    image.info["raw"] = True
    return image


def _preview(raw, rawpy) -> Image.Image | None:
    """The embedded JPEG preview, unless missing, unreadable or too small to stand for
    it. An uncompressed preview is not used: rawpy shapes its array by the size the file
    claims, not by the bytes behind it, and a wrong claim crashed the process."""
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawError, MemoryError):  # none, or a kind LibRaw cannot hand over
        return None
    if thumb.format != rawpy.ThumbFormat.JPEG:
        return None
    try:
        image = Image.open(io.BytesIO(thumb.data))  # lazy: decoded at reduced scale
    except Exception as exc:
        log.debug("RAW preview unreadable (%s); developing instead", exc)
        return None
    return image if max(image.size) >= MIN_PREVIEW_SIDE else None


def _taken(data: bytes) -> str | None:
    """When the photo was taken, from a TIFF-based RAW's EXIF (DateTimeOriginal first)."""
    try:
        return exif_taken(Image.open(io.BytesIO(data)).getexif())
    except Exception:  # no EXIF Pillow can read
        return None


def _reason(exc: BaseException) -> str:
    text = exc.args[0] if exc.args else type(exc).__name__
    return text.decode("ascii", "replace") if isinstance(text, bytes) else str(text)
