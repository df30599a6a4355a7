import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visualsearch.core import imageio
from visualsearch.core.sample import exif_rotate_variant, skimage_photos


def _bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    return Image.open(next(p for p in skimage_photos() if p.stem == "chelsea")).convert("RGB")


def test_exif_orientation_is_applied(chelsea):
    data = exif_rotate_variant(chelsea)
    raw = Image.open(io.BytesIO(data))
    assert raw.size == (chelsea.height, chelsea.width)  # stored sideways
    decoded = imageio.decode(data)
    assert decoded.image.size == chelsea.size  # shown upright
    assert (decoded.info.width, decoded.info.height) == chelsea.size
    diff = np.abs(np.asarray(decoded.image, np.int16) - np.asarray(chelsea, np.int16)).mean()
    assert diff < 8


@pytest.mark.parametrize(
    "mode", ["CMYK", "L", "LA", "P", "PA", "RGBA", "I;16", "I", "F", "1", "YCbCr"]
)
def test_every_mode_becomes_rgb(chelsea, mode):
    if mode == "I;16":
        arr = (np.asarray(chelsea.convert("L"), np.uint16) * 257).astype("<u2")
        img = Image.fromarray(arr)
        assert img.mode == "I;16"
    elif mode == "PA":
        img = chelsea.convert("RGBA").convert("PA")
        assert img.mode == "PA"
    else:
        img = chelsea.convert(mode)
    out = imageio.to_rgb(img)
    assert out.mode == "RGB" and out.size == chelsea.size
    # content survives: the mean brightness stays close to the original's
    assert (
        abs(
            np.asarray(out.convert("L"), np.float32).mean()
            - np.asarray(chelsea.convert("L"), np.float32).mean()
        )
        < 30
    )


def test_sixteen_bit_png_is_scaled_not_clipped(chelsea):
    arr = np.asarray(chelsea.convert("L"), np.uint16) * 257
    data = _bytes(Image.fromarray(arr.astype(np.uint16)), "PNG")
    out = np.asarray(imageio.decode(data).image.convert("L"), np.float32)
    assert 50 < out.mean() < 200  # clipping would make it all white


def test_palette_transparency_goes_over_white():
    img = Image.new("RGBA", (10, 10), (0, 0, 0, 0)).convert("P")
    data = _bytes(img, "PNG", transparency=0)
    out = imageio.decode(data).image
    assert out.getpixel((5, 5)) == (255, 255, 255)


def test_cmyk_jpeg_decodes(chelsea):
    data = _bytes(chelsea.convert("CMYK"), "JPEG", quality=90)
    out = imageio.decode(data).image
    assert out.mode == "RGB" and out.size == chelsea.size


def test_draft_downscales_large_jpeg_but_keeps_min_side():
    big = Image.new("RGB", (4000, 3000), (120, 30, 200))
    data = _bytes(big, "JPEG", quality=80)
    decoded = imageio.decode(data, min_side=260)
    assert min(decoded.image.size) >= 260
    assert decoded.image.size[0] <= 1000  # decoded at 1/4 or 1/8 scale, not full size
    assert (decoded.info.width, decoded.info.height) == (4000, 3000)  # real size reported


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"hello, I am a text file\n" * 10, "not an image"),
    ],
)
def test_bad_bytes_give_reasons(data, reason):
    with pytest.raises(imageio.ImageError, match=reason):
        imageio.decode(data)


