import numpy as np

from visualsearch.core.encoders.base import l2_normalize
from visualsearch.core.vector_index import AnnoyVectorIndex, ExactIndex


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
