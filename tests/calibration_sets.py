"""Labelled pairs of real photos that core/calibration.py's fits come from: text queries
(tests/everyday_queries.py), tags (foolbox's photos and their ImageNet class) and image
pairs of the same subject. Used by tests/core/test_calibration.py and
bench/calibration.py, which prints the fits the code carries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.everyday_queries import EVERYDAY
from visualsearch.core.calibration import Calibration, Fit, reference_photos, reference_vectors
from visualsearch.core.encoders.vocabulary import zero_shot_vocabulary
from visualsearch.core.query import text_vector
from visualsearch.core.sample import imagenet_label

# Too broad to call two of their photos "the same subject" (a dog and a beetle)
BROAD = {"an animal", "a vehicle", "food"}


@dataclass(frozen=True)
class Pairs:
    """Scores (cosines, or the built-in model's finer text scores) and whether each pair
    matches."""

    scores: np.ndarray
    relevant: np.ndarray


@dataclass(frozen=True)
class Photos:
    names: list[str]
    vectors: np.ndarray  # unit rows, as the reference photos'
    scale: Calibration


def photos(encoder, cache_dir: Path) -> Photos:
    vectors = reference_vectors(encoder, cache_dir)
    words = zero_shot_vocabulary(encoder, cache_dir).matrix
    return Photos(
        [p.name for p in reference_photos()], vectors, Calibration.measure(vectors, words)
    )


def text_query_pairs(encoder, ph: Photos) -> Pairs:
    """Every everyday query against every photo, scored as a search scores them."""
    scores, relevant = [], []
    for query, wanted in EVERYDAY.items():
        scorer = getattr(encoder, "text_scorer", None)
        scorer = scorer(query) if scorer is not None else None
        s = scorer(ph.vectors) if scorer is not None else ph.vectors @ text_vector(encoder, query)
        scores.append(s)
        relevant.append([n in wanted for n in ph.names])
    return Pairs(np.concatenate(scores), np.concatenate(relevant))


def tag_pairs(encoder, ph: Photos, cache_dir: Path) -> Pairs:
    """The labelled ImageNet photos against the 1000 words; a photo's own class matches."""
    words = zero_shot_vocabulary(encoder, cache_dir).matrix
    scores, relevant = [], []
    for i, name in enumerate(ph.names):
        if name.startswith("imagenet_"):
            scores.append(ph.vectors[i] @ words.T)
            relevant.append(np.arange(len(words)) == imagenet_label(Path(name)))
    return Pairs(np.concatenate(scores), np.concatenate(relevant))


def image_pairs(ph: Photos) -> Pairs:
    """Each pair of photos once; photos that a narrow everyday query both finds match."""
    same = np.zeros((len(ph.names), len(ph.names)), bool)
    for query, wanted in EVERYDAY.items():
        if query not in BROAD:
            rows = [ph.names.index(n) for n in wanted]
            same[np.ix_(rows, rows)] = True
    upper = np.triu_indices(len(ph.names), 1)
    return Pairs((ph.vectors @ ph.vectors.T)[upper], same[upper])


def fit(z: np.ndarray, relevant: np.ndarray) -> Fit:
    """The logistic that turns z into the chance of a match (barely regularised)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e4).fit(z.reshape(-1, 1), relevant)
    return Fit(round(float(model.coef_[0, 0]), 3), round(float(model.intercept_[0]), 3))


def precision_recall(matches: np.ndarray, relevant: np.ndarray, at: float) -> tuple[float, float]:
    kept = matches >= at
    hits = int((kept & relevant).sum())
    return hits / max(int(kept.sum()), 1), hits / max(int(relevant.sum()), 1)
