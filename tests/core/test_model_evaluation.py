"""Model evaluation (core/model_evaluation.py): every figure checked against a direct,
independent computation, on real labelled photos encoded by the built-in model
(scikit-image's faces and non-faces, scikit-learn's digits scaled up), and on small
hand-made vectors for the edge cases and the chunked comparison."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from visualsearch.core import model_evaluation as me
from visualsearch.core.model_evaluation import evaluate_vectors, projected_seconds

DIGITS_PER_CLASS = 50


def _encode(encoder, images: list[Image.Image]) -> np.ndarray:
    out = []
    for lo in range(0, len(images), 32):
        batch = [encoder.preprocess(img) for img in images[lo : lo + 32]]
        out.append(encoder.embed_images(np.stack(batch)))
    return np.concatenate(out)


@pytest.fixture(scope="module")
def faces(builtin_encoder) -> tuple[np.ndarray, np.ndarray]:
    """lfw_subset: 100 faces then 100 non-faces, 25×25 grey shown at 224×224 RGB."""
    from skimage.data import lfw_subset

    images = [
        Image.fromarray((pixels * 255).astype(np.uint8)).resize((224, 224)).convert("RGB")
        for pixels in lfw_subset()
    ]
    labels = np.array(["face"] * 100 + ["not a face"] * 100)
    return _encode(builtin_encoder, images), labels


@pytest.fixture(scope="module")
def digits(builtin_encoder) -> tuple[np.ndarray, np.ndarray]:
    """The first DIGITS_PER_CLASS of each handwritten digit, dark on light, at 224×224."""
    from sklearn.datasets import load_digits

    data = load_digits()
    rows = np.concatenate([np.flatnonzero(data.target == d)[:DIGITS_PER_CLASS] for d in range(10)])
    images = [
        Image.fromarray((255 - data.images[i] * 255 / 16).astype(np.uint8))
        .resize((224, 224), Image.Resampling.NEAREST)
        .convert("RGB")
        for i in rows
    ]
    return _encode(builtin_encoder, images), np.array([str(d) for d in data.target[rows]])


@pytest.fixture(scope="module")
def evaluated(faces, digits):
    return {
        "faces": (*faces, evaluate_vectors(*faces, shots=(1, 5, 10), repeats=5)),
        "digits": (*digits, evaluate_vectors(*digits, shots=(1, 5, 10), repeats=3)),
    }


# -- independent computations -----------------------------------------------------------


def _loo_nearest_neighbour(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from sklearn.model_selection import LeaveOneOut, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=1, metric="cosine", algorithm="brute")
    return cross_val_predict(knn, x.astype(np.float64), y, cv=LeaveOneOut())


def _naive_map_at_10(x: np.ndarray, y: np.ndarray) -> float:
    """One image at a time, float64, a full sort: AP@10 as the docstring defines it."""
    x = x.astype(np.float64)
    aps = []
    for i in range(len(x)):
        others = [j for j in range(len(x)) if j != i]
        relevant_total = sum(y[j] == y[i] for j in others)
        if relevant_total == 0:
            continue
        ranked = sorted(others, key=lambda j: -float(x[i] @ x[j]))[:10]
        hits, total = 0, 0.0
        for rank, j in enumerate(ranked, start=1):
            if y[j] == y[i]:
                hits += 1
                total += hits / rank
        aps.append(total / min(10, relevant_total))
    return float(np.mean(aps))


def _few_shot_by_hand(x, y, k, repeats, seed):
    """The documented splits (per label in sorted order: the first k of a permutation
    drawn from default_rng([seed, k])) fitted with scikit-learn directly."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score

    rng = np.random.default_rng([seed, k])
    scores = []
    for _ in range(repeats):
        train = np.concatenate([rng.permutation(np.flatnonzero(y == n))[:k] for n in np.unique(y)])
        test = np.setdiff1d(np.arange(len(y)), train)
        model = LogisticRegression(C=10.0, max_iter=300).fit(x[train], y[train])
        scores.append(accuracy_score(y[test], model.predict(x[test])))
    return float(np.mean(scores)), float(np.std(scores))


