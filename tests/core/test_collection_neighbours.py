"""Duplicates and odd ones out over a whole collection from its index's neighbours: the
sealed segments and the fresh rows, never every vector in memory."""

import numpy as np
import pytest

from tests.core.test_segments import DIM, clustered, fill, name, open_collection
from visualsearch.core import segments
from visualsearch.core.duplicates import (
    collection_duplicates,
    collection_odd_ones_out,
    find_duplicates,
    odd_ones_out,
)
from visualsearch.core.encoders.base import l2_normalize
from visualsearch.core.progress import CancelToken
from visualsearch.core.store import FileRecord, Store

THRESHOLD = 0.95


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store")
    yield s
    s.close()


def planted(n=3000, pairs=40, seed=5):
    """Clustered vectors, the last `pairs` of which are near copies of the first ones."""
    vectors = clustered(n, seed=seed)
    rng = np.random.default_rng(seed)
    copies = vectors[:pairs] + 0.03 * rng.standard_normal((pairs, DIM)).astype(np.float32)
    return np.concatenate([vectors, l2_normalize(copies)])


def add_identical(store, of: int, path: str) -> None:
    """A second file with the same bytes (same content hash) as image `of`."""
    store.commit_batch("m", [FileRecord(path, 1, 1, f"h{of}")], {})


def groups_by_name(groups):
    return {frozenset(r.path for r in g.members) for g in groups}


def segmented(store, vectors):
    """A collection whose vectors lie in sealed segments and in fresh rows."""
    fill(store, vectors[:2500])
    segments.maintain_index(store, "m", DIM, threshold=100, seal_at=1000)
    fill(store, vectors[2500:], start=2500)  # fresh: no segment holds them yet
    col = open_collection(store)
    assert col.index.kind == "segments" and col.index.fresh is not None
    return col


def test_collection_duplicates_find_what_the_full_comparison_finds(store):
    """Every near copy, and identical files (one vector row, two paths), are grouped as
    comparing all vectors in memory groups them, whether the copy is sealed or fresh."""
    vectors = planted()
    col = segmented(store, vectors)
    add_identical(store, 100, "copy-of-100.jpg")
    col = open_collection(store)
    records = store.records_for(col.paths)
    expected = groups_by_name(
        find_duplicates(col.vectors_of(np.arange(len(col))), records, THRESHOLD)
    )
    got = collection_duplicates(col, THRESHOLD, judge_pixels=False)
    assert groups_by_name(got) == expected
    assert {name(i) for i in range(40)} <= {r.path for g in got for r in g.members}
    exact = [g for g in got if g.exact]
    assert [{r.path for r in g.members} for g in exact] == [{name(100), "copy-of-100.jpg"}]
    assert all(col.paths[i] == r.path for g in got for i, r in zip(g.rows, g.members, strict=True))


def test_deleted_images_are_never_grouped(store):
    vectors = planted()
    segmented(store, vectors)
    store.remove_paths([name(3), name(3003)])  # a sealed image and a fresh near copy
    col = open_collection(store)
    grouped = {
        r.path for g in collection_duplicates(col, THRESHOLD, judge_pixels=False) for r in g.members
    }
    assert name(3) not in grouped and name(3003) not in grouped
    assert name(4) in grouped and name(3004) in grouped


def test_the_neighbours_from_segments_match_exact_ones(store):
    vectors = planted()
    col = segmented(store, vectors)
    rows, near, sims = col.index.neighbours(5)
    assert np.array_equal(rows, col.live_rows)
    exact = col.vectors.read(rows)
    scores = exact @ exact.T
    np.fill_diagonal(scores, -np.inf)
    truth = np.argsort(-scores, axis=1)[:, :5]
    recall = np.mean(
        [len(set(a) & set(b)) / 5 for a, b in zip(near.tolist(), truth.tolist(), strict=True)]
    )
    assert recall >= 0.9
    np.testing.assert_allclose(sims, np.take_along_axis(scores, near, 1), atol=1e-5)


