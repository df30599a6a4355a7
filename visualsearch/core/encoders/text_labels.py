"""What the built-in model's text can name, and how images are scored against it.

A text names labels: the 1000 ImageNet classes and the WordNet concepts above them
("dog" above the 118 breeds). Its vector is the weighted sum of the labels' rows (a
concept's: the mean of its classes' rows): one vector finds candidates in the index. An
image's finer score is, for each label, a soft maximum of its cosines with the label's
classes (near the best one's cosine), so that an image of any one breed is a dog;
against the mean of 118 breed rows, odd images that were a little like every breed came
first (tests/everyday_queries.py: mAP 0.878 → 0.913).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from visualsearch.core.encoders.vocabulary import Concept

# The soft maximum's temperature: mAP 0.913 on tests/everyday_queries.py (0.01: 0.889,
# 0.02: 0.887, 0.03: 0.908, 0.1: 0.911); labels weighing less than MIN_LABEL_WEIGHT are
# left out of the score.
SOFT_MAX_TEMPERATURE = 0.05
MIN_LABEL_WEIGHT = 0.01


@dataclass(frozen=True)
class TextLabels:
    """What a text can name: the 1000 classes, then the WordNet concepts above them.
    `rows` are their directions in the image space (a concept's: the mean of its
    classes' classifier rows); `names` every name of every label, `label_of_name` the
    label each belongs to."""

    names: list[str]
    label_of_name: np.ndarray
    rows: np.ndarray
    members: list[tuple[int, ...]]  # each label's classes: (itself) for a class

    @classmethod
    def of(cls, class_names: list[str], concepts: list[Concept], classifier: np.ndarray):
        names, owners = [], []
        for label, class_name in enumerate(class_names):
            for name in dict.fromkeys(n.strip() for n in class_name.split(",")):
                names.append(name)
                owners.append(label)
        for i, concept in enumerate(concepts):
            names.extend(concept.names)
            owners.extend([len(class_names) + i] * len(concept.names))
        concept_rows = [classifier[list(c.classes)].mean(axis=0) for c in concepts]
        concept_rows = np.array(concept_rows, np.float32).reshape(-1, classifier.shape[1])
        rows = np.concatenate([classifier, concept_rows])
        members = [(c,) for c in range(len(class_names))] + [c.classes for c in concepts]
        return cls(names, np.array(owners), rows, members)


class SoftMaxScorer:
    """Scores images by weighted labels, each the soft maximum (SOFT_MAX_TEMPERATURE) of
    the image's cosines with its classes' unit rows."""

    def __init__(
        self, unit_rows: np.ndarray, groups: list[tuple[int, ...]], weights: np.ndarray
    ) -> None:
        classes = np.unique(np.concatenate([np.asarray(g, np.int64) for g in groups]))
        self.rows = unit_rows[classes]
        self.columns = [np.searchsorted(classes, group) for group in groups]
        self.weights = weights
        self.width = len(classes)

    @classmethod
    def named(cls, weights: np.ndarray, labels: TextLabels, unit_rows: np.ndarray):
        """The scorer of a text whose weights over `labels` are `weights`: the labels
        weighing MIN_LABEL_WEIGHT or more count (its best one when none does)."""
        named = np.flatnonzero(weights >= min(MIN_LABEL_WEIGHT, weights.max()))
        groups = [labels.members[label] for label in named]
        return cls(unit_rows, groups, weights[named] / weights[named].sum())

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        cosines = np.asarray(vectors, np.float32) @ self.rows.T
        total = np.zeros(len(cosines), np.float32)
        for weight, columns in zip(self.weights, self.columns, strict=True):
            part = cosines[:, columns]
            # the softmax-weighted mean of the cosines: the best one's when it stands out,
            # their mean when none does (log-sum-exp added T·ln(classes) to every image:
            # every photo passed a minimum of 0.25 for "an animal")
            pull = np.exp((part - part.max(axis=1, keepdims=True)) / SOFT_MAX_TEMPERATURE)
            total += weight * (pull * part).sum(axis=1) / pull.sum(axis=1)
        return total
