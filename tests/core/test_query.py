"""Queries, history, progress estimates and user settings (no Qt)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import distinct_images
from tests.fakes import FakeEncoder
from visualsearch.core.collection import Collection
from visualsearch.core.indexing import index_folder
from visualsearch.core.progress import RateMeter, format_duration
from visualsearch.core.query import ImageDataQuery, ImageQuery, QueryHistory, TextQuery, run_query
from visualsearch.core.settings import MAX_RECENT, UserSettings
from visualsearch.core.store import Store


def test_history_walks_back_and_forward_like_a_browser():
    h = QueryHistory()
    a, b, c = TextQuery("a"), TextQuery("b"), ImageQuery(Path("/x.jpg"))
    assert h.current is None and not h.can_go_back()
    h.push(a)
    h.push(b)
    h.push(b)  # the same query twice is one step
    assert h.back() == a and h.back() is None and h.back() is None
    assert h.forward() == a
    h.push(c)  # a new query drops what was ahead
    assert not h.can_go_forward() and h.back() == a


def _fake_collection(tmp_path, n: int) -> tuple[list, Store, Collection]:
    folder = tmp_path / "photos"
    paths = distinct_images(folder, n)
    store = Store(tmp_path / "store", root=folder)
    index_folder(folder, store, FakeEncoder())
    return paths, store, Collection(folder, store, FakeEncoder())


def test_run_query_leaves_out_the_query_image_and_deleted_files(tmp_path):
    paths, store, col = _fake_collection(tmp_path, 6)
    paths[3].unlink()
    result = run_query(col, ImageQuery(paths[0]), k=10)
    names = [h.path.name for h in result.hits]
    assert paths[0].name not in names and paths[3].name not in names
    assert result.missing == 1 and len(names) == 4
    assert [h.rank for h in result.hits] == [1, 2, 3, 4]

    data = paths[1].read_bytes()
    result = run_query(col, ImageDataQuery(data), k=1)
    assert result.hits[0].path.name == paths[1].name
    with pytest.raises(ValueError):
        run_query(col, TextQuery("   "))  # an empty text is refused, not searched
    store.close()


def test_rate_meter_and_time_left():
    now = [0.0]
    meter = RateMeter(window_s=10, clock=lambda: now[0])
    assert meter.rate is None and meter.seconds_left(100) is None
    for done in range(0, 50, 10):
        meter.update(done)
        now[0] += 1.0
    assert meter.rate == pytest.approx(10.0)
    assert meter.seconds_left(100) == pytest.approx(6.0)
    meter.update(0)  # a new run starts over
    assert meter.rate is None
    assert format_duration(42) == "42 s" and format_duration(600) == "10 min"
    assert format_duration(4800) == "1 h 20 min"


def test_recent_folders_most_recent_first_without_repeats():
    s = UserSettings()
    for i in range(MAX_RECENT + 3):
        s.add_recent(Path(f"/f{i}"))
    s.add_recent(Path("/f5"))
    assert s.recent_folders[0] == "/f5" and len(s.recent_folders) == MAX_RECENT
    assert s.recent_folders.count("/f5") == 1


def test_minus_words_are_parsed_and_steer_away():
    from visualsearch.core.query import parse_text, text_vector

    assert parse_text('beach -people -"red car"') == ("beach", ["people", "red car"])
    assert parse_text("well-known - x") == ("well-known - x", [])
    enc = FakeEncoder()
    plain = text_vector(enc, "beach")
    minus = text_vector(enc, "beach -people")
    people = enc.embed_text(["people"])[0]
    assert float(minus @ people) < float(plain @ people)
    assert abs(float(np.linalg.norm(minus)) - 1.0) < 1e-5
    with pytest.raises(ValueError, match="words to look for"):
        text_vector(enc, "-people")


def test_mix_and_selection_queries_and_min_score(tmp_path):
    from visualsearch.core.query import MixQuery, SelectionQuery

    paths, store, col = _fake_collection(tmp_path, 8)
    image_only = run_query(col, MixQuery(ImageQuery(paths[2]), "anything", text_weight=0.0))
    assert [h.path for h in image_only.hits] == [
        h.path for h in run_query(col, ImageQuery(paths[2])).hits
    ]
    both = run_query(col, SelectionQuery((paths[0], paths[1])))
    assert {paths[0], paths[1]}.isdisjoint(h.path for h in both.hits)
    strict = run_query(col, ImageQuery(paths[0]), min_score=1.01)
    assert strict.hits == [] and strict.best_score is not None and strict.best_score < 1.01
    store.close()


def test_an_image_query_can_list_the_image_itself(tmp_path):
    """`similar --include-self` goes through run_query like every other query."""
    paths, store, col = _fake_collection(tmp_path, 5)
    with_self = run_query(col, ImageQuery(paths[2], include_self=True), k=2)
    assert with_self.hits[0].path == paths[2] and with_self.hits[0].score > 0.999
    assert with_self.candidates == 5
    without = run_query(col, ImageQuery(paths[2]), k=2)
    assert paths[2] not in [h.path for h in without.hits] and without.candidates == 4
    assert without.hits[0].path == with_self.hits[1].path  # the same ranking after it
    store.close()


class _ReversedScorer:
    """Ranks images the other way round from the query vector: its best are the ones the
    index ranks last."""

    width = 1

    def __init__(self, query: np.ndarray) -> None:
        self.query = query

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        return -(vectors @ self.query)


class _ScoringEncoder(FakeEncoder):
    def text_scorer(self, text: str) -> _ReversedScorer:
        return _ReversedScorer(self.embed_text([text])[0])


def test_a_text_scorer_ranks_a_small_collection_whole(tmp_path):
    """With 2,500 images only the query vector's best 2,000 were ranked again: an image the
    scorer puts first but the vector ranks beyond them was never shown, and asking for
    more results reordered the first ones."""
    folder = tmp_path / "photos"
    distinct_images(folder / "all", 2500, size=8)
    with Store(tmp_path / "store", root=folder) as store:
        index_folder(folder, store, FakeEncoder())
        col = Collection(folder, store, _ScoringEncoder())
        scorer = col.encoder.text_scorer("anything")
        every = scorer(col.vectors_of(np.arange(len(col))))  # each file, copies too
        best = np.sort(every)[::-1][:10]
        for k in (10, 2500):
            hits = run_query(col, TextQuery("anything"), k=k).hits[:10]
            np.testing.assert_allclose([h.score for h in hits], best, rtol=1e-5)
            within = run_query(col, TextQuery("anything"), k=k, within="all").hits[:10]
            np.testing.assert_allclose([h.score for h in within], best, rtol=1e-5)


def test_a_negative_number_of_results_is_refused(tmp_path):
    """`-k -1` sliced from the end: "no matches" from the CLI, all but the last two
    within a folder."""
    _, store, col = _fake_collection(tmp_path, 3)
    with pytest.raises(ValueError, match="0 or more"):
        run_query(col, TextQuery("anything"), k=-1)
    assert run_query(col, TextQuery("anything"), k=0).hits == []
    store.close()