# -- real photos ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["faces", "digits"])
def test_nearest_neighbour_figures_match_scikit_learn(evaluated, name):
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    x, y, ev = evaluated[name]
    predicted = _loo_nearest_neighbour(x, y)
    names = sorted(set(y))
    assert ev.images == len(y) and ev.labels == names
    assert ev.nearest_neighbour == pytest.approx(float(np.mean(predicted == y)), abs=1e-12)
    np.testing.assert_array_equal(ev.confusion, confusion_matrix(y, predicted, labels=names))
    precision, recall, _, support = precision_recall_fscore_support(
        y, predicted, labels=names, zero_division=0
    )
    assert [f.name for f in ev.per_label] == names
    assert [f.images for f in ev.per_label] == support.tolist()
    assert [f.precision for f in ev.per_label] == pytest.approx(precision.tolist())
    assert [f.recall for f in ev.per_label] == pytest.approx(recall.tolist())


@pytest.mark.parametrize("name", ["faces", "digits"])
def test_map_at_10_matches_a_naive_loop(evaluated, name):
    x, y, ev = evaluated[name]
    assert ev.map_at_10 == pytest.approx(_naive_map_at_10(x, y), abs=1e-9)
    assert 0.0 < ev.map_at_10 <= 1.0


@pytest.mark.parametrize("name", ["faces", "digits"])
def test_confused_pairs_sum_both_directions_most_first(evaluated, name):
    ev = evaluated[name][2]
    c = ev.confusion
    expected = sorted(
        (
            (-(int(c[i, j]) + int(c[j, i])), ev.labels[i], ev.labels[j])
            for i in range(len(c))
            for j in range(i + 1, len(c))
            if c[i, j] + c[j, i] > 0
        ),
    )[:5]
    assert ev.confused_pairs == [(a, b, -n) for n, a, b in expected]
    assert 0 < len(ev.confused_pairs) <= 5


def test_faces_are_told_from_non_faces_with_five_examples(evaluated):
    ev = evaluated["faces"][2]
    assert set(ev.few_shot) == {1, 5, 10}
    mean, std, repeats = ev.few_shot[5]
    assert mean > 0.9 and repeats == 5 and 0.0 <= std < 0.1
    assert ev.nearest_neighbour > 0.9


@pytest.mark.parametrize("name", ["faces", "digits"])
def test_few_shot_is_the_proposals_classifier_on_the_documented_splits(evaluated, name):
    x, y, ev = evaluated[name]
    for k, (mean, std, repeats) in ev.few_shot.items():
        assert 0.0 <= mean <= 1.0 and std >= 0.0
        by_hand = _few_shot_by_hand(x, y, k, repeats, seed=0)
        assert (mean, std) == pytest.approx(by_hand, abs=1e-9)


def test_few_shot_is_reproducible_and_each_shot_count_stands_alone(digits):
    x, y = digits
    once = evaluate_vectors(x, y, shots=(1, 5), repeats=3, seed=7)
    again = evaluate_vectors(x, y, shots=(5,), repeats=3, seed=7)
    other = evaluate_vectors(x, y, shots=(5,), repeats=3, seed=8)
    assert once.few_shot[5] == again.few_shot[5]
    assert other.few_shot[5] != again.few_shot[5]
    # weak features on digits, but far above chance (0.1), and more examples help
    assert 0.2 < once.few_shot[1][0] < once.few_shot[5][0] <= 1.0


def test_as_dict_is_json(evaluated):
    ev = evaluated["digits"][2]
    data = json.loads(json.dumps(ev.as_dict()))
    assert data["images"] == ev.images and data["labels"] == ev.labels
    assert data["confusion"] == ev.confusion.tolist()
    assert [f["shots"] for f in data["few_shot"]] == sorted(ev.few_shot)
    assert data["few_shot"][0]["accuracy"] == pytest.approx(ev.few_shot[1][0])
    assert data["per_label"][0]["name"] == ev.per_label[0].name
    assert data["confused_pairs"][0]["count"] == ev.confused_pairs[0][2]


# -- hand-made vectors ------------------------------------------------------------------


