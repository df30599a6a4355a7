"""The EXIF fields read here: orientation and when a photo was taken."""

from __future__ import annotations

from PIL import Image

ORIENTATION = 0x0112
DATETIME = 0x0132
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003


def taken(exif: Image.Exif) -> str | None:
    """When the photo was taken ("YYYY:MM:DD HH:MM:SS"): DateTimeOriginal, else DateTime;
    None when neither is there. Raises on EXIF too broken to read."""
    value = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL) or exif.get(DATETIME)
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return (str(value).strip("\x00 ").strip() or None) if value else None
