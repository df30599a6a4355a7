"""Indexing: incremental, moves, deletions, cancel/resume, atomic batches (fake encoder)."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import distinct_images
from tests.fakes import FakeEncoder
from visualsearch.core.collection import Collection
from visualsearch.core.indexing import IndexOptions, index_folder
from visualsearch.core.progress import CancelToken
from visualsearch.core.store import FileRecord, Store


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "pics"
    distinct_images(d, 24, size=96)
    return d


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store", root=tmp_path / "pics")
    yield s
    s.close()


def test_first_run_then_unchanged_run_only_stats(folder, store):
    enc = FakeEncoder()
    r1 = index_folder(folder, store, enc, options=IndexOptions(batch_size=5))
    assert (r1.new, r1.encoded, r1.failed) == (24, 24, 0)
    assert store.counts()["thumbnails"] == 24
    r2 = index_folder(folder, store, enc)
    assert (r2.unchanged, r2.encoded, r2.reused, r2.new) == (24, 0, 0, 0)
    assert enc.images_seen == 24


def test_changed_moved_and_deleted_files(folder, store):
    enc = FakeEncoder()
    index_folder(folder, store, enc)
    # changed content
    distinct_images(folder / "tmp", 30, size=96)[-1].replace(folder / "img_000.jpg")
    shutil.rmtree(folder / "tmp")
    # moved into a subfolder and renamed
    (folder / "sub").mkdir()
    (folder / "img_001.jpg").rename(folder / "sub" / "renamed.jpg")
    # deleted
    (folder / "img_002.jpg").unlink()
    seen_before = enc.images_seen
    r = index_folder(folder, store, enc)
    assert r.changed == 1 and r.new == 1 and r.removed == 2  # img_001 + img_002 left
    assert r.moved == 1 and r.reused == 1
    assert r.encoded == 1 and enc.images_seen - seen_before == 1
    col = Collection(folder, store, enc)
    assert "img_002.jpg" not in col.paths and "img_001.jpg" not in col.paths
    assert "sub/renamed.jpg" in col.paths
    # the moved file keeps its thumbnail (keyed by content)
    assert store.thumbnail("sub/renamed.jpg") is not None


def test_copies_share_one_vector(folder, store):
    shutil.copy2(folder / "img_003.jpg", folder / "copy_of_3.jpg")
    enc = FakeEncoder()
    r = index_folder(folder, store, enc)
    assert r.indexed == 25
    assert enc.images_seen == 24  # the copy is encoded once with its original


def test_cancel_keeps_committed_batches_and_resumes(folder, store):
    enc = FakeEncoder()
    token = CancelToken()
    reports = []

    def on_report(done, total, message):
        reports.append(done)
        if done >= 8:
            token.cancel()

    token._on_report = on_report
    r1 = index_folder(folder, store, enc, token, IndexOptions(batch_size=4, workers=1))
    assert r1.cancelled
    committed = store.vector_counts().get(enc.id, 0)
    assert 8 <= committed < 24
    r2 = index_folder(folder, store, enc)
    assert not r2.cancelled
    assert r2.unchanged == committed and r2.encoded == 24 - committed
    assert store.vector_counts()[enc.id] == 24


def test_a_failing_batch_commits_nothing(store):
    good = FileRecord("a.jpg", 1, 1, "h1", 1, 1, "JPEG", None, None)
    bad = FileRecord("b.jpg", 1, 1, "h2", 1, 1, "JPEG", None, None)
    with pytest.raises(sqlite3.Error):
        # a vector that is not bytes-able as float16 breaks the statement half-way
        store.commit_batch("m", [good, bad], {"h1": np.full(4, 0.5)}, {"h2": object()})
    assert store.file_records() == {}
    assert store.known_hashes("m") == set()


def test_vanished_linked_subfolder_is_kept_until_forgotten(folder, store, tmp_path):
    enc = FakeEncoder()
    (folder / "locked").mkdir()
    shutil.copy2(folder / "img_004.jpg", folder / "locked" / "x.jpg")
    index_folder(folder, store, enc)
    # an unmounted drive behind a link: the link dangles, its files are not reachable
    shutil.rmtree(folder / "locked")
    os.symlink(tmp_path / "unmounted-drive", folder / "locked")
    r = index_folder(folder, store, enc)
    assert r.removed == 0 and r.missing_kept == 1
    assert "locked/x.jpg" in store.file_records()
    r = index_folder(folder, store, enc, options=IndexOptions(forget_missing=True))
    assert r.removed == 1
    assert "locked/x.jpg" not in store.file_records()


def test_model_switch_keeps_both_models_vectors(folder, store):
    a, b = FakeEncoder(), FakeEncoder()
    b.id = "fake-v2"
    index_folder(folder, store, a)
    r = index_folder(folder, store, b)
    assert r.encoded == 24  # nothing of v2 yet
    assert store.vector_counts() == {"fake-v1": 24, "fake-v2": 24}
    assert index_folder(folder, store, a).encoded == 0  # switching back is instant


def test_index_segments_are_built_during_and_after_ingest_and_reused(folder, store):
    from visualsearch.core import segments

    enc = FakeEncoder()
    index_folder(folder, store, enc, options=IndexOptions(annoy_threshold=10, seal_at=16))
    built = sorted(store.directory.glob("seg-*.ann"))
    assert len(built) == 1  # 16 sealed during the run; the last 8 are searched exactly
    _, manifest = segments.read_manifest(store, enc.id)
    assert [s.n for s in manifest.segments] == [16]
    (folder / "img_005.jpg").unlink()
    index_folder(folder, store, enc, options=IndexOptions(annoy_threshold=10, seal_at=16))
    # one file gone: the segment stays, its row is a tombstone (no rebuild)
    assert sorted(store.directory.glob("seg-*.ann")) == built
    col = Collection(folder, store, enc, index_threshold=10)
    assert col.index.kind == "segments" and len(col) == 23 and len(col.index.fresh) == 8


# -- issue 10: copies in one run, hostile files, hung reads, Ctrl+C ---------------------------


def test_identical_files_in_one_run_are_encoded_once(tmp_path, store):
    folder = tmp_path / "pics"
    (src,) = distinct_images(folder, 1, size=96)
    for i in range(199):
        shutil.copy(src, folder / f"copy_{i:03d}.jpg")
    enc = FakeEncoder()
    r = index_folder(folder, store, enc)
    assert enc.images_seen == 1
    assert (r.encoded, r.reused, r.failed) == (1, 199, 0)
    assert len(Collection(folder, store, enc).paths) == 200


def test_deep_and_space_ending_names_are_indexed(tmp_path, store):
    folder = tmp_path / "pics"
    a, b = distinct_images(folder, 2, size=96)
    a.rename(folder / "photo.jpg ")
    rel = "/".join(["d" * 200] * 24 + ["deep.jpg"])  # deeper than PATH_MAX
    fd = os.open(folder, os.O_RDONLY)
    for _ in range(24):
        os.mkdir("d" * 200, dir_fd=fd)
        fd, parent = os.open("d" * 200, os.O_RDONLY, dir_fd=fd), fd
        os.close(parent)
    os.rename(b, "deep.jpg", dst_dir_fd=fd)
    os.close(fd)
    r = index_folder(folder, store, FakeEncoder())
    assert (r.encoded, r.failed, r.problems) == (2, 0, [])
    assert set(store.file_records()) == {"photo.jpg ", rel}


def _run_script(script: str, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `script` in a fresh interpreter; a hang there fails the test instead of hanging it."""
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


