"""Models on a GPU, and JPEGs decoded there (devices.py, jpeg_on_device.py).

Without a GPU (CI) the device decoder runs on the CPU — the same code, with libjpeg-turbo
where the GPU has nvJPEG — and the tests that need CUDA are skipped; on a machine with
CUDA they run (the device figures in the README come from there).
"""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from visualsearch.cli import main
from visualsearch.core import imageio
from visualsearch.core.encoders import ModelUnavailable, load_encoder
from visualsearch.core.encoders.builtin import _MEAN, _STD, INPUT_SIZE, BuiltinEncoder
from visualsearch.core.encoders.devices import gpu_possible, resolve_device
from visualsearch.core.encoders.jpeg_on_device import JpegJob, JpegOnDevice, upright, whole_jpeg
from visualsearch.core.indexing import IndexOptions, index_folder
from visualsearch.core.model_evaluation import neighbour_overlap
from visualsearch.core.sample import exif_rotate_variant
from visualsearch.core.store import Store

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
DEVICE = "cuda" if CUDA else "cpu"


def _jpeg(img: Image.Image, mode: str = "RGB", quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert(mode).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def jpeg_dir(tmp_path_factory, photos_dir):
    """The real photos as JPEGs, one stored sideways with an EXIF tag, one CMYK, one
    PNG, one cut off half-way and one whose compressed data is damaged."""
    d = tmp_path_factory.mktemp("jpegs")
    for p in sorted(photos_dir.iterdir()):
        with Image.open(p) as img:
            (d / f"{p.stem}.jpg").write_bytes(_jpeg(img))
    with Image.open(photos_dir / "chelsea.png") as img:
        (d / "sideways.jpg").write_bytes(exif_rotate_variant(img))
        (d / "cmyk.jpg").write_bytes(_jpeg(img, "CMYK"))
        img.convert("RGB").save(d / "lossless.png")
    whole = (d / "astronaut.jpg").read_bytes()
    (d / "cut-off.jpg").write_bytes(whole[: len(whole) // 2])
    damaged = bytearray(whole)
    damaged[len(whole) // 3 : len(whole) // 3 + 4000] = b"\xff\x00" * 2000
    (d / "damaged.jpg").write_bytes(bytes(damaged))
    return d


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


# -- where the model runs ------------------------------------------------------------------


def test_device_choice_names_what_is_wrong():
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ModelUnavailable, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not CUDA:
        with pytest.raises(ModelUnavailable, match="--device cpu"):
            resolve_device("cuda")
    else:
        assert resolve_device("auto") == "cuda"
        with pytest.raises(ModelUnavailable, match="counted from cuda:0"):
            resolve_device("cuda:99")


def test_auto_imports_no_torch_where_no_gpu_could_be():
    """The built-in model runs without PyTorch on a computer with no GPU (1.2 s saved)."""
    code = (
        "import sys; from visualsearch.core.encoders.devices import resolve_device; "
        "print(resolve_device('auto'), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    if gpu_possible():
        assert out.stdout.split()[0] == ("cuda" if CUDA else out.stdout.split()[0])
    else:
        assert out.stdout.split() == ["cpu", "False"]


@pytest.mark.skipif(CUDA, reason="this computer has a CUDA GPU")
def test_auto_is_settled_once_the_image_network_loads(app_paths, monkeypatch):
    """The window says where the model runs: "auto" is unsettled until the network loads
    where a GPU could be, and "cpu" at once where none could."""
    from visualsearch.core.encoders import builtin

    encoder = BuiltinEncoder(app_paths.cache_dir)
    monkeypatch.setattr(builtin, "gpu_possible", lambda: False)
    assert encoder.device_settled == "cpu"
    monkeypatch.setattr(builtin, "gpu_possible", lambda: True)
    assert encoder.device_settled is None
    assert BuiltinEncoder(app_paths.cache_dir, device="cpu").device_settled == "cpu"
    monkeypatch.setattr(builtin, "resolve_device", lambda choice: "cpu")  # no GPU after all
    encoder.embed_images(np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32))
    assert encoder.device_settled == "cpu"


def test_cli_device_cuda_without_one_says_so(photos_dir, tmp_path, capsys):
    rc = main(["index", str(photos_dir), "--store", str(tmp_path / "s"), "--device", "cuda"])
    assert rc != 0
    assert "use --device cpu" in capsys.readouterr().err


# -- JPEGs decoded on the device -------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_turns_as_pillow_does(orientation):
    pixels = np.random.default_rng(orientation).integers(0, 255, (5, 3, 3), np.uint8)
    img = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(img))
    turned = upright(torch.from_numpy(pixels).permute(2, 0, 1), orientation)
    assert np.array_equal(turned.permute(1, 2, 0).numpy(), expected)


def test_only_whole_jpegs_go_to_the_device(jpeg_dir):
    assert whole_jpeg((jpeg_dir / "chelsea.jpg").read_bytes())
    assert not whole_jpeg((jpeg_dir / "cut-off.jpg").read_bytes())
    assert not whole_jpeg((jpeg_dir / "lossless.png").read_bytes())
    motion_photo = (jpeg_dir / "chelsea.jpg").read_bytes() + b"\0\0\0\x18ftypmp42" + b"x" * 999
    assert not whole_jpeg(motion_photo)


def test_device_decoder_makes_the_cpus_input_and_thumbnail(builtin_encoder, jpeg_dir):
    decoder = JpegOnDevice(DEVICE, INPUT_SIZE, _MEAN.ravel(), _STD.ravel())
    names = sorted(p.name for p in jpeg_dir.glob("*.jpg") if whole_jpeg(p.read_bytes()))
    names = [n for n in names if n not in ("damaged.jpg", "cmyk.jpg")]  # nvJPEG refuses CMYK
    datas = [(jpeg_dir / name).read_bytes() for name in names]
    infos = [imageio.probe(data) for data in datas]
    jobs = [JpegJob(d, info.orientation, True, 256) for d, info in zip(datas, infos, strict=True)]
    made = decoder.prepare(jobs)
    on_device = [pixels.cpu().numpy() for pixels, _ in made]
    on_cpu = [builtin_encoder.preprocess(imageio.decode(d, min_side=260).image) for d in datas]
    for name, info, (_, thumb) in zip(names, infos, made, strict=True):
        with Image.open(io.BytesIO(thumb)) as t:
            assert t.format == "JPEG" and max(t.size) == min(256, max(info.width, info.height))
            assert abs(t.width / t.height - info.width / info.height) < 0.02, name
    assert on_device[0].shape == (3, INPUT_SIZE, INPUT_SIZE)
    a = builtin_encoder.embed_images(np.stack(on_device))
    b = builtin_encoder.embed_images(np.stack(on_cpu))
    cos = _cosines(a, b)
    assert cos.min() >= 0.99, dict(zip(names, cos.round(3), strict=True))
    assert neighbour_overlap(a, b) >= 0.95


def test_thin_images_get_pillows_thumbnail():
    """Antialiased bicubic drew a 1-pixel-wide strip nearly black (mean 0.5 of 127)."""
    column = np.linspace(0, 255, 3000, dtype=np.float32)[:, None, None]
    data = _jpeg(Image.fromarray(np.tile(column, (1, 3, 3)).astype(np.uint8)))
    decoder = JpegOnDevice(DEVICE, INPUT_SIZE, _MEAN.ravel(), _STD.ravel())
    [(_, thumb)] = decoder.prepare([JpegJob(data, 1, False, 256)])
    theirs = imageio.thumbnail_jpeg(imageio.decode(data, min_side=256).image, 256)
    ours, pillows = (np.asarray(Image.open(io.BytesIO(t)), np.float32) for t in (thumb, theirs))
    assert ours.shape == pillows.shape == (256, 1, 3)
    assert abs(ours.mean() - pillows.mean()) < 3


@pytest.fixture(scope="module")
def device_encoder(app_paths):
    """The built-in model with JPEGs decoded on the device: the GPU where there is one,
    else the same decoder on the CPU."""
    encoder = BuiltinEncoder(cache_dir=app_paths.cache_dir, device=DEVICE)
    if not CUDA:
        encoder._load_images()
        encoder._jpeg = JpegOnDevice("cpu", INPUT_SIZE, _MEAN.ravel(), _STD.ravel())
    assert encoder.jpeg_decoder() is not None
    return encoder


def _index(folder, tmp_path, encoder, name, **options) -> Store:
    store = Store(tmp_path / name)
    report = index_folder(folder, store, encoder, options=IndexOptions(**options))
    assert not report.cancelled
    return store


def test_indexing_with_jpegs_decoded_on_the_device(
    builtin_encoder, device_encoder, jpeg_dir, tmp_path
):
    # "auto" puts the model on the GPU where there is one: only the decoding differs
    plain = _index(jpeg_dir, tmp_path, builtin_encoder, "cpu", decode_on_gpu=False)
    device = _index(jpeg_dir, tmp_path, device_encoder, "device", decode_on_gpu=True)
    cpu_records, device_records = plain.file_records(), device.file_records()
    # the same files are usable, with the same sizes; the cut-off and damaged ones are
    # refused for the same reasons (the device hands what it cannot read to the CPU)
    assert set(cpu_records) == set(device_records)
    for path, rec in cpu_records.items():
        other = device_records[path]
        assert (other.width, other.height, other.format, other.error) == (
            rec.width,
            rec.height,
            rec.format,
            rec.error,
        ), path
    sideways = cpu_records["sideways.jpg"]
    assert cpu_records["cut-off.jpg"].error and (sideways.width, sideways.height) == (451, 300)
    # the damaged file's garbage is drawn differently by each decoder
    good = sorted(p for p, r in cpu_records.items() if r.error is None and p != "damaged.jpg")
    a = np.stack([plain.vector(builtin_encoder.id, p) for p in good])
    b = np.stack([device.vector(builtin_encoder.id, p) for p in good])
    cos = _cosines(a, b)
    assert cos.min() >= 0.99, dict(zip(good, cos.round(3), strict=True))
    assert neighbour_overlap(a, b) >= 0.95
    # the JPEGs were decoded on the device (their vectors differ a little), the PNG not; a
    # JPEG with the CPU's very vector is one the device cannot read (nvJPEG refuses CMYK)
    same = [p for i, p in enumerate(good) if p.endswith(".jpg") and np.array_equal(a[i], b[i])]
    decoder = device_encoder.jpeg_decoder()
    jobs = [JpegJob((jpeg_dir / p).read_bytes(), 1, True, 0) for p in same]
    assert len(same) <= 2 and decoder.prepare(jobs) == [None] * len(same), same
    png = good.index("lossless.png")
    assert np.allclose(a[png], b[png], atol=1e-6)
    assert device.thumbnail_hashes() == {r.hash for r in cpu_records.values() if r.error is None}


# -- on a CUDA GPU ---------------------------------------------------------------------------


@needs_cuda
def test_builtin_on_the_gpu_agrees_with_the_cpu(builtin_encoder, app_paths, photos_dir):
    gpu = load_encoder("builtin", cache_dir=app_paths.cache_dir)  # "auto" finds the GPU
    assert "cuda" in gpu.backend and gpu.device == "cuda" and gpu.batch_size > 8
    pixels = []
    for p in sorted(photos_dir.iterdir()):
        pixels.append(builtin_encoder.preprocess(imageio.decode(p.read_bytes(), 260).image))
    batch = np.stack(pixels)
    a, b = builtin_encoder.embed_images(batch), gpu.embed_images(batch)
    assert _cosines(a, b).min() >= 0.995
    assert neighbour_overlap(a, b) >= 0.95


@needs_cuda
def test_clip_on_the_gpu_agrees_with_the_cpu(tmp_path, photos_dir):
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "random.pt")
    cpu = load_encoder("clip", tmp_path, weights=tmp_path / "random.pt", device="cpu")
    gpu = load_encoder("clip", tmp_path, weights=tmp_path / "random.pt")
    assert "cuda" in gpu.backend and gpu.jpeg_decoder() is not None
    pixels = []
    for p in sorted(photos_dir.iterdir()):
        pixels.append(cpu.preprocess(imageio.decode(p.read_bytes(), 224).image))
    batch = np.stack(pixels)
    assert _cosines(cpu.embed_images(batch), gpu.embed_images(batch)).min() >= 0.99
    words = ["a cat", "a rocket"]
    assert _cosines(cpu.embed_text(words), gpu.embed_text(words)).min() >= 0.99
