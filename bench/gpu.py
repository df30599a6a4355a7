"""Indexing on a GPU against the CPU of the same machine, measured in one run.

For the built-in model and CLIP ViT-B-32 (random weights: speed does not depend on them)
prints images/s of
  E  the encoder alone on preprocessed batches: on the CPU (its own backend, all cores),
     and on the GPU in float32 (TF32) and float16 at batch 64 and 256;
  D  nvJPEG decoding a batch of them into the model's input and a thumbnail;
  P  the whole pipeline on 12 MP camera JPEGs (fresh store each time): all on the CPU;
     the model on the GPU with the CPU's threads decoding; and the JPEGs decoded on the
     GPU too (nvJPEG); and those two again with the process held to 4 and 8 cores,
     as on a smaller computer with the same GPU;
and how faithful the GPU's vectors are to the CPU's on the 36 real photos (lowest cosine,
top-10 neighbour overlap), for float32 and float16.

    python bench/gpu.py [--images 256] [--models builtin clip]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from index import make_camera_jpegs

from visualsearch.core import imageio
from visualsearch.core.encoders import load_encoder
from visualsearch.core.encoders.base import default_threads, l2_normalize
from visualsearch.core.encoders.devices import torch_forward
from visualsearch.core.encoders.jpeg_on_device import JpegJob
from visualsearch.core.indexing import IndexOptions, index_folder
from visualsearch.core.model_evaluation import neighbour_overlap
from visualsearch.core.sample import imagenet_photos, skimage_photos
from visualsearch.core.store import Store


def camera_jpegs(dest: Path, n: int) -> list[Path]:
    """`make_camera_jpegs` on every core, a chunk per process."""
    chunk = max(1, -(-n // default_threads()))
    starts = range(0, n, chunk)
    sizes = [min(chunk, n - s) for s in starts]
    with ProcessPoolExecutor(default_threads()) as pool:
        parts = pool.map(make_camera_jpegs, [dest] * len(sizes), sizes, starts)
        return sorted(p for part in parts for p in part)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def rate(run, batch, repeats: int) -> float:
    run(batch)  # warm-up: cuDNN picks its kernels
    sync()
    t = time.perf_counter()
    for _ in range(repeats):
        run(batch)
    sync()
    return repeats * len(batch) / (time.perf_counter() - t)


def bench_model(
    spec, weights, paths, cache_dir: Path, work: Path, few_cores=(), gpu_name: str = "cuda"
) -> None:
    cpu = load_encoder(spec, cache_dir, weights=weights, device="cpu")
    gpu = load_encoder(spec, cache_dir, weights=weights, device=gpu_name)
    side = gpu.input_size
    forward = gpu._features if spec == "builtin" else gpu._model.encode_image
    print(f"{gpu.id}: CPU {cpu.backend}, GPU {gpu.backend}, {default_threads()} cores")

    pixels = np.stack(
        [
            cpu.preprocess(imageio.decode(p.read_bytes(), min_side=side).image)
            for p in skimage_photos() + imagenet_photos()
        ]
    )
    reference = cpu.embed_images(pixels)
    for half in (False, True):
        vectors = l2_normalize(torch_forward(forward, pixels, gpu_name, half))
        cos = np.sum(vectors * reference, axis=1)
        overlap = neighbour_overlap(vectors, reference)
        print(
            f"  fidelity {'float16' if half else 'float32'} vs CPU, {len(pixels)} real photos: "
            f"lowest cosine {cos.min():.4f}, top-10 overlap {overlap:.3f}"
        )

    random = np.random.default_rng(0).standard_normal((256, 3, side, side)).astype(np.float32)
    e_cpu = rate(cpu.embed_images, random[:64], 2)
    print(f"  E CPU ({cpu.backend})      {e_cpu:8.1f} img/s")
    for batch in (64, 256):
        on_gpu = torch.from_numpy(random[:batch]).to(gpu_name)
        for half in (False, True):
            e = rate(lambda x, h=half: torch_forward(forward, x, gpu_name, h), on_gpu, 10)
            kind = "float16" if half else "float32"
            print(f"  E GPU {kind} batch {batch:3d}   {e:8.1f} img/s  ({e / e_cpu:.0f}x the CPU)")

    decoder = gpu.jpeg_decoder()
    if decoder is not None:
        jobs = [JpegJob(p.read_bytes(), 1, True, 256) for p in paths[:64]]
        d = rate(decoder.prepare, jobs, 3)
        print(f"  D nvJPEG batch of 64, input + thumbnail {d:8.1f} img/s")
    for p in paths:  # in the page cache for every run alike
        p.read_bytes()
    runs = (
        ("all on the CPU", cpu, IndexOptions()),
        ("GPU model, CPU decoding", gpu, IndexOptions(decode_on_gpu=False)),
        ("GPU model and nvJPEG decoding", gpu, IndexOptions(decode_on_gpu=True)),
    )
    for name, encoder, opts in runs:
        print(f"  P {name:30s} {pipeline(paths, encoder, opts, work):8.1f} img/s")
    everyone = os.sched_getaffinity(0)
    for cores in few_cores:  # a smaller computer with the same GPU: fewer decode threads
        os.sched_setaffinity(0, sorted(everyone)[:cores])
        try:
            cpu_decoding = pipeline(paths, gpu, IndexOptions(decode_on_gpu=False), work)
            nvjpeg = pipeline(paths, gpu, IndexOptions(decode_on_gpu=True), work)
        finally:
            os.sched_setaffinity(0, everyone)
        print(
            f"  P on {cores} cores: CPU decoding {cpu_decoding:.1f} img/s, nvJPEG {nvjpeg:.1f} "
            f"img/s ({nvjpeg / cpu_decoding:.2f}x)"
        )


def pipeline(paths: list[Path], encoder, opts: IndexOptions, work: Path) -> float:
    """Images/s of a whole indexing run into a fresh store."""
    store_dir = work / "store"
    shutil.rmtree(store_dir, ignore_errors=True)
    with Store(store_dir) as store:
        report = index_folder(paths[0].parent, store, encoder, options=opts)
    assert report.encoded == len(paths) and not report.failed, report
    return len(paths) / report.seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--models", nargs="+", default=["builtin", "clip"])
    ap.add_argument("--few-cores", type=int, nargs="*", default=[4, 8], help="also run on N cores")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench/gpu.py needs a CUDA GPU")
    print(torch.cuda.get_device_name(), f"torch {torch.__version__}")
    with tempfile.TemporaryDirectory(prefix="vs-gpu-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        paths = camera_jpegs(work / "camera", args.images)
        mb = sum(p.stat().st_size for p in paths) / 1e6
        print(f"made {len(paths)} 4000x3000 JPEGs, {mb:.0f} MB ({time.perf_counter() - t:.0f} s)")
        for spec in args.models:
            weights = None
            if spec == "clip":
                import open_clip

                weights = work / "vit-b-32-random.pt"
                torch.save(open_clip.create_model("ViT-B-32").state_dict(), weights)
            bench_model(spec, weights, paths, work / "cache", work, args.few_cores)


if __name__ == "__main__":
    main()
