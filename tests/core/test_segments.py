"""The vector file (memory-mapped, appended to) and the index segments built beside it."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from visualsearch.core import segments
from visualsearch.core.collection import Collection
from visualsearch.core.encoders.base import l2_normalize
from visualsearch.core.store import FileRecord, Store
from visualsearch.core.vector_file import for_store, live_files
from visualsearch.core.vector_index import open_index

DIM = 32


class VectorsOnly:
    """The encoder surface Collection needs for vector queries."""

    id = "m"
    dim = DIM


def clustered(n, seed=0, dim=DIM):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 50), dim))
    rows = centres[rng.integers(0, len(centres), n)] + 0.4 * rng.standard_normal((n, dim))
    return l2_normalize(rows.astype(np.float32))


def fill(store, vectors, start=0):
    records = [
        FileRecord(f"{start + i:06d}.jpg", 1, 1, f"h{start + i}") for i in range(len(vectors))
    ]
    store.commit_batch("m", records, {r.hash: v for r, v in zip(records, vectors, strict=True)})
    return records


def open_collection(store, threshold=100):
    return Collection(store.directory, store, VectorsOnly(), index_threshold=threshold)


def name(i):
    return f"{i:06d}.jpg"


def top(col, vector, k=1):
    return [h.path.name for h in col.search_vector(vector, k)]


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store")
    yield s
    s.close()


# -- the vector file -------------------------------------------------------------------


def test_the_vector_file_appends_only_contents_it_has_not_seen(store):
    """Every change used to load every vector from the catalog into a float32 copy
    (3.6 s at 100k): now a change appends its own rows and maps the rest."""
    vectors = clustered(300)
    fill(store, vectors[:200])
    col = open_collection(store, threshold=10**9)
    assert len(col) == 200 and col.index.kind == "exact"
    size = col.vectors.vectors_path.stat().st_size
    assert size == 200 * DIM * 2
    np.testing.assert_allclose(col.vectors_of(np.arange(200)), vectors[:200], atol=1e-3)

    fill(store, vectors[200:], start=200)
    store.remove_paths([name(3)])
    col = open_collection(store, threshold=10**9)
    assert col.vectors.vectors_path.stat().st_size == size + 100 * DIM * 2  # 100 rows more
    assert len(col) == 299 and name(3) not in col
    assert top(col, vectors[250]) == [name(250)]
    assert name(3) not in top(col, vectors[3], 20)


def test_a_killed_append_leaves_rows_no_one_counts_and_the_next_append_cuts_them(store):
    vectors = clustered(120)
    fill(store, vectors[:100])
    col = open_collection(store, threshold=10**9)
    vf = col.vectors
    with open(vf.vectors_path, "ab") as fh:  # a vector written, its hash never
        fh.write(np.ones(DIM, np.float16).tobytes())
    with open(vf.hashes_path, "ab") as fh:  # half a hash
        fh.write(b"\x01" * 7)
    col = open_collection(store, threshold=10**9)
    assert len(col.vectors) == 100 and len(col) == 100
    fill(store, vectors[100:], start=100)
    col = open_collection(store, threshold=10**9)
    assert len(col.vectors) == 120
    assert col.vectors.vectors_path.stat().st_size == 120 * DIM * 2
    assert [top(col, vectors[i]) for i in (5, 110)] == [[name(5)], [name(110)]]


def test_a_damaged_row_is_never_returned_and_is_filled_again_from_the_catalog(store):
    """Bytes of the file overwritten (NaN): the row fails the unit-length check and is
    left out; it is then marked, and the next open appends the catalog's vector again
    (the image was unsearchable for good before)."""
    vectors = clustered(3000, seed=4)
    fill(store, vectors)
    segments.maintain_index(store, "m", DIM, threshold=100)
    for threshold in (100, 10**9):  # through the segments, then exact
        col = open_collection(store, threshold)
        row = int(col.rows[col.paths.index(name(42))])
        with open(col.vectors.vectors_path, "r+b") as fh:
            fh.seek(row * DIM * 2)
            fh.write(np.full(DIM, np.nan, np.float16).tobytes())
        col = open_collection(store, threshold)
        found = top(col, vectors[42], 5)
        assert name(42) not in found and len(found) == 5
        repaired = open_collection(store, threshold)
        assert int(repaired.rows[repaired.paths.index(name(42))]) != row
        assert top(repaired, vectors[42]) == [name(42)]
        assert row in np.fromfile(repaired.vectors.bad_path, "<i8")


def test_garbage_rows_never_crowd_out_an_exact_scan(store, monkeypatch):
    """Large finite garbage in many rows scored above every real image on the chunked
    exact path (an old store before its segments) and half the queries came back empty."""
    from visualsearch.core import vector_index

    monkeypatch.setattr(vector_index, "IN_MEMORY_ROWS", 10)
    vectors = clustered(400, seed=12)
    fill(store, vectors)
    col = open_collection(store, threshold=10**9)
    damaged = set(range(0, 400, 13))
    with open(col.vectors.vectors_path, "r+b") as fh:
        for row in damaged:
            fh.seek(row * DIM * 2)
            fh.write(np.full(DIM, 60000, np.float16).tobytes())
    gone = {col.paths[i] for i, row in enumerate(col.rows.tolist()) if row in damaged}
    col = open_collection(store, threshold=10**9)
    assert col.index._copy is None  # the chunked scan
    for i in range(1, 400, 7):
        found = top(col, vectors[i], 10)
        assert len(found) == 10 and not gone & set(found)
        assert name(i) in gone or found[0] == name(i)


def test_a_catalog_made_again_never_inherits_the_old_vector_file(tmp_path):
    """Test hashes repeat across catalogs; a vector file keyed only by hash would answer
    with the old catalog's vectors."""
    a, b = clustered(300, seed=1), clustered(300, seed=2)
    store = Store(tmp_path / "s")
    fill(store, a)
    assert top(open_collection(store), a[5]) == [name(5)]
    store.close()
    for part in ("catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"):
        (tmp_path / "s" / part).unlink(missing_ok=True)
    store = Store(tmp_path / "s")
    fill(store, b)  # same names, same hashes, other vectors
    assert top(open_collection(store), b[5]) == [name(5)]
    store.close()


