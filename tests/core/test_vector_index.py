import numpy as np

from visualsearch.core.encoders.base import l2_normalize
from visualsearch.core.integrity import file_checksum
from visualsearch.core.vector_index import (
    AnnoyVectorIndex,
    ExactIndex,
    build_or_load,
    index_path,
)


def _clustered(n=3000, dim=64, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, dim))
    return l2_normalize(centres[rng.integers(0, 30, n)] + 0.3 * rng.standard_normal((n, dim)))


def test_exact_search_ranks_by_cosine():
    m = _clustered()
    idx, scores = ExactIndex(m).search(m[7], 5)
    assert idx[0] == 7 and abs(scores[0] - 1) < 1e-5
    assert np.all(np.diff(scores) <= 0)
    brute = np.argsort(-(m @ m[7]))[:5]
    assert list(idx) == list(brute)


def test_exact_k_larger_than_n_and_empty():
    m = _clustered(4)
    assert len(ExactIndex(m).search(m[0], 10)[0]) == 4
    assert len(ExactIndex(np.zeros((0, 8), np.float32)).search(np.ones(8), 3)[0]) == 0


def test_annoy_agrees_with_exact_and_reports_cosine(tmp_path):
    m = _clustered()
    ann = AnnoyVectorIndex.build(m, trees=20, path=tmp_path / "i.ann")
    exact = ExactIndex(m)
    recall = []
    for q in range(0, 3000, 150):
        a_idx, a_scores = ann.search(m[q], 10)
        e_idx, _ = exact.search(m[q], 10)
        recall.append(len(set(a_idx) & set(e_idx)) / 10)
        assert a_idx[0] == q
        np.testing.assert_allclose(a_scores[:3], (m[a_idx[:3]] @ m[q]), atol=1e-3)
    assert np.mean(recall) > 0.9


def test_build_or_load_switches_at_threshold_and_reuses_the_file(tmp_path):
    m = _clustered(500)
    exact, stamp = build_or_load(m, tmp_path, "x", "k1", None, threshold=1000)
    assert exact.kind == "exact" and stamp is None
    first, stamp = build_or_load(m, tmp_path, "x", "k1", None, threshold=100)
    assert first.kind == "annoy" and index_path(tmp_path, "x").exists()
    mtime = index_path(tmp_path, "x").stat().st_mtime_ns
    again, same = build_or_load(m, tmp_path, "x", "k1", stamp, threshold=100)  # loaded
    assert same == stamp and index_path(tmp_path, "x").stat().st_mtime_ns == mtime
    assert list(again.search(m[3], 3)[0]) == list(first.search(m[3], 3)[0])
    # other vectors under the same name (a reset catalog): never the old file
    _, other = build_or_load(m[:400], tmp_path, "x", "k2", stamp, threshold=100)
    assert other.content == "k2" and other.sha256 != stamp.sha256


def test_a_garbled_index_file_is_rebuilt_not_trusted(tmp_path):
    """Bytes flipped inside the .ann file cost recall silently before; the checksum in its
    stamp finds them and the index is rebuilt with full recall."""
    m = _clustered(2000)
    _, stamp = build_or_load(m, tmp_path, "x", "k", None, threshold=100)
    path = index_path(tmp_path, "x")
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    for pos in rng.integers(len(data) // 4, len(data), 2000):
        data[pos] ^= 0xFF
    path.write_bytes(bytes(data))
    index, new_stamp = build_or_load(m, tmp_path, "x", "k", stamp, threshold=100)
    assert new_stamp.sha256 == file_checksum(path) and path.read_bytes() != bytes(data)
    assert all(index.search(m[q], 1)[0][0] == q for q in range(0, 2000, 40))


def test_open_index_keys_the_file_by_content_not_a_counter(tmp_path):
    """A reset catalog can reach the same generation number with other images; the saved
    index must not be reused for them."""
    from visualsearch.core.store import FileRecord, Store
    from visualsearch.core.vector_index import open_index

    def fill(store, vectors):
        records = [FileRecord(f"{i:04d}.jpg", 1, 1, f"h{i}") for i in range(len(vectors))]
        store.commit_batch("m", records, {r.hash: v for r, v in zip(records, vectors, strict=True)})

    a, b = _clustered(300, seed=1), _clustered(300, seed=2)
    store = Store(tmp_path / "s")
    fill(store, a)
    assert open_index(store, "m", threshold=100).search(a[5], 1)[0][0] == 5
    store.close()
    (tmp_path / "s" / "catalog.sqlite").unlink()
    for extra in ("catalog.sqlite-wal", "catalog.sqlite-shm"):
        (tmp_path / "s" / extra).unlink(missing_ok=True)
    store = Store(tmp_path / "s")
    fill(store, b)  # same generation as before, other vectors
    found = open_index(store, "m", threshold=100).search(b[5], 3)[0]
    assert found[0] == 5


def test_a_changed_collection_reuses_the_sealed_segment_and_finds_everything(tmp_path):
    """Any change used to rebuild the whole Annoy index on the next query (~40 s at 100k):
    new images are searched exactly beside the saved segment, gone ones never return,
    and only a change beyond SEGMENT_SLACK rebuilds."""
    from visualsearch.core.store import FileRecord, Store
    from visualsearch.core.vector_index import open_index

    vectors = _clustered(3000, seed=3)
    store = Store(tmp_path / "s")
    records = [FileRecord(f"{i:05d}.jpg", 1, 1, f"h{i}") for i in range(len(vectors))]
    store.commit_batch("m", records[:2500], {f"h{i}": vectors[i] for i in range(2500)})
    first = open_index(store, "m", threshold=100)
    built = index_path(store.directory, "m").stat().st_mtime_ns
    assert first.kind == "annoy"
    store.commit_batch("m", records[2500:], {f"h{i}": vectors[i] for i in range(2500, 3000)})
    store.remove_paths([records[7].path])
    index = open_index(store, "m", threshold=100)
    assert index.kind == "segmented" and len(index) == 2999
    assert index_path(store.directory, "m").stat().st_mtime_ns == built  # not rebuilt
    paths = store.load_vector_set("m").paths
    for q in (2600, 2999, 10, 1234):  # new ones and old ones are found as themselves
        rows, _ = index.search(vectors[q], 5)
        assert paths[rows[0]] == f"{q:05d}.jpg"
    rows, _ = index.search(vectors[7], 50)
    assert "00007.jpg" not in {paths[r] for r in rows}  # a tombstone never comes back
    store.remove_paths([r.path for r in records[:2100]])  # most gone: past the slack
    rebuilt = open_index(store, "m", threshold=100)
    assert rebuilt.kind == "annoy" and len(rebuilt) == 900
    store.close()


def test_an_unchanged_index_file_is_hashed_once_per_process_and_a_rewrite_again(
    tmp_path, monkeypatch
):
    """Every re-open hashed the whole .ann file (0.57 s at 600 MB); with folder watching
    that is every change. A rewritten file (new ctime) is checked again."""
    from visualsearch.core import integrity

    m = _clustered(500)
    _, stamp = build_or_load(m, tmp_path, "x", "k", None, threshold=100)
    path = index_path(tmp_path, "x")
    calls = []
    real = integrity.file_checksum
    monkeypatch.setattr(integrity, "file_checksum", lambda p: calls.append(p) or real(p))
    assert stamp.intact(path) and stamp.intact(path) and stamp.intact(path)
    assert calls == []  # hashed once, when it was written

    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))  # same size, rewritten
    assert not stamp.intact(path) and len(calls) == 1