def test_truncated_jpeg_is_an_error_with_reason(chelsea):
    data = _bytes(chelsea, "JPEG", quality=95)
    with pytest.raises(imageio.ImageError, match=r"truncated|corrupt"):
        imageio.decode(data[: len(data) // 2])


def test_decompression_bomb_is_refused_before_decoding():
    data = _bytes(Image.new("1", (20000, 20000)), "PNG")
    with pytest.raises(imageio.ImageError, match="too large"):
        imageio.decode(data)
    with pytest.raises(imageio.ImageError, match="limit of 1 MP"):
        imageio.decode(_bytes(Image.new("RGB", (2000, 1000)), "PNG"), max_pixels=1_000_000)


def test_exif_date_is_read(chelsea):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2021:07:04 10:11:12"
    data = _bytes(chelsea, "JPEG", exif=exif)
    assert imageio.probe(data).taken == "2021:07:04 10:11:12"


def test_read_bytes_reasons(tmp_path):
    with pytest.raises(imageio.ImageError, match="disappeared"):
        imageio.read_bytes(tmp_path / "missing.jpg")
    with pytest.raises(imageio.ImageError, match="folder"):
        imageio.read_bytes(tmp_path)


def test_fit_square_and_thumbnail(chelsea):
    sq = imageio.fit_square(chelsea, 260)
    assert sq.size == (260, 260)
    thumb = Image.open(io.BytesIO(imageio.thumbnail_jpeg(chelsea, 128)))
    assert max(thumb.size) == 128 and thumb.format == "JPEG"


def test_heic_photos_decode(chelsea):
    pytest.importorskip("pillow_heif")
    data = _bytes(chelsea, "HEIF", quality=80)
    decoded = imageio.decode(data)
    assert decoded.info.format == "HEIF" and decoded.image.size == chelsea.size


# -- bounded reads and decodes (issue 10) ---------------------------------------------------


def test_special_files_are_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")  # no writer: a plain open() would block forever
    os.symlink("/dev/zero", tmp_path / "zero.jpg")  # a plain read() would never end
    with pytest.raises(imageio.ImageError, match="pipe"):
        imageio.read_bytes(tmp_path / "pipe.jpg")
    with pytest.raises(imageio.ImageError, match="device"):
        imageio.read_bytes(tmp_path / "zero.jpg")


def test_a_huge_file_is_refused_by_its_size_unread(tmp_path):
    sparse = tmp_path / "x.jpg"
    with open(sparse, "wb") as fh:
        fh.truncate(3 * 10**9)  # 3 GB that take no disk space
    with pytest.raises(imageio.ImageError, match=r"3\.0 GB, over the limit of 1\.1 GB"):
        imageio.read_bytes(sparse)


def test_reads_stop_when_cancelled_or_late(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(_bytes(Image.new("RGB", (8, 8)), "PNG"))
    assert imageio.read_bytes(path) == path.read_bytes()
    with pytest.raises(imageio.ImageError, match="cancelled"):
        imageio.read_bytes(path, cancelled=lambda: True)
    with pytest.raises(imageio.ImageError, match="longer than"):
        imageio.read_bytes(path, timeout=-1)


def _blank_png16(path, width: int, height: int) -> None:
    """A 16-bit greyscale PNG written row by row (the pixels never sit in memory)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    z = zlib.compressobj(9)
    row = bytes(1 + 2 * width)  # filter byte + black pixels
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    header = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_decode_memory_is_bounded_by_bytes_not_only_pixels():
    data = _bytes(Image.new("I;16", (4000, 4000)), "PNG")
    with pytest.raises(imageio.ImageError, match=r"needs about .* MB of memory, over the limit"):
        imageio.decode(data, min_side=260, max_memory=10_000_000)
    small = imageio.decode(data, min_side=260)  # within the default limit
    assert min(small.image.size) >= 260 and small.info.width == 4000


_PEAK_SCRIPT = """
import sys
from visualsearch.core import imageio
decoded = imageio.decode(imageio.read_bytes(sys.argv[1]), min_side=260)
imageio.thumbnail_jpeg(decoded.image)
# VmHWM, not ru_maxrss: after a vfork + exec the latter still holds the parent's peak
# (pytest with torch loaded, ~2.9 GB)
peak_kb = next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(decoded.image.size, peak_kb)
"""


def test_a_16_bit_13000_square_png_decodes_in_bounded_memory(tmp_path):
    """169 MP of 16-bit grey (338 MB decoded) under the pixel limit: the old float
    conversion peaked at 3.1 GB; the decode must stay near its raster's size."""
    path = tmp_path / "big16.png"
    _blank_png16(path, 13000, 13000)
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    ).stdout.split()
    peak_mb = int(out[-1]) / 1024
    assert out[0] == "(260," and peak_mb < 900, out


_OUT_OF_MEMORY_SCRIPT = """
import io, resource, sys
from PIL import Image
from visualsearch.core import imageio
buf = io.BytesIO()
Image.new("L", (60_000_000, 1)).save(buf, "PNG")
used = int(open("/proc/self/statm").read().split()[0]) * 4096
hard = resource.getrlimit(resource.RLIMIT_AS)[1]
resource.setrlimit(resource.RLIMIT_AS, (used + 200_000_000, hard))
try:
    imageio.decode(buf.getvalue(), min_side=260)
except imageio.ImageError as exc:
    print(exc)
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_running_out_of_memory_gives_a_readable_reason():
    """An extreme aspect ratio (60 MP in one row) runs out of memory in the RGB conversion:
    the bare MemoryError() has no message, the reason must still say what happened."""
    reason = subprocess.run(
        [sys.executable, "-c", _OUT_OF_MEMORY_SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    ).stdout.strip()
    assert "memory" in reason and not reason.endswith(":"), reason


def test_an_error_reason_is_never_empty():
    assert str(imageio.ImageError("")) != ""
    assert imageio.describe(MemoryError()) == "not enough memory"
    assert imageio.describe(ValueError(), with_type=True) == "ValueError"
