"""The first answer fast: a command loads only what it uses (bench/startup.py has the
figures). A text search in a new process took 6.3 s, 5.5 s of it importing torch, timm
and sentence-transformers that the query did not need once the graphs were exported."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from visualsearch.core.encoders.minilm import MiniLM, _sentence_transformer
from visualsearch.core.folder import ModelChoice, index_and_record
from visualsearch.core.store import Store, default_store_dir

HEAVY = (
    "torch",
    "torchvision",
    "timm",
    "transformers",
    "sentence_transformers",
    "open_clip",
    "openvino",
    "onnxruntime.quantization",
)

PROBE = f"""
import sys
from pathlib import Path
from visualsearch.cli import main
from visualsearch.core.settings import AppPaths
code = main(sys.argv[3:], paths=AppPaths(Path(sys.argv[1]), Path(sys.argv[2])))
heavy = [m for m in {HEAVY!r} if m in sys.modules]
print("loaded:" + ",".join(heavy), file=sys.stderr)
sys.exit(code)
"""


def test_minilm_on_onnx_runtime_gives_sentence_transformers_vectors(app_paths):
    texts = [
        "a dog",
        "A Photo of a TABBY cat on a sofa!",
        "résumé, café, naïve — 犬",
        "",
        "word " * 400,  # past the 256 tokens both cut at
    ]
    ours = MiniLM(app_paths.cache_dir, threads=2)
    assert ours.backend == "onnxruntime"
    reference = _sentence_transformer().encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(ours.encode(texts), reference, atol=1e-5)
    np.testing.assert_allclose(ours.encode(texts[:1]), reference[:1], atol=1e-5)  # no padding


@pytest.fixture(scope="module")
def indexed(photos_dir, builtin_encoder, app_paths):
    """The photos indexed where the CLI looks, as `visualsearch index` leaves them: both
    graphs exported and the model's scale measured into the cache (index_and_record)."""
    with Store(default_store_dir(photos_dir, app_paths.data_dir), root=photos_dir) as store:
        model = ModelChoice("builtin")
        index_and_record(photos_dir, store, builtin_encoder, model, cache_dir=app_paths.cache_dir)
    builtin_encoder.embed_text(["a photo"])
    return photos_dir


def _cli(app_paths, *argv) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(app_paths.data_dir), str(app_paths.cache_dir), *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr.strip().splitlines()[-1]


def test_a_text_search_in_a_new_process_loads_no_pytorch(indexed, app_paths):
    out, loaded = _cli(app_paths, "search", str(indexed), "a photo of a cat", "-k", "1")
    assert "chelsea.png" in out
    assert loaded == "loaded:"


def test_an_unchanged_index_loads_no_model_framework(indexed, app_paths):
    out, loaded = _cli(app_paths, "index", str(indexed), "--json")
    assert '"encoded": 0' in out and '"backend": null' in out  # no network was loaded
    assert loaded == "loaded:"


def test_a_full_cache_disk_still_answers(small_disk, photos_dir):
    """The classifier rows and the exported graphs could not be written: "the built-in
    model could not be loaded (…); reinstall visualsearch". Nothing is cached then, and
    nothing half-written is left; the model runs from PyTorch and sentence-transformers."""
    from PIL import Image

    from visualsearch.core.encoders.builtin import BuiltinEncoder

    encoder = BuiltinEncoder(cache_dir=small_disk)
    assert encoder.embed_text(["a photo of a cat"]).shape == (1, 1280)
    with Image.open(photos_dir / "chelsea.png") as img:
        pixels = encoder.preprocess(img.convert("RGB"))
    assert encoder.embed_images(pixels[None]).shape == (1, 1280)
    assert encoder.backend == "pytorch"
    left = sorted(p.name for p in small_disk.rglob("*") if p.is_file())
    assert not [name for name in left if ".tmp" in name], left


def test_a_killed_export_leaves_nothing_behind(builtin_encoder, app_paths, tmp_path):
    """An export killed midway left its temporary file (90 MB for MiniLM) for good; one
    a live process is writing is left to it."""
    import os

    models = _cache_to_export_minilm_again(builtin_encoder, app_paths, tmp_path)
    dead = _dead_pid()
    abandoned = models / f"minilm-l6-v2-0.1.0.{dead}.tmp"
    abandoned.write_bytes(b"half a graph")
    running = models / f"minilm-l6-v2-0.1.0.{os.getppid()}.tmp"
    running.write_bytes(b"being written")
    MiniLM(tmp_path / "cache", threads=2)
    assert not abandoned.exists() and (models / "minilm-l6-v2-0.1.0.onnx").exists()
    assert running.exists()


def _cache_to_export_minilm_again(builtin_encoder, app_paths, tmp_path):
    """A copy of the session's model cache under tmp_path, less the MiniLM graph."""
    import shutil

    builtin_encoder.embed_text(["a photo"])  # the session's graph is made by now
    models = tmp_path / "cache" / "models"
    shutil.copytree(app_paths.cache_dir / "models", models)
    (models / "minilm-l6-v2-0.1.0.onnx").unlink()
    return models


def _dead_pid() -> int:
    import os

    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except OSError:
            pass
        pid -= 1


def test_only_files_named_as_a_dead_exports_are_removed(builtin_encoder, app_paths, tmp_path):
    """A folder named like an abandoned temporary file made every export fail ("Is a
    directory") and the model run on PyTorch; a version number was read as a pid."""
    import os

    models = _cache_to_export_minilm_again(builtin_encoder, app_paths, tmp_path)
    dead = _dead_pid()
    folder = models / f"minilm-l6-v2-0.1.0.{dead}.tmp"
    folder.mkdir()
    other = models / f"minilm-l6-v2-0.1.0.7.{os.getpid()}.tmp"  # another graph's, live
    other.write_bytes(b"being written")
    assert MiniLM(tmp_path / "cache", threads=2).backend == "onnxruntime"
    assert folder.is_dir() and other.exists()
