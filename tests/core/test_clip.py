"""The CLIP path through the real loading code, with a checkpoint the test writes.

No CLIP weights can be downloaded here, so the weights are random: this checks
loading, preprocessing, shapes, normalisation and the store/CLI plumbing, not
the quality of CLIP's results.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from visualsearch.cli import main
from visualsearch.core.encoders import ModelUnavailable, default_model_spec, load_encoder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    path = tmp_path_factory.mktemp("ckpt") / "random-vit-b-32.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return path


def test_checkpoint_loads_and_embeds_into_one_space(checkpoint, app_paths, photos_dir):
    from PIL import Image

    enc = load_encoder("clip", cache_dir=app_paths.cache_dir, weights=checkpoint)
    assert enc.id.startswith("clip:ViT-B-32:file-") and enc.dim == 512 and enc.input_size == 224
    with Image.open(photos_dir / "chelsea.png") as img:
        pixels = enc.preprocess(img.convert("RGB"))
    assert pixels.shape == (3, 224, 224)
    img_vecs = enc.embed_images(np.stack([pixels, pixels]))
    txt_vecs = enc.embed_text(["a cat", "a dog on a beach"])
    for v in (img_vecs, txt_vecs):
        assert v.shape == (2, 512) and v.dtype == np.float32
        assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.allclose(img_vecs[0], img_vecs[1], atol=1e-5)
    assert not np.allclose(txt_vecs[0], txt_vecs[1])  # weights were really loaded and used


def test_index_and_search_through_the_cli_with_weights(
    checkpoint, app_paths, photos_dir, capsys, tmp_path
):
    store = str(tmp_path / "store")
    assert (
        main(
            [
                "index",
                str(photos_dir),
                "--model",
                "clip:ViT-B-32",
                "--weights",
                str(checkpoint),
                "--store",
                store,
                "--json",
            ],
            paths=app_paths,
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["encoded"] == report["scanned"] > 30 and report["model"].startswith("clip:")
    assert report["backend"] == "pytorch (cpu)"  # OpenVINO only when asked for
    # later commands reuse the collection's model and checkpoint without repeating them
    assert (
        main(
            [
                "similar",
                str(photos_dir),
                str(photos_dir / "coffee.png"),
                "--store",
                store,
                "--json",
                "--include-self",
                "-k",
                "2",
            ],
            paths=app_paths,
        )
        == 0
    )
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["path"].endswith("coffee.png") and hits[0]["score"] > 0.999
    assert (
        main(
            ["search", str(photos_dir), "a cat", "--store", store, "--json", "-k", "5"],
            paths=app_paths,
        )
        == 0
    )
    assert len(json.loads(capsys.readouterr().out)) == 5


def test_missing_weights_fail_at_once_with_advice(app_paths):
    started = time.monotonic()
    with pytest.raises(ModelUnavailable, match="--weights FILE") as err:
        load_encoder("clip:ViT-B-32:laion2b_s34b_b79k", cache_dir=app_paths.cache_dir)
    assert time.monotonic() - started < 2.0
    assert "builtin" in str(err.value)
    assert default_model_spec() == "builtin"  # nothing cached → the offline model


def test_bad_checkpoint_and_unknown_names(app_paths, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelUnavailable, match="cannot load CLIP weights"):
        load_encoder("clip", cache_dir=app_paths.cache_dir, weights=junk)
    with pytest.raises(ModelUnavailable, match="not found"):
        load_encoder("clip", cache_dir=app_paths.cache_dir, weights=tmp_path / "nope.pt")
    with pytest.raises(ModelUnavailable, match="unknown CLIP architecture"):
        load_encoder("clip:ViT-Nope", cache_dir=app_paths.cache_dir)
    with pytest.raises(ModelUnavailable, match="no pretrained weights named"):
        load_encoder("clip:ViT-B-32:nope", cache_dir=app_paths.cache_dir)


def test_download_fails_fast_when_the_hub_cannot_be_reached(monkeypatch):
    import socket
    import threading

    from huggingface_hub import constants

    from visualsearch.core.encoders import download
    from visualsearch.core.encoders.base import ModelUnavailable

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 at start-up
    with pytest.raises(ModelUnavailable, match="HF_HUB_OFFLINE"):
        download.check_network()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    # a hub that hangs up on every connection, counting them: one try, then the answer
    # (a retry loop kept the user waiting 30 s); counted, not timed
    hub = socket.create_server(("127.0.0.1", 0))
    tries: list[int] = []

    def hang_up() -> None:
        while True:
            try:
                conn, _ = hub.accept()
            except OSError:  # closed: the test is over
                return
            tries.append(1)
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{hub.getsockname()[1]}")
    try:
        with pytest.raises(ModelUnavailable, match="no network"):
            download.download_clip_weights("ViT-B-32", "laion2b_s34b_b79k")
    finally:
        hub.close()
    assert len(tries) == 1


def test_clip_vocabulary_is_cached_and_takes_own_words(checkpoint, app_paths, tmp_path):
    from visualsearch.core.encoders.vocabulary import zero_shot_vocabulary
    from visualsearch.core.tags import suggest_tags, tag_vocabulary

    enc = load_encoder("clip", cache_dir=app_paths.cache_dir, weights=checkpoint)
    vocabulary = zero_shot_vocabulary(enc, tmp_path)
    assert vocabulary.matrix.shape == (1000, 512) and vocabulary.names[281] == "tabby cat"
    assert len(list((tmp_path / "vocabulary").glob("*.npy"))) == 1  # computed once, cached
    own = tag_vocabulary(enc, tmp_path, ["sofa", " garden "])
    assert own.names[:2] == ["sofa", "garden"] and own.matrix.shape == (1002, 512)
    sofa = enc.embed_text(["a photo of a sofa"])[0]
    assert suggest_tags(own, sofa[None], k=1)[0][0] == "sofa"  # a word's own prompt ranks it first


def test_fast_clip_runs_the_image_tower_on_openvino_and_agrees(checkpoint, tmp_path, photos_dir):
    """Opt-in: the image tower exported once and run by OpenVINO in bf16 where the CPU has
    it (as here), else PyTorch; its vectors agree with PyTorch's, the text tower is
    PyTorch's either way."""
    from PIL import Image

    slow = load_encoder("clip", cache_dir=tmp_path, weights=checkpoint)
    fast = load_encoder("clip", cache_dir=tmp_path, weights=checkpoint, fast_clip=True)
    assert slow.backend == "pytorch (cpu)"
    assert fast.backend in ("openvino bf16", "pytorch (cpu)")
    photos = sorted(photos_dir.iterdir())[:6]
    x = np.stack([slow.preprocess(Image.open(p).convert("RGB")) for p in photos])
    cosines = (slow.embed_images(x) * fast.embed_images(x)).sum(axis=1)
    assert cosines.min() > 0.99
    np.testing.assert_array_equal(slow.embed_text(["a cat"]), fast.embed_text(["a cat"]))
    if fast.backend == "openvino bf16":
        assert list((tmp_path / "models").glob("clip_*-image-tower.onnx"))
        again = load_encoder("clip", cache_dir=tmp_path, weights=checkpoint, fast_clip=True)
        np.testing.assert_allclose(again.embed_images(x), fast.embed_images(x), atol=1e-6)


def test_fast_clip_from_the_cli(checkpoint, app_paths, photos_dir, capsys, tmp_path):
    import shutil

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("coffee.png", "chelsea.png", "astronaut.png", "rocket.jpg"):
        shutil.copy2(photos_dir / name, folder / name)
    common = ["--weights", str(checkpoint), "--store", str(tmp_path / "store"), "--json"]
    argv = ["index", str(folder), "--model", "clip:ViT-B-32", "--fast-clip", *common]
    assert main(argv, paths=app_paths) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["encoded"] == 4 and report["backend"] in ("openvino bf16", "pytorch (cpu)")
    argv = ["similar", str(folder), str(folder / "coffee.png"), "--include-self", "-k", "1"]
    assert main([*argv, *common], paths=app_paths) == 0  # an image query, the slow way
    (hit,) = json.loads(capsys.readouterr().out)
    assert hit["path"].endswith("coffee.png") and hit["score"] > 0.99
