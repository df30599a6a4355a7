"""DNG files written for the tests (tifffile; imagecodecs for the JPEG preview): the
layout cameras and Adobe's converter use, a preview in IFD0 and the sensor's mosaic in a
SubIFD, which LibRaw reads as it reads a camera's file."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

# EXIF orientation → how the camera's sensor saw an upright picture
_SENSOR = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90}


def write_dng(
    path: Path,
    upright: Image.Image,
    orientation: int = 1,
    preview_side: int = 800,
    taken: str | None = None,
    sensor_width: int = 640,
    preview_jpeg: bool = True,
) -> Path:
    """A DNG of `upright`, stored as the sensor saw it with `orientation` to turn it
    upright; its preview (a JPEG, else uncompressed) is `preview_side` pixels on the long
    side (0: none), its mosaic `sensor_width` pixels wide."""
    turn = _SENSOR[orientation]
    sensor = upright.convert("RGB") if turn is None else upright.convert("RGB").transpose(turn)
    w, h = sensor.size
    width, height = sensor_width, round(sensor_width * h / w) // 2 * 2
    half = np.asarray(sensor.resize((width // 2, height // 2)), np.uint16) * 16  # 12-bit
    mosaic = np.zeros((height, width), np.uint16)  # RGGB
    mosaic[0::2, 0::2], mosaic[1::2, 1::2] = half[..., 0], half[..., 2]
    mosaic[0::2, 1::2] = mosaic[1::2, 0::2] = half[..., 1]
    identity = (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1)
    tags = [
        (274, "H", 1, orientation, True),  # Orientation
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50708, "s", 0, "visualsearch test camera", True),  # UniqueCameraModel
        (50721, "2i", 9, identity, True),  # ColorMatrix1
    ]
    if taken:
        tags.append((306, "s", 0, taken, True))  # DateTime
    with tifffile.TiffWriter(path) as tif:
        mosaic_tags = [] if preview_side else tags  # the DNG tags go in IFD0
        if preview_side:
            scale = preview_side / max(w, h)
            preview = np.asarray(sensor.resize((round(w * scale), round(h * scale))))
            tif.write(
                preview,
                photometric="rgb",
                compression="jpeg" if preview_jpeg else None,
                rowsperstrip=preview.shape[0],
                subfiletype=1,  # a reduced-resolution preview
                subifds=1,
                extratags=tags,
            )
        tif.write(
            mosaic,
            photometric=32803,  # CFA
            subfiletype=0,
            extratags=[
                (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
                (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: RGGB
                (50717, "I", 1, 4095, True),  # WhiteLevel
                *mosaic_tags,
            ],
        )
    return path


def claim_preview_size(path: Path, width: int, height: int) -> None:
    """Make the preview's header claim `width` × `height` (its bytes stay as they are)."""
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        spots = [(tags[256], width), (tags[257], height)]
        order = tif.byteorder
    for tag, value in spots:
        code = "H" if tag.dtype == 3 else "I"
        struct.pack_into(order + code, data, tag.valueoffset, value)
    path.write_bytes(bytes(data))