# -- segments ----------------------------------------------------------------------------


def segment_files(store):
    return sorted(p.name for p in store.directory.glob("seg-*.ann"))


def test_opening_never_builds_an_index(store):
    fill(store, clustered(500))
    col = open_collection(store, threshold=100)
    assert col.index.kind == "exact" and segment_files(store) == []
    assert top(col, col.vectors_of(np.array([7]))[0]) == [name(7)]


def test_new_images_are_sealed_and_segments_merged_by_size(store):
    vectors = clustered(4000, seed=3)
    fill(store, vectors[:2000])
    assert segments.maintain_index(store, "m", DIM, threshold=100, seal_at=500) == 1
    first = segment_files(store)
    fill(store, vectors[2000:2300], start=2000)  # fewer than seal_at: searched exactly
    assert segments.maintain_index(store, "m", DIM, threshold=100, seal_at=500) == 0
    col = open_collection(store)
    assert col.index.kind == "segments" and len(col.index.fresh) == 300
    assert segment_files(store) == first
    fill(store, vectors[2300:], start=2300)
    store.remove_paths([name(i) for i in range(0, 100)])
    # 1,700 fresh: a segment, which then takes in the first (2,000 ≤ 2 × 1,700)
    assert segments.maintain_index(store, "m", DIM, threshold=100, seal_at=500) >= 1
    col = open_collection(store)
    assert col.index.kind == "segments" and col.index.fresh is None
    assert len(col) == 3900 and len(segment_files(store)) == 1
    assert not set(segment_files(store)) & set(first)  # the merged ones are gone
    rng = np.random.default_rng(0)
    hits = [top(col, vectors[i]) == [name(i)] for i in rng.choice(range(100, 4000), 200)]
    assert np.mean(hits) >= 0.98
    for i in range(0, 100, 10):  # tombstones never come back
        assert all(int(h.path.stem) >= 100 for h in col.search_vector(vectors[i], 30))


