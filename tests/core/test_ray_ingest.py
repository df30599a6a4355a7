"""Encoding on a Ray cluster into the same store (`index --ray`): a local Ray instance of
2 CPUs, real photos, the real built-in model, the real store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import distinct_images
from visualsearch.cli import main
from visualsearch.core.indexing import IndexOptions, index_folder
from visualsearch.core.progress import NullProgress
from visualsearch.core.store import Store

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install '.[cluster]'")

from visualsearch.core.ray_ingest import ClusterFailed, RayEncoding, RayOptions  # noqa: E402


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the module (RayEncoding starts its own when none runs)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, photos_dir) -> Path:
    """The real photos in two folders, a copy of one under another name, and a file that
    is no image."""
    d = tmp_path_factory.mktemp("ray-photos")
    for i, p in enumerate(sorted(photos_dir.iterdir())):
        sub = d / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        shutil.copy2(p, sub / p.name)
    shutil.copy2(photos_dir / "chelsea.png", d / "the same cat.png")
    (d / "notes.jpg").write_text("not an image")
    return d


def _remote(app_paths, **options) -> RayEncoding:
    return RayEncoding("builtin", None, app_paths.cache_dir, RayOptions(**options))


def test_a_ray_run_stores_what_a_local_run_stores(
    ray_instance, folder, builtin_encoder, app_paths, tmp_path
):
    with Store(tmp_path / "local") as store:
        local = index_folder(folder, store, builtin_encoder)
        local_records = store.file_records()
        local_vectors = {p: store.vector(builtin_encoder.id, p) for p in local_records}
        local_thumbs = store.thumbnail_hashes()
    with Store(tmp_path / "ray") as store:
        remote = index_folder(folder, store, builtin_encoder, remote=_remote(app_paths))
        records = store.file_records()
        vectors = {p: store.vector(builtin_encoder.id, p) for p in records}
        thumbs = store.thumbnail_hashes()
        again = index_folder(folder, store, builtin_encoder, remote=_remote(app_paths))
    # the copy of the cat is read by the actor that has its first file, and waits for it,
    # as in a local run: one content, encoded once
    assert (local.encoded, local.reused, local.failed) == (36, 1, 1)
    assert (remote.encoded, remote.reused, remote.failed) == (36, 1, 1)
    assert records == local_records  # hashes, sizes, dates, and the same reason for notes.jpg
    assert "not an image" in records["notes.jpg"].error
    for path, vector in vectors.items():
        if records[path].error is None:
            np.testing.assert_allclose(vector, local_vectors[path], atol=1e-3)
    assert thumbs == local_thumbs
    # nothing left to encode: the cluster is not even asked
    assert again.encoded == 0 and again.unchanged == len(records)


def test_blocks_with_no_thumbnail_or_no_usable_file(
    ray_instance, tmp_path, builtin_encoder, app_paths
):
    """Blocks whose files all need no thumbnail (moved ones) or are all unusable: Arrow
    turned such a block's empty thumbnail column into NaN, stored as 4 bytes over the
    good thumbnails, or ending the run on a NOT NULL constraint."""
    d = tmp_path / "lib"
    distinct_images(d, 6, size=96)
    remote = _remote(app_paths, files_per_block=1)  # a block per file
    with Store(tmp_path / "store") as store:
        index_folder(d, store, builtin_encoder, remote=remote)
        thumbs = {h: store.thumbnail_by_hash(h) for h in store.thumbnail_hashes()}
        (d / "moved").mkdir()
        for p in d.glob("*.jpg"):
            p.rename(d / "moved" / p.name)
        (d / "a.jpg").write_text("no image")
        (d / "b.jpg").write_bytes(b"")
        report = index_folder(d, store, builtin_encoder, remote=remote)
        assert (report.moved, report.failed, report.encoded) == (6, 2, 0)
        assert {h: store.thumbnail_by_hash(h) for h in store.thumbnail_hashes()} == thumbs
        assert all(len(jpeg) > 100 for jpeg in thumbs.values())


class _StopAfterFirstCommit(NullProgress):
    def __init__(self) -> None:
        self.stop = False

    def cancelled(self) -> bool:
        return self.stop


def test_an_interrupted_ray_run_resumes(ray_instance, tmp_path, builtin_encoder, app_paths):
    images = tmp_path / "many"
    distinct_images(images, 60, size=160)
    progress = _StopAfterFirstCommit()
    opts = IndexOptions(batch_size=8)
    remote = _remote(app_paths, files_per_block=4)
    with Store(tmp_path / "store") as store:

        def committed(_records) -> None:
            progress.stop = True

        first = index_folder(images, store, builtin_encoder, progress, opts, committed, remote)
        kept = store.counts()["files"]
        assert first.cancelled and first.encoded == kept == 8
        second = index_folder(images, store, builtin_encoder, options=opts, remote=remote)
        assert second.encoded == 60 - kept and second.unchanged == kept
        assert len(store.known_hashes(builtin_encoder.id)) == 60


def test_workers_that_cannot_load_the_model_fail_the_run_in_one_line(
    ray_instance, tmp_path, builtin_encoder, app_paths
):
    """A checkpoint the nodes do not have: the run stops with the workers' reason (no
    endless restarts, no traceback of Ray's), and nothing half-done is kept."""
    images = tmp_path / "few"
    distinct_images(images, 4, size=96)
    missing = RayEncoding("clip", tmp_path / "not-here.pt", app_paths.cache_dir, RayOptions())
    with Store(tmp_path / "store") as store:
        with pytest.raises(ClusterFailed, match=r"\(ModelUnavailable: checkpoint file not found"):
            index_folder(images, store, builtin_encoder, remote=missing)
        assert store.counts()["files"] == 0


