"""Indexing: incremental, moves, deletions, cancel/resume, atomic batches (fake encoder)."""

import os
import shutil
import sqlite3

import numpy as np
import pytest

from tests.conftest import distinct_images
from tests.fakes import FakeEncoder
from visualsearch.core.collection import Collection
from visualsearch.core.pipeline import IndexOptions, index_folder
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


def test_annoy_index_is_built_after_ingest_and_reused(folder, store):
    from visualsearch.core.index import index_path, open_index

    enc = FakeEncoder()
    index_folder(folder, store, enc, options=IndexOptions(annoy_threshold=10))
    path = index_path(store.directory, enc.id)
    assert path.exists()
    stamp = path.stat().st_mtime_ns
    index = open_index(store, enc.id, threshold=10)
    assert index.kind == "annoy" and path.stat().st_mtime_ns == stamp  # loaded, not rebuilt
    (folder / "img_005.jpg").unlink()
    index_folder(folder, store, enc, options=IndexOptions(annoy_threshold=10))
    assert path.stat().st_mtime_ns != stamp  # the collection changed: rebuilt
    assert len(open_index(store, enc.id, threshold=10)) == 23