ROOT = Path(__file__).parents[2]

_SWAP_SCRIPT = """
import os, resource, sys
from pathlib import Path
from tests.fakes import FakeEncoder
from visualsearch.core.indexing import IndexOptions, index_folder
from visualsearch.core.store import Store

resource.setrlimit(resource.RLIMIT_AS, (4 << 30, resource.getrlimit(resource.RLIMIT_AS)[1]))
folder = Path(sys.argv[1])
swapped = []

def swap(records):  # after the first batch: the scan has seen two regular files
    if not swapped:
        swapped.append(True)
        (folder / "img_020.jpg").unlink()
        os.mkfifo(folder / "img_020.jpg")  # a pipe no one writes to
        (folder / "img_021.jpg").unlink()
        os.symlink("/dev/zero", folder / "img_021.jpg")  # endless zeros
opts = IndexOptions(batch_size=2, workers=1)
r = index_folder(folder, Store(Path(sys.argv[2]), root=folder), FakeEncoder(), None, opts, swap)
print(r.encoded, dict(r.errors))
"""


def test_files_swapped_for_a_pipe_or_dev_zero_after_the_scan_are_refused(folder, tmp_path):
    out = _run_script(_SWAP_SCRIPT, folder, tmp_path / "store2")
    assert out.returncode == 0, out.stderr
    encoded, errors = out.stdout.split(" ", 1)
    assert encoded == "22"
    assert "pipe" in errors and "device" in errors, errors