def test_an_address_where_no_cluster_answers_fails_at_once(tmp_path, photos_dir, capsys):
    """ray.init waited without end for a cluster at an address where none runs."""
    rc = main(["index", str(photos_dir), "--ray", "127.0.0.1:1", "--store", str(tmp_path / "s")])
    assert rc == 1 and "no Ray cluster answers at 127.0.0.1:1" in capsys.readouterr().err


def test_gpu_actors_on_a_cluster_without_gpus_fail_at_once(
    ray_instance, tmp_path, builtin_encoder, app_paths
):
    distinct_images(tmp_path / "few", 2, size=64)
    remote = _remote(app_paths, gpus_per_actor=1)
    with Store(tmp_path / "store") as store, pytest.raises(ClusterFailed, match="has no GPU"):
        index_folder(tmp_path / "few", store, builtin_encoder, remote=remote)


def test_actors_asked_for_share_a_nodes_cpus(ray_instance):
    """--ray-actors 2 on one node of 2 CPUs gave each actor both: one ran, the other waited."""
    from visualsearch.core.ray_ingest import _layout

    assert _layout(RayOptions()) == (1, 2.0)  # one actor per node, with all its CPUs
    assert _layout(RayOptions(actors=2)) == (2, 1.0)
    assert _layout(RayOptions(actors=3)) == (3, 1.0)  # at least one CPU each
    assert _layout(RayOptions(actors=2, cpus_per_actor=2)) == (2, 2.0)  # as told


def _session_processes(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.getsid(int(entry.name)) == sid:
                pids.append(int(entry.name))
        except (ProcessLookupError, PermissionError):
            pass
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_cli_killed_mid_run_resumes(tmp_path, app_paths):
    """`visualsearch index --ray` killed with SIGKILL while the cluster encodes: every batch
    committed stays, and the same command encodes only the rest."""
    images = tmp_path / "photos"
    distinct_images(images, 240, size=200)
    store = tmp_path / "store"
    command = [sys.executable, "-m", "visualsearch", "index", str(images), "--ray"]
    command += ["--store", str(store), "--json"]
    run = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        committed = 0
        deadline = time.monotonic() + 120
        while committed == 0 and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.1)
            try:
                with sqlite3.connect(f"file:{store / 'catalog.sqlite'}?mode=ro", uri=True) as db:
                    committed = db.execute("SELECT count(*) FROM vectors").fetchone()[0]
            except sqlite3.Error:  # not made yet
                pass
        assert run.poll() is None and 0 < committed < 240, committed
    finally:  # the run, and the local Ray instance it started (its agents outlive it)
        run.kill()
        run.wait()
        for pid in _session_processes(run.pid):
            os.kill(pid, signal.SIGKILL)
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(again.stdout)
    with Store(store) as s:
        kept = len(s.known_hashes("builtin-effnetlite2-v1"))
        assert kept == 240
    assert report["encoded"] == 240 - report["unchanged"] and report["unchanged"] >= committed
    assert report["backend"] == "ray"  # not asked of the driver's model


def test_the_driver_never_loads_the_image_network(ray_instance, tmp_path, app_paths, photos_dir):
    """The driver only commits: it loaded the image network (OpenVINO: seconds, and
    memory) to learn a batch size, and again to say what had run it."""
    from visualsearch.core.encoders.builtin import BuiltinEncoder

    images = tmp_path / "few"
    images.mkdir()
    for p in sorted(photos_dir.iterdir())[:6]:
        shutil.copy2(p, images / p.name)
    driver = BuiltinEncoder(app_paths.cache_dir, device="cpu")
    with Store(tmp_path / "store") as store:
        report = index_folder(images, store, driver, remote=_remote(app_paths))
        assert report.encoded == 6 and len(store.known_hashes(driver.id)) == 6
    assert not driver._images_ready


def test_without_ray_the_cli_says_how_to_install(monkeypatch, photos_dir, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    rc = main(["index", str(photos_dir), "--ray", "--store", str(tmp_path / "s")])
    assert rc == 1
    assert "pip install 'visualsearch[cluster]'" in capsys.readouterr().err
