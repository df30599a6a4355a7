import io

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
