"""Camera RAW files, read from their embedded previews (DNGs written by tests/raw_files.py;
LibRaw reads them as it reads a camera's)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.raw_files import claim_preview_size, write_dng
from visualsearch.core import imageio
from visualsearch.core.collection import Collection
from visualsearch.core.duplicates import collection_duplicates, presets
from visualsearch.core.indexing import index_folder
from visualsearch.core.raw import RAW_FORMAT
from visualsearch.core.sample import skimage_photos
from visualsearch.core.store import Store


def _photo(name: str) -> Image.Image:
    (path,) = [p for p in skimage_photos() if p.name == name]
    with Image.open(path) as img:
        return img.convert("RGB")


@pytest.mark.parametrize("orientation", [1, 3, 6])
def test_a_dng_is_read_upright_from_its_preview(tmp_path, orientation):
    upright = _photo("motorcycle_left.png")  # 741 × 500: which way up shows in the size
    dng = write_dng(tmp_path / "shot.dng", upright, orientation, taken="2021:07:14 10:30:00")
    data = dng.read_bytes()
    info = imageio.probe(data)
    decoded = imageio.decode(data).image
    assert info.format == RAW_FORMAT and info.taken == "2021:07:14 10:30:00"
    assert (info.width, info.height) == decoded.size == (800, 540)  # the preview, upright
    expected = np.asarray(upright.resize(decoded.size), np.float32)
    assert np.abs(np.asarray(decoded, np.float32) - expected).mean() < 12  # JPEG, not turned


def test_a_dng_without_a_preview_is_developed_upright(tmp_path):
    upright = _photo("motorcycle_left.png")
    data = write_dng(tmp_path / "bare.dng", upright, orientation=6, preview_side=0).read_bytes()
    decoded = imageio.decode(data).image
    assert decoded.size == (474, 320)  # half the 640 × 948 mosaic, turned upright
    # developing changes the tones (white balance, gamma): compare the shapes of light
    got = np.asarray(decoded.convert("L"), np.float32).ravel()
    same = np.asarray(upright.resize(decoded.size).convert("L"), np.float32).ravel()
    turned = np.asarray(
        upright.transpose(Image.Transpose.ROTATE_180).resize(decoded.size).convert("L"),
        np.float32,
    ).ravel()
    assert np.corrcoef(got, same)[0, 1] > 0.8 > np.corrcoef(got, turned)[0, 1]
    assert imageio.probe(data).format == RAW_FORMAT


def test_damaged_raw_files_get_a_reason(tmp_path):
    """A RAW file cut short inside its preview, or garbled, is refused with a reason; one
    cut after its preview still shows the preview (what the camera shows too)."""
    import tifffile

    dng = write_dng(tmp_path / "shot.dng", _photo("coffee.png"))
    data = dng.read_bytes()
    with tifffile.TiffFile(dng) as tif:
        preview_at, preview_bytes = tif.pages[0].dataoffsets[0], tif.pages[0].databytecounts[0]
    for broken in (data[: preview_at + preview_bytes // 2], data[:64] + bytes(len(data) - 64)):
        with pytest.raises(imageio.ImageError) as err:
            imageio.decode(broken)
        assert str(err.value)
    cut_after = data[: preview_at + preview_bytes + 1000]
    assert imageio.decode(cut_after).image.size == imageio.decode(data).image.size


def test_plain_tiffs_are_not_taken_for_raw_files(tmp_path):
    """LibRaw "develops" an uncompressed 16-bit grey TIFF (half size, other tones): such
    scans and microscope images stay Pillow's, as every plain TIFF does."""
    import tifffile

    upright = _photo("coffee.png")
    upright.save(tmp_path / "scan.tif", compression="tiff_lzw")
    grey = np.asarray(upright.convert("L"), np.uint16) * 257
    tifffile.imwrite(tmp_path / "grey16.tif", grey)
    tifffile.imwrite(tmp_path / "grey16-be.tif", grey, byteorder=">")
    for name in ("scan.tif", "grey16.tif", "grey16-be.tif"):
        data = (tmp_path / name).read_bytes()
        info = imageio.probe(data)
        assert info.format == "TIFF" and (info.width, info.height) == upright.size, name
        assert imageio.decode(data).image.size == upright.size