_STUCK_SCRIPT = """
import sys, threading
from pathlib import Path
from tests.fakes import FakeEncoder
from visualsearch.core.indexing import IndexOptions, index_folder
from visualsearch.core.store import Store

class StuckOnOne(FakeEncoder):
    # never returns for the 100×60 picture: a thread as stuck as a read from a hung drive
    def preprocess(self, image):
        if image.size == (100, 60):
            print("stuck", flush=True)
            threading.Event().wait()
        return super().preprocess(image)

folder, store_dir = Path(sys.argv[1]), Path(sys.argv[2])
opts = IndexOptions(file_timeout=float(sys.argv[3])) if len(sys.argv) > 3 else IndexOptions()
store = Store(store_dir, root=folder)
try:
    r = index_folder(folder, store, StuckOnOne(), options=opts)
except KeyboardInterrupt:
    sys.exit(130)
print(r.encoded, r.failed, len(store.file_records()), r.errors[0][1], sep="|")
"""


def _with_stuck_file(folder):
    from PIL import Image

    Image.new("RGB", (100, 60), (200, 30, 40)).save(folder / "stuck.jpg")


def test_a_file_that_never_finishes_is_skipped_after_the_timeout(folder, tmp_path):
    _with_stuck_file(folder)
    out = _run_script(_STUCK_SCRIPT, folder, tmp_path / "store2", 1.0)
    assert out.returncode == 0, out.stderr
    encoded, failed, recorded, reason = out.stdout.strip().split("\n")[-1].split("|")
    assert (encoded, failed) == ("24", "1")
    assert recorded == "24"  # not recorded as failed: the next run tries it again
    assert "no answer after 1 s" in reason


def test_ctrl_c_ends_a_run_with_a_stuck_thread(folder, tmp_path):
    _with_stuck_file(folder)
    with subprocess.Popen(
        [sys.executable, "-c", _STUCK_SCRIPT, folder, tmp_path / "store2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    ) as proc:
        try:
            assert proc.stdout.readline().strip() == "stuck"
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 130
        finally:
            proc.kill()
            proc.wait()


class _CopyWithoutItsFirst:
    """A cluster that sends a copy waiting for a first file it never sends back."""

    def prepare(self, root, todo, known, have_thumbs, opts, progress):
        from visualsearch.core.indexing import Claims, embed_prepared, prepare_file

        claims, encoder = Claims(), FakeEncoder()
        first, copy = (
            prepare_file(root, f, encoder, known, have_thumbs, opts, claims) for f in todo
        )
        embed_prepared([first], encoder, opts)
        assert first.claimed and copy.waits
        yield copy  # and the first never comes


def test_a_copy_whose_first_never_comes_back_is_left_to_the_next_run(tmp_path, store):
    """Held to the end of a cluster's stream, such a copy was dropped without a word."""
    (tmp_path / "d").mkdir()
    [photo] = distinct_images(tmp_path / "d", 1, size=64)
    shutil.copy2(photo, tmp_path / "d" / "z-copy.jpg")
    report = index_folder(tmp_path / "d", store, FakeEncoder(), remote=_CopyWithoutItsFirst())
    assert report.failed == 1 and "tried again next run" in report.errors[0][1]
    assert store.file_records() == {}  # nothing recorded: the next run reads it again
    again = index_folder(tmp_path / "d", store, FakeEncoder())
    assert again.encoded == 1 and again.reused == 1