def test_collection_odd_ones_out_rank_the_planted_ones_first(store):
    vectors = planted()
    rng = np.random.default_rng(9)
    odd = l2_normalize(rng.standard_normal((3, DIM)).astype(np.float32) * 5)
    col = segmented(store, np.concatenate([vectors, odd]))
    odd_names = {name(len(vectors) + i) for i in range(3)}
    ranked = collection_odd_ones_out(col, 3)
    assert {col.paths[r] for r, _ in ranked} == odd_names
    full = odd_ones_out(col.vectors_of(np.arange(len(col))), 3)
    # approximate neighbours: far from everything, one of the five may be the sixth
    np.testing.assert_allclose([s for _, s in ranked], [s for _, s in full], atol=0.01)


def test_an_identical_copy_counts_as_a_neighbour(store):
    """Two files with the same bytes share one vector row; each is the other's nearest
    image at similarity 1, as when every file's vector is compared."""
    vectors = planted()
    rng = np.random.default_rng(9)
    odd = l2_normalize(rng.standard_normal((1, DIM)).astype(np.float32))
    col = segmented(store, np.concatenate([vectors, odd]))
    lonely = name(len(vectors))
    alone = collection_odd_ones_out(col, 1)[0]
    assert col.paths[alone[0]] == lonely
    add_identical(store, len(vectors), "copy.jpg")
    col = open_collection(store)
    scores = {col.paths[r]: s for r, s in collection_odd_ones_out(col, 2)}
    assert set(scores) == {lonely, "copy.jpg"}
    assert scores[lonely] == scores["copy.jpg"] < alone[1] - 0.05
    full = dict(odd_ones_out(col.vectors_of(np.arange(len(col))), 2))
    np.testing.assert_allclose([scores[col.paths[r]] for r in full], list(full.values()), atol=0.01)


def test_a_cancelled_pass_stops(store):
    col = segmented(store, planted())
    token = CancelToken()
    token.cancel()
    with pytest.raises(InterruptedError):
        collection_duplicates(col, THRESHOLD, progress=token)
    with pytest.raises(InterruptedError):
        collection_odd_ones_out(col, 3, progress=token)


# -- the saved neighbour graph ------------------------------------------------------------


def exact_neighbours(col, k):
    rows = col.live_rows
    x = col.vectors.read(rows)
    scores = x @ x.T
    np.fill_diagonal(scores, -np.inf)
    return rows, np.argsort(-scores, axis=1)[:, :k]


def recall(near, truth):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(near, truth, strict=True)])


def test_the_neighbour_graph_is_kept_and_brought_up_to_date(store, monkeypatch):
    """A second pass (another threshold, the odd ones out) reads the saved graph instead of
    asking the index for every image again; images added and removed since only change
    the lists they belong in, and the result is what a pass from scratch finds."""
    from visualsearch.core import neighbour_graph
    from visualsearch.core.vector_index import SegmentIndex

    vectors = planted()
    col = segmented(store, vectors[:2800])
    first = collection_duplicates(col, THRESHOLD, judge_pixels=False)
    assert neighbour_graph.graph_path(col.vectors).exists()

    asked = []
    real = SegmentIndex.nearest_rows

    def counting(self, rows, k, progress=None):
        asked.append(len(rows))
        return real(self, rows, k, progress)

    monkeypatch.setattr(SegmentIndex, "nearest_rows", counting)
    again = collection_duplicates(open_collection(store), 0.9, judge_pixels=False)
    assert asked == [] and len(again) >= len(first)  # nothing asked: read from the graph

    fill(store, vectors[2800:], start=2800)  # 240 more: the near copies of the first 40
    store.remove_paths([name(5), name(6)])
    col = open_collection(store)
    asked.clear()
    updated = collection_duplicates(col, THRESHOLD, judge_pixels=False)
    assert asked and asked[0] < 300  # the new rows and the lists that lost a neighbour
    grouped = {r.path for g in updated for r in g.members}
    assert {name(i) for i in range(7, 40)} | {name(3000 + i) for i in range(7, 40)} <= grouped
    assert name(5) not in grouped and name(6) not in grouped

    rows, near, _ = neighbour_graph.neighbours(col.index, 5)
    truth_rows, truth = exact_neighbours(col, 5)
    assert np.array_equal(rows, truth_rows)
    assert recall(near.tolist(), truth.tolist()) >= 0.9
    assert not ((near >= 0) & ~col.index.live[rows[np.maximum(near, 0)]]).any()

    monkeypatch.setattr(SegmentIndex, "nearest_rows", real)
    graph_path = neighbour_graph.graph_path(col.vectors)
    graph_path.write_bytes(graph_path.read_bytes()[:100])  # torn: computed again
    assert groups_by_name(collection_duplicates(col, THRESHOLD, judge_pixels=False)) == (
        groups_by_name(updated)
    )