def test_an_uncompressed_preview_is_not_trusted(tmp_path):
    """rawpy shapes an uncompressed preview's array by the size the file claims: a claim
    larger than the bytes behind it crashed the process (SIGSEGV) on every index run.
    Such previews are not used; the sensor data is developed. Run in a child process: a
    crash must fail this test, not end the session."""
    import subprocess
    import sys

    dng = write_dng(tmp_path / "shot.dng", _photo("coffee.png"), preview_jpeg=False)
    claim_preview_size(dng, 12000, 12000)
    probe = (
        "import sys; from visualsearch.core import imageio; "
        "d = imageio.decode(open(sys.argv[1], 'rb').read(), min_side=260); "
        "print(d.info.format, *d.image.size)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(dng)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == ["RAW", "320", "213"]  # developed at half size


def test_a_monochrome_raw_file_is_developed(tmp_path):
    """A monochrome sensor (one sample a pixel, as Leica's Monochrom) developed into an
    (h, w, 1) array, which Pillow refused: "unexpected error: TypeError"."""
    import struct

    import tifffile

    grey = np.asarray(_photo("coffee.png").convert("L"), np.uint16) * 16
    path = tmp_path / "mono.dng"
    dng_tags = [(50706, "B", 4, (1, 4, 0, 0), True), (50717, "I", 1, 4095, True)]
    tifffile.imwrite(path, grey, photometric="minisblack", extratags=dng_tags)
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        at = tif.pages[0].tags[262].valueoffset
    struct.pack_into("<H", data, at, 34892)  # PhotometricInterpretation: LinearRaw
    decoded = imageio.decode(bytes(data))
    assert decoded.info.format == RAW_FORMAT and decoded.image.size == (600, 400)


def test_a_raw_file_is_found_from_its_jpeg_twin_and_kept_over_it(
    tmp_path, photos_dir, builtin_encoder
):
    """Indexed with the real model beside other photos: the DNG and the JPEG of the same
    shot find each other first, and Duplicates groups them as identical, keeping the RAW."""
    folder = tmp_path / "photos"
    shutil.copytree(photos_dir, folder, ignore=shutil.ignore_patterns("chelsea.png"))
    upright = _photo("chelsea.png")
    write_dng(folder / "IMG_0001.dng", upright, orientation=6)
    upright.save(folder / "IMG_0001.jpg", quality=92)
    with Store(tmp_path / "store", root=folder) as store:
        report = index_folder(folder, store, builtin_encoder)
        assert report.failed == 0
        assert store.thumbnail("IMG_0001.dng")  # shown in the grid like any photo
        col = Collection(folder, store, builtin_encoder)
        assert col.similar_to(folder / "IMG_0001.jpg", k=1)[0].path.name == "IMG_0001.dng"
        assert col.similar_to(folder / "IMG_0001.dng", k=1)[0].path.name == "IMG_0001.jpg"
        identical = presets(builtin_encoder.near_duplicate_threshold)["identical"]
        groups = collection_duplicates(col, identical)
        pair = [g for g in groups if {m.path for m in g.members} >= {"IMG_0001.dng"}]
        assert len(pair) == 1 and [m.path for m in pair[0].members] == [
            "IMG_0001.dng",
            "IMG_0001.jpg",
        ]
        assert "RAW" in pair[0].keep_reason
        # damaged since (same size and date, its bytes lost): the readable JPEG is kept
        raw_file = folder / "IMG_0001.dng"
        stat = raw_file.stat()
        raw_file.write_bytes(b"II*\x00" + bytes(stat.st_size - 4))
        os.utime(raw_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        (pair,) = [g for g in collection_duplicates(col, identical) if len(g.members) == 2]
        assert pair.members[0].path == "IMG_0001.jpg", pair.keep_reason