def _unit(rows) -> np.ndarray:
    x = np.asarray(rows, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_a_small_case_worked_by_hand():
    """a0 a1 are close, b0 sits near a1, b1 is on its own."""
    x = _unit([[1, 0, 0], [0.9, 0.44, 0], [0.6, 0.8, 0], [0, 0.1, 1]])
    ev = evaluate_vectors(x, ["a", "a", "b", "b"], shots=(1,), repeats=2)
    # neighbours: a0→a1, a1→a0, b0→a1, b1→b0
    assert ev.nearest_neighbour == 0.75
    np.testing.assert_array_equal(ev.confusion, [[2, 0], [1, 1]])
    assert ev.confused_pairs == [("a", "b", 1)]
    assert [f.precision for f in ev.per_label] == pytest.approx([2 / 3, 1.0])
    assert [f.recall for f in ev.per_label] == [1.0, 0.5]
    # AP@10 (one relevant other each): a0, a1 rank it 1st → 1; b0 3rd → 1/3; b1 1st → 1
    assert ev.map_at_10 == pytest.approx((1 + 1 + 1 / 3 + 1) / 4)
    assert set(ev.few_shot) == {1} and ev.few_shot[1][2] == 2


def test_chunked_comparison_gives_the_same_figures(monkeypatch):
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((4, 16))
    ids = rng.integers(0, 4, 60)
    x = _unit(centres[ids] + 0.8 * rng.standard_normal((60, 16)))
    labels = [f"label {i}" for i in ids]
    monkeypatch.setattr(me, "CHUNK_ROWS", 10**6)
    whole = evaluate_vectors(x, labels, shots=(2,), repeats=2)
    for chunk in (1, 7, 59):
        monkeypatch.setattr(me, "CHUNK_ROWS", chunk)
        assert evaluate_vectors(x, labels, shots=(2,), repeats=2).as_dict() == whole.as_dict()
    assert whole.map_at_10 == pytest.approx(_naive_map_at_10(x, np.array(labels)), abs=1e-9)


def test_fewer_than_eleven_images_rank_all_the_others():
    x = _unit([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.5, 0.5]])
    y = np.array(["a", "a", "b", "b", "b"])
    ev = evaluate_vectors(x, y, shots=(1,), repeats=1)
    assert ev.map_at_10 == pytest.approx(_naive_map_at_10(x, y))


def test_shot_counts_some_label_cannot_spare_are_left_out():
    x = _unit(np.random.default_rng(0).standard_normal((9, 4)))
    ev = evaluate_vectors(x, ["a"] * 6 + ["b"] * 3, shots=(1, 2, 3, 5), repeats=2)
    assert sorted(ev.few_shot) == [1, 2]


def test_a_label_with_one_image_is_left_out_of_map_only():
    x = _unit([[1, 0], [0.9, 0.1], [0, 1]])
    ev = evaluate_vectors(x, ["a", "a", "b"], shots=(1,), repeats=1)
    assert ev.map_at_10 == 1.0  # the a's find each other first; b has nothing to find
    assert ev.few_shot == {}  # b has no image left to test
    assert ev.per_label[1].images == 1
    only_singles = evaluate_vectors(x[:2], ["a", "b"])
    assert math.isnan(only_singles.map_at_10)
    assert json.loads(json.dumps(only_singles.as_dict()))["map_at_10"] is None


def test_vectors_not_of_unit_length_are_normalised():
    x = _unit(np.random.default_rng(1).standard_normal((12, 5)))
    y = ["a", "b", "c"] * 4
    scaled = x * np.arange(1, 13, dtype=np.float32)[:, None]
    a, b = evaluate_vectors(x, y, shots=(1,)), evaluate_vectors(scaled, y, shots=(1,))
    assert a.as_dict()["confusion"] == b.as_dict()["confusion"]
    assert a.map_at_10 == pytest.approx(b.map_at_10)


@pytest.mark.parametrize(
    ("vectors", "labels", "message"),
    [
        (np.eye(3), ["a", "a", "a"], "at least 2 labels"),
        (np.eye(3), ["a", "b"], "one label per vector"),
        (np.eye(1), ["a"], "at least 2 labelled images"),
        (np.array([[1.0, np.nan], [0, 1]]), ["a", "b"], "NaN or infinite"),
        (np.array([[1.0, np.inf], [0, 1]]), ["a", "b"], "NaN or infinite"),
        (np.array([[0.0, 0.0], [0, 1]]), ["a", "b"], "zero length"),
        (np.ones(3), ["a", "b", "c"], "2-d"),
    ],
)
def test_bad_input_says_what_is_wrong(vectors, labels, message):
    with pytest.raises(ValueError, match=message):
        evaluate_vectors(vectors, labels)


def test_shots_and_repeats_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        evaluate_vectors(np.eye(4), ["a", "a", "b", "b"], shots=(0,))
    with pytest.raises(ValueError, match="at least 1"):
        evaluate_vectors(np.eye(4), ["a", "a", "b", "b"], repeats=0)


def test_projected_seconds():
    assert projected_seconds(80.0, 20_000) == 250.0
    assert projected_seconds(11.0, 0) == 0.0
    for speed, images in ((0.0, 10), (-1.0, 10), (10.0, -1)):
        with pytest.raises(ValueError):
            projected_seconds(speed, images)
