"""Indexing on a Ray cluster against a local run on this one machine, measured in one run.

Prints images/s of a whole indexing run (fresh store) of the same photos, locally and with
`--ray` on a local Ray instance of this machine's cores (started before timing: its start
is printed apart), the overhead Ray adds per image, and how far added nodes would take
it: each node adds what this one encodes through Ray, up to what the driver's one writer
commits (measured here by committing the same rows without encoding).

    python bench/ray_ingest.py [--images 300]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from visualsearch.core.encoders import load_encoder
from visualsearch.core.encoders.base import default_threads
from visualsearch.core.indexing import index_folder
from visualsearch.core.ray_ingest import RayEncoding, RayOptions
from visualsearch.core.sample import skimage_photos
from visualsearch.core.store import Store


def make_photos(dest: Path, n: int) -> list[Path]:
    """`n` different 1600×1200 JPEGs (~0.4 MB): real photos, shifted, with noise."""
    dest.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sources = [Image.open(p).convert("RGB").resize((1700, 1300)) for p in skimage_photos()[:8]]
    paths = []
    for i in range(n):
        x, y = rng.integers(0, 100, 2)
        arr = np.asarray(sources[i % len(sources)].crop((x, y, x + 1600, y + 1200)), np.int16)
        arr = arr + rng.normal(0, 4, arr.shape).astype(np.int16)
        path = dest / f"{i:05d}.jpg"
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def timed_run(folder: Path, store_dir: Path, encoder, remote=None) -> tuple[float, dict]:
    """(seconds, the store's records) of indexing `folder` into a fresh store."""
    shutil.rmtree(store_dir, ignore_errors=True)
    with Store(store_dir) as store:
        t = time.perf_counter()
        report = index_folder(folder, store, encoder, remote=remote)
        seconds = time.perf_counter() - t
        assert report.encoded + report.reused == report.scanned and not report.failed, report
        return seconds, store.file_records()


def cost(folder: Path, quarter: Path, work: Path, encoder, remote=None) -> tuple[float, float]:
    """(ms per image, seconds once per run): from runs over the folder and over a quarter
    of it (Ray Data hands results back in whole blocks, so rates within a run mislead)."""
    n, small = len(list(folder.iterdir())), len(list(quarter.iterdir()))
    whole, _ = timed_run(folder, work / "store", encoder, remote)
    part, _ = timed_run(quarter, work / "store", encoder, remote)
    per_image = (whole - part) / (n - small)
    return per_image * 1000, whole - n * per_image


def commit_ceiling(records, store_dir: Path, encoder, source: Path) -> float:
    """Rows/s the driver commits (vectors and thumbnails taken from a finished store)."""
    with Store(source) as done:
        rows = [(r, done.vector(encoder.id, r.path), done.thumbnail(r.path)) for r in records]
    shutil.rmtree(store_dir, ignore_errors=True)
    with Store(store_dir) as store:
        t = time.perf_counter()
        for i in range(0, len(rows), 8):
            part = rows[i : i + 8]
            store.commit_batch(
                encoder.id,
                [r for r, _, _ in part],
                {r.hash: v for r, v, _ in part},
                {r.hash: j for r, _, j in part},
            )
        return len(rows) / (time.perf_counter() - t)


def main() -> None:
    import ray

    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=300)
    args = ap.parse_args()
    cores = default_threads()
    with tempfile.TemporaryDirectory(prefix="vs-ray-") as tmp:
        work = Path(tmp)
        folder = work / "photos"
        paths = make_photos(folder, args.images)
        mb = sum(p.stat().st_size for p in paths) / 1e6
        print(f"{len(paths)} photos of 1600x1200, {mb:.0f} MB; {cores} cores")
        encoder = load_encoder("builtin", work / "cache")
        timed_run(folder, work / "warm", encoder)  # the one-time model export, off the clock
        quarter = work / "quarter"
        quarter.mkdir()
        for p in paths[: len(paths) // 4]:
            os.link(p, quarter / p.name)
        n = len(paths)
        local_s, records = timed_run(folder, work / "local", encoder)
        local_ms, local_once = cost(folder, quarter, work, encoder)

        t = time.perf_counter()
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
        started = time.perf_counter() - t
        one = RayEncoding(
            "builtin", None, work / "cache", RayOptions(actors=1, cpus_per_actor=cores)
        )
        each = RayEncoding("builtin", None, work / "cache", RayOptions())
        each_s, each_records = timed_run(folder, work / "ray", encoder, each)
        one_s, one_records = timed_run(folder, work / "ray", encoder, one)
        ray_ms, ray_once = cost(folder, quarter, work, encoder, one)
        ray.shutdown()
        hashes = {p: r.hash for p, r in records.items()}
        assert {p: r.hash for p, r in one_records.items()} == hashes
        assert {p: r.hash for p, r in each_records.items()} == hashes

        print(f"  local run                       {n / local_s:6.1f} img/s")
        for name, seconds in (
            (f"{cores} actors of 1 CPU", each_s),
            (f"1 actor of {cores} CPUs", one_s),
        ):
            print(f"  --ray, {name:22s} {n / seconds:6.1f} img/s ({local_s / seconds:.2f}x)")
        print(
            f"  per image: local {local_ms:.1f} ms, --ray {ray_ms:.1f} ms "
            f"(Ray adds {ray_ms - local_ms:.1f} ms); once per run: local {local_once:.1f} s, "
            f"--ray {ray_once:.1f} s (actors, model); Ray's start {started:.1f} s"
        )
        ray_rate = 1000 / ray_ms
        ceiling = commit_ceiling(list(records.values()), work / "commit", encoder, work / "local")
        print(f"  driver commits       {ceiling:7.0f} img/s (the one writer's ceiling)")
        for nodes in (2, 4, 8, 16):
            print(f"  projected, {nodes:2d} such nodes {min(nodes * ray_rate, ceiling):7.0f} img/s")


if __name__ == "__main__":
    sys.exit(main())
