"""Indexing throughput on camera-sized JPEGs, per model, measured in one run.

For each model prints images/s of
  E  the encoder alone on pre-decoded, preprocessed batches,
  D  decoding alone (read, hash, draft decode, preprocess, thumbnail) on all cores,
  P  the full pipeline (fresh store),
and P / (1 / (1/E + 1/D)), the share of the ideal overlap we reach (target ≥ 0.9);
then a naive loop (open, full decode, eager PyTorch, one image at a time) and
our speed-up over it (target ≥ 5× for the built-in model); and the time to
re-index an unchanged folder of 10,000 files (target < 3 s).

    python bench/index.py [--images 48] [--models builtin clip] [--reindex-files 10000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))  # bench/backends.py

from visualsearch.core.encoders import load_encoder
from visualsearch.core.encoders.base import default_threads
from visualsearch.core.indexing import IndexOptions, index_folder, prepare_file
from visualsearch.core.sample import skimage_photos
from visualsearch.core.scan import FileStat
from visualsearch.core.store import Store


def make_camera_jpegs(dest: Path, n: int, start: int = 0) -> list[Path]:
    """12 MP JPEGs of 2–4 MB: real photos upscaled, with sensor-like noise; numbered
    from `start`."""
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    sources = [Image.open(p).convert("RGB") for p in skimage_photos()[:6]]
    out = []
    for i in range(start, start + n):
        base = sources[i % len(sources)].resize((4000, 3000), Image.Resampling.BILINEAR)
        arr = np.asarray(base, np.int16) + rng.normal(0, 6, (3000, 4000, 3)).astype(np.int16)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        path = dest / f"IMG_{i:04d}.jpg"
        img.save(path, quality=92)
        out.append(path)
    return out


def naive_rate(paths: list[Path], spec: str, encoder) -> float:
    """open → full decode → resize → eager PyTorch, one image at a time."""
    import torch

    if spec == "builtin":
        model = encoder._features
        size = encoder.input_size

        def run(img):
            arr = np.asarray(img.resize((size, size)), np.float32).transpose(2, 0, 1) / 255
            with torch.inference_mode():
                return model(torch.from_numpy(arr)[None])
    else:

        def run(img):
            with torch.inference_mode():
                return encoder._model.encode_image(encoder._preprocess(img)[None])

    run(Image.open(paths[0]).convert("RGB"))
    t = time.perf_counter()
    for p in paths:
        run(Image.open(p).convert("RGB"))
    return len(paths) / (time.perf_counter() - t)


def bench_model(spec: str, weights, paths, cache_dir: Path, work: Path, batch: int) -> None:
    encoder = load_encoder(spec, cache_dir=cache_dir, weights=weights)
    n = len(paths)
    workers = default_threads()
    opts = IndexOptions(batch_size=batch)
    stats = [FileStat(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    with ThreadPoolExecutor(workers) as pool:  # the pipeline's own per-file work, no encoder
        t = time.perf_counter()
        items = list(
            pool.map(
                lambda f: prepare_file(paths[0].parent, f, encoder, frozenset(), frozenset(), opts),
                stats,
            )
        )
        d_rate = n / (time.perf_counter() - t)
    assert all(it.pixels is not None and it.thumbnail is not None for it in items)
    stack = np.stack([it.pixels for it in items])
    encoder.embed_images(stack[:batch])
    t = time.perf_counter()
    for i in range(0, n, batch):
        encoder.embed_images(stack[i : i + batch])
    e_rate = n / (time.perf_counter() - t)
    store_dir = work / f"store-{spec}"
    shutil.rmtree(store_dir, ignore_errors=True)
    with Store(store_dir) as store:
        report = index_folder(paths[0].parent, store, encoder, options=opts)
    assert report.encoded == n, report
    p_rate = n / report.seconds
    ideal = 1 / (1 / e_rate + 1 / d_rate)
    naive = naive_rate(paths[: min(12, n)], spec, encoder)
    print(
        f"{encoder.id} ({getattr(encoder, 'backend', '')}), {n} images, batch {batch}, "
        f"{workers} cores"
    )
    print(f"  E encoder alone   {e_rate:7.1f} img/s")
    print(f"  D decode alone    {d_rate:7.1f} img/s")
    print(f"  P full pipeline   {p_rate:7.1f} img/s")
    print(f"  P / ideal         {p_rate / ideal:7.2f}   (ideal {ideal:.1f} img/s, target >= 0.9)")
    print(f"  naive loop        {naive:7.1f} img/s   speed-up {p_rate / naive:.1f}x")


def bench_backends(spec: str, weights: Path | None, cache_dir: Path) -> None:
    """Every inference backend's speed and fidelity (bench/backends.py)."""
    import backends

    threads = default_threads()
    if spec == "builtin":
        runs, preprocess, side = backends.builtin_backends(cache_dir, threads)
        encoder = load_encoder(spec, cache_dir=cache_dir)
        used = {"openvino bf16": "OpenVINO bf16", "onnxruntime fp32": "ONNX Runtime fp32"}.get(
            encoder.backend, "PyTorch fp32"
        )
    else:
        runs, preprocess, side = backends.clip_backends(weights, threads)
        used = "PyTorch fp32"
    backends.compare(spec, runs, preprocess, side, used)


def bench_reindex(n: int, cache_dir: Path, work: Path) -> None:
    folder = work / "many"
    folder.mkdir()
    small = folder / "seed.jpg"
    Image.open(skimage_photos()[0]).convert("RGB").resize((64, 64)).save(small)
    data = small.read_bytes()
    for i in range(n - 1):  # same content: one encode, then every file is only stat-ed
        (folder / f"f{i // 1000:02d}").mkdir(exist_ok=True)
        (folder / f"f{i // 1000:02d}" / f"{i:05d}.jpg").write_bytes(data)
    encoder = load_encoder("builtin", cache_dir=cache_dir)
    with Store(work / "store-many") as store:
        first = index_folder(folder, store, encoder)
        t = time.perf_counter()
        again = index_folder(folder, store, encoder)
        seconds = time.perf_counter() - t
    assert again.unchanged == n and again.encoded == 0
    print(
        f"re-index unchanged folder: {n} files in {seconds:.2f} s "
        f"(first run {first.seconds:.1f} s; target < 3 s for 10,000)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--models", nargs="+", default=["builtin", "clip"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reindex-files", type=int, default=10_000)
    ap.add_argument("--no-backends", action="store_true", help="skip the backend comparison")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vs-bench-") as tmp:
        work = Path(tmp)
        cache_dir = work / "cache"
        t = time.perf_counter()
        paths = make_camera_jpegs(work / "camera", args.images)
        sizes = [p.stat().st_size / 1e6 for p in paths]
        print(
            f"made {len(paths)} 4000x3000 JPEGs, {min(sizes):.1f}-{max(sizes):.1f} MB "
            f"({time.perf_counter() - t:.0f} s)"
        )
        for spec in args.models:
            weights = None
            if spec.startswith("clip"):
                import open_clip
                import torch

                # Random weights: speed does not depend on them, and none can be downloaded here.
                weights = work / "vit-b-32-random.pt"
                torch.save(open_clip.create_model("ViT-B-32").state_dict(), weights)
            bench_model(spec, weights, paths, cache_dir, work, args.batch)
            if not args.no_backends:
                bench_backends(spec, weights, cache_dir)
        if args.reindex_files:
            bench_reindex(args.reindex_files, cache_dir, work)


if __name__ == "__main__":
    main()