def test_a_burst_of_shots_of_one_photo_joins_its_list(store):
    """12 new shots of an existing photo are nearer each other than to it: entered only
    into the lists of their own 10 nearest, they never reached the photo's, which then
    stayed odd and alone until the graph was made again."""
    from visualsearch.core import neighbour_graph

    rng = np.random.default_rng(1)
    lonely = l2_normalize(rng.standard_normal((1, DIM)).astype(np.float32))
    col = segmented(store, np.concatenate([planted()[:2599], lonely]))
    collection_duplicates(col, THRESHOLD, judge_pixels=False)  # the graph is saved
    side = l2_normalize(rng.standard_normal((1, DIM)).astype(np.float32))
    noise = 0.02 * rng.standard_normal((12, DIM)).astype(np.float32)
    fill(store, l2_normalize(lonely + 0.25 * side + noise), start=2600)

    def photo(col):
        groups = collection_duplicates(col, THRESHOLD, judge_pixels=False)
        held = [{r.path for r in g.members} for g in groups]
        odd = dict(collection_odd_ones_out(open_collection(store), len(col)))
        return [g for g in held if name(2599) in g], odd[col.paths.index(name(2599))]

    updated = photo(open_collection(store))
    neighbour_graph.graph_path(col.vectors).unlink()
    fresh = photo(open_collection(store))
    assert updated[0] == fresh[0] and len(fresh[0]) == 1 and len(fresh[0][0]) == 13
    assert updated[1] == pytest.approx(fresh[1], abs=1e-6)


def test_a_graph_that_does_not_fit_its_vector_file_is_made_again(store):
    """A vector file cut short and filled again keeps its epoch, but its rows then hold
    other images: the graph used to be read as it was and grouped images at similarity
    -0.3; a graph whose numbers were changed was trusted too."""
    from visualsearch.core import neighbour_graph

    col = segmented(store, planted())
    expected = groups_by_name(collection_duplicates(col, THRESHOLD, judge_pixels=False))
    path = neighbour_graph.graph_path(col.vectors)
    with np.load(path) as data:
        saved = dict(data)
    saved["sims"] = np.where(np.isfinite(saved["sims"]), 1.0, saved["sims"]).astype(np.float32)
    with open(path, "wb") as fh:
        np.savez(fh, **saved)
    col = open_collection(store)
    assert groups_by_name(collection_duplicates(col, THRESHOLD, judge_pixels=False)) == expected

    rows = 600
    with open(col.vectors.vectors_path, "r+b") as fh:
        fh.truncate(rows * DIM * 2)
    with open(col.vectors.hashes_path, "r+b") as fh:
        fh.truncate(rows * 16)
    col = open_collection(store, threshold=10**9)  # the file is filled again, in another order
    segments.maintain_index(store, "m", DIM, threshold=100, seal_at=1000)
    col = open_collection(store)
    assert col.index.kind == "segments"
    got = collection_duplicates(col, THRESHOLD, judge_pixels=False)
    assert groups_by_name(got) == expected
    assert all(g.similarity >= THRESHOLD for g in got)