def test_recall_against_exact_search(store):
    vectors = clustered(6000, seed=5)
    fill(store, vectors)
    segments.maintain_index(store, "m", DIM, threshold=100, seal_at=1000)
    col = open_collection(store)
    exact = open_collection(store, threshold=10**9)
    assert col.index.kind == "segments" and exact.index.kind == "exact"
    queries = clustered(50, seed=6)
    recall = [len(set(top(col, q, 10)) & set(top(exact, q, 10))) / 10 for q in queries]
    assert np.mean(recall) >= 0.95


def test_a_garbled_segment_is_not_used_and_is_rebuilt(store):
    """Flipped bytes in a segment file cost recall silently: its checksum no longer
    matches, so its rows are searched exactly until maintenance rebuilds it."""
    vectors = clustered(2000, seed=7)
    fill(store, vectors)
    segments.maintain_index(store, "m", DIM, threshold=100)
    (path,) = store.directory.glob("seg-*.ann")
    data = bytearray(path.read_bytes())
    for pos in np.random.default_rng(1).integers(len(data) // 4, len(data), 500):
        data[pos] ^= 0xFF
    path.write_bytes(bytes(data))
    col = open_collection(store)
    assert col.index.kind == "exact"  # no intact segment: every row exactly
    assert all(top(col, vectors[i]) == [name(i)] for i in range(0, 2000, 100))
    assert segments.maintain_index(store, "m", DIM, threshold=100) == 1
    assert not path.exists()
    col = open_collection(store)
    assert col.index.kind == "segments"
    assert all(top(col, vectors[i]) == [name(i)] for i in range(0, 2000, 100))


def test_an_unchanged_segment_is_hashed_once_per_process(store, monkeypatch):
    from visualsearch.core import integrity

    fill(store, clustered(600))
    segments.maintain_index(store, "m", DIM, threshold=100)
    open_collection(store)
    calls = []
    real = integrity.cache_checksum
    monkeypatch.setattr(integrity, "cache_checksum", lambda p: calls.append(p) or real(p))
    for _ in range(3):
        assert open_collection(store).index.kind == "segments"
    assert calls == []


# -- kill -9 ------------------------------------------------------------------------------

_MERGE = """
import sys, time
from pathlib import Path
from visualsearch.core import segments
from visualsearch.core.store import Store

class Slow:
    def report(self, done, total, message=""):
        Path(sys.argv[2]).touch()  # the new segment is half written: kill me now
        time.sleep(60)

    def cancelled(self):
        return False

store = Store(Path(sys.argv[1]))
segments.maintain_index(store, "m", 32, Slow(), threshold=100, seal_at=100)
"""


def test_kill_9_during_a_merge_loses_nothing_and_leaves_nothing(store, tmp_path):
    vectors = clustered(1500, seed=8)
    fill(store, vectors[:1000])
    segments.maintain_index(store, "m", DIM, threshold=100)
    before = segment_files(store)
    fill(store, vectors[1000:], start=1000)
    signal_file = tmp_path / "building"
    proc = subprocess.Popen(
        [sys.executable, "-c", _MERGE, str(store.directory), str(signal_file)],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    deadline = time.monotonic() + 60
    while not signal_file.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(store.directory.glob("seg-*.tmp"))  # what the kill left behind
    col = open_collection(store)  # the old manifest: the old segment + 500 exact
    assert segment_files(store)[: len(before)] == before
    assert len(col) == 1500 and sorted(col.paths) == [name(i) for i in range(1500)]
    for i in range(0, 1500, 50):  # each exactly once
        found = [h.path.name for h in col.search_vector(vectors[i], 20)]
        assert found[0] == name(i) and len(found) == len(set(found))
    assert segments.maintain_index(store, "m", DIM, threshold=100, seal_at=100) == 1
    assert not list(store.directory.glob("seg-*.tmp"))  # cleaned up by the next one
    assert len(segment_files(store)) == 1 and len(open_collection(store)) == 1500


def test_maintenance_by_a_second_process_waits_for_nobody(store):
    """One maintainer at a time: a second finds the lock taken and returns at once."""
    from filelock import FileLock

    fill(store, clustered(500))
    lock = FileLock(str(store.directory / f"{segments.prefix('m')}maintain.lock"))
    with lock:
        started = time.monotonic()
        assert segments.maintain_index(store, "m", DIM, threshold=100) == 0
        assert time.monotonic() - started < 5
    assert segments.maintain_index(store, "m", DIM, threshold=100) == 1


def test_live_files_and_rows(store):
    fill(store, clustered(10))
    paths, hashes = live_files(store)
    rows = for_store(store, "m", DIM).sync(store, hashes)
    assert paths == [name(i) for i in range(10)] and sorted(rows.tolist()) == list(range(10))
    assert open_index(store, for_store(store, "m", DIM), rows).kind == "exact"


_INDEX = """
import sys
from pathlib import Path
from tests.fakes import FakeEncoder
from visualsearch.core.indexing import IndexOptions, index_folder
from visualsearch.core.store import Store

store = Store(Path(sys.argv[2]))
options = IndexOptions(annoy_threshold=8, seal_at=8, batch_size=4, workers=1)
index_folder(Path(sys.argv[1]), store, FakeEncoder(), options=options)
"""


def test_kill_9_during_indexing_keeps_every_committed_image_exactly_once(tmp_path):
    """Segments are sealed while the run goes on; a kill between (or inside) them must
    leave the store, the vector file and the segments agreeing, and the next run adds
    only what was never committed."""
    from tests.conftest import distinct_images
    from tests.fakes import FakeEncoder
    from visualsearch.core.indexing import IndexOptions, index_folder

    pics, store_dir = tmp_path / "pics", tmp_path / "store"
    distinct_images(pics, 64, size=200)
    proc = subprocess.Popen(
        [sys.executable, "-c", _INDEX, str(pics), str(store_dir)],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(store_dir.glob("seg-*.ann"))) >= 2:  # sealed twice: kill it now
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"

    store, encoder = Store(store_dir), FakeEncoder()
    committed = store.counts()["files"]
    assert 16 <= committed < 64
    col = Collection(pics, store, encoder, index_threshold=8)
    assert len(col) == committed == len(set(col.paths))
    for i in range(len(col)):
        found = [h.path.name for h in col.search_vector(col.vectors_of(np.array([i]))[0], 20)]
        # (FakeEncoder gives every 8th of these images the same vector: a tie of 8)
        assert col.paths[i] in found and len(found) == len(set(found))

    options = IndexOptions(annoy_threshold=8, seal_at=8, batch_size=4)
    report = index_folder(pics, store, encoder, options=options)
    assert report.unchanged == committed and report.encoded == 64 - committed
    col = Collection(pics, store, encoder, index_threshold=8)
    assert len(col) == 64 == len(set(col.paths)) and col.index.kind == "segments"
    held = np.concatenate([rows for _, rows in col.index.sealed])
    fresh = col.index.fresh.rows if col.index.fresh is not None else np.zeros(0, np.int64)
    assert sorted(np.concatenate([held[col.index.live[held]], fresh]).tolist()) == sorted(
        col.live_rows.tolist()
    )  # every live row in exactly one place
    store.close()


def test_a_segment_sealed_after_the_file_was_mapped_is_used_not_a_crash(store):
    """The window's search thread maps the vector file while the indexing thread
    appends rows and seals them into a segment: the segment names rows beyond that map."""
    vectors = clustered(700, seed=9)
    fill(store, vectors[:300])
    _, hashes = live_files(store)
    reader = for_store(store, "m", DIM)
    old_rows = reader.sync(store, hashes)  # mapped: 300 rows
    fill(store, vectors[300:], start=300)
    segments.maintain_index(store, "m", DIM, threshold=100)  # appends 400, seals 700
    assert len(reader) == 300
    index = open_index(store, reader, np.unique(old_rows), threshold=100)
    assert index.kind == "segments" and len(reader) == 700
    rows, _ = index.search(vectors[5], 3)
    assert rows[0] == old_rows[5] and all(r in set(old_rows.tolist()) for r in rows)


def test_a_vector_file_cut_short_and_filled_again_never_serves_a_segment_its_rows(store):
    """Rows re-appended in another order after the file was cut: the segment's rows held
    other images (465 of 1,400 not found as themselves), or lay beyond the file
    (IndexError on every maintenance). The rows' content keys are checked now."""
    vectors = clustered(1400, seed=13)
    fill(store, vectors[:1200])
    segments.maintain_index(store, "m", DIM, threshold=100)
    vf = for_store(store, "m", DIM)
    os.truncate(vf.vectors_path, 600 * DIM * 2)
    fill(store, vectors[1200:], start=1200)
    col = open_collection(store)
    assert col.index.kind == "exact"  # the segment no longer matches: not used
    assert all(top(col, vectors[i]) == [name(i)] for i in range(0, 1400, 7))
    assert segments.maintain_index(store, "m", DIM, threshold=100) == 1  # rebuilt
    col = open_collection(store)
    assert col.index.kind == "segments"
    assert all(top(col, vectors[i]) == [name(i)] for i in range(0, 1400, 7))


@pytest.mark.parametrize(
    "text",
    [
        "null",
        "5",
        '"x"',
        '{"segments": [{"name": 5, "n": 1, "size": 1, "checksum": "", "rows_checksum": ""}]}',
        '{"segments": [{"name": "seg-a.ann", "n": "9", "size": 1, "checksum": "",'
        ' "rows_checksum": ""}]}',
        '{"projection": 3}',
        '{"segments": [{"name": "../x.ann", "n": 1, "size": 1, "checksum": "",'
        ' "rows_checksum": ""}]}',
    ],
)
def test_a_malformed_manifest_reads_as_none_and_is_rebuilt(store, text):
    vectors = clustered(500, seed=14)
    fill(store, vectors)
    store.set_meta(segments.meta_key("m"), text)
    assert segments.Manifest.from_json(text) == segments.Manifest()
    assert open_collection(store).index.kind == "exact"
    assert segments.maintain_index(store, "m", DIM, threshold=100) == 1
    assert top(open_collection(store), vectors[3]) == [name(3)]


def test_a_disk_too_full_for_a_segment_says_so_and_the_run_goes_on(small_disk):
    """Annoy writes its file through a memory map: a full disk killed the whole process
    with SIGBUS in the middle of an indexing run."""
    import errno
    import gc

    from tests.conftest import distinct_images
    from tests.fakes import FakeEncoder
    from visualsearch.core.indexing import IndexOptions, index_folder

    store = Store(small_disk / "store")
    vectors = clustered(300, seed=15)
    fill(store, vectors)
    with pytest.raises(OSError) as caught:
        segments.maintain_index(store, "m", DIM, threshold=100)
    assert caught.value.errno == errno.ENOSPC and "free space" in str(caught.value)
    del caught  # its traceback holds the vector file's map open
    assert top(open_collection(store), vectors[8]) == [name(8)]  # exact search answers

    pics = small_disk.parent / "pics"
    distinct_images(pics, 12, size=64)
    report = index_folder(
        pics, store, FakeEncoder(), options=IndexOptions(annoy_threshold=4, seal_at=4)
    )
    store.close()
    assert report.encoded == 12 and "free space" in report.index_problem
    assert not list((small_disk / "store").glob("seg-*.ann"))
    gc.collect()  # every map of the vector file closed before the disk is unmounted


def test_every_row_damaged_reads_as_missing_and_is_filled_again(store):
    """With every row of the file marked damaged the lookup was empty and indexing it
    raised IndexError on the next open."""
    vectors = clustered(50, seed=16)
    fill(store, vectors)
    col = open_collection(store)
    col.vectors.forget(np.arange(len(col.vectors)))
    again = open_collection(store)
    assert len(again) == 50 and len(again.vectors) == 100  # all appended again
    assert top(again, vectors[7]) == [name(7)]
