"""Label proposals from a few examples: a classifier on the stored vectors proposes a
label for every unlabelled image, with a calibrated confidence.

The classifier is scikit-learn's logistic regression (C=10): bench/sort.py measured it
against the nearest class mean and the nearest example on labelled real images, and it
was as good or better at every number of examples. Its own probabilities are far from
calibrated with a few examples (ECE 0.23 with 3 per label on the digits, 0.18 on faces),
so they are tempered: p^(1/T) renormalised, T fitted on the examples themselves, each
predicted by a model trained without it (3 folds). Measured over 12 random draws of the
examples: ECE 0.085 on the digits and 0.030 on faces at 3 per label (Platt scaling of
the top probability: 0.092 and 0.180).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from visualsearch.core.collection import Collection
from visualsearch.core.labels import LabelBook

MIN_EXAMPLES = 3  # per label, before it is proposed
C = 10.0  # bench/sort.py: C=1 lost 4-9 points of accuracy on the digits
FOLDS = 3
TEMPERATURES = np.geomspace(0.05, 5.0, 60)
# Proposals below this confidence are "unsure" (the window and CLI let it move)
DEFAULT_SURE = 0.5
_CHUNK = 8192  # rows scored at once: 100,000 float32 rows of 1280 would take 490 MB


class ProposalError(ValueError):
    """Proposals cannot be made yet; the message says what is missing."""


@dataclass(frozen=True)
class Proposals:
    """For each candidate (an index into the vectors given), the label proposed and the
    chance that it is right."""

    rows: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray

    def sure(self, threshold: float = DEFAULT_SURE) -> np.ndarray:
        return self.confidence >= threshold

    def __len__(self) -> int:
        return len(self.rows)


class Proposer:
    """A classifier trained on labelled vectors, with its fitted temperature."""

    def __init__(self, vectors: np.ndarray, labels: np.ndarray) -> None:
        vectors, labels = np.asarray(vectors, np.float32), np.asarray(labels)
        ids, counts = np.unique(labels, return_counts=True)
        kept = ids[counts >= MIN_EXAMPLES]
        if len(kept) < 2:
            raise ProposalError(
                f"proposals need two labels with at least {MIN_EXAMPLES} examples each "
                f"(now: {len(kept)})"
            )
        mask = np.isin(labels, kept)
        self.model = fit_classifier(vectors[mask], labels[mask])
        self.labels = self.model.classes_
        self._coef = self.model.coef_.astype(np.float32)
        self._intercept = self.model.intercept_.astype(np.float32)
        self.temperature = _temperature(vectors[mask], labels[mask], self.model)

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """(n, labels) calibrated chances, columns in `labels` order."""
        x = np.asarray(vectors, np.float32)
        # the model's own predict_proba works in float64: 0.13 s for 100,000 rows of
        # 1280, against 0.07 s for these float32 products
        logits = x @ self._coef.T + self._intercept
        if len(self.labels) == 2:  # a binary model has one row: the second label's logit
            logits = np.concatenate([np.zeros_like(logits), logits], axis=1)
        return _tempered_logits(logits, self.temperature)


def propose(
    vectors: np.ndarray,
    examples: Mapping[int, int],
    rejected: Mapping[int, set[int]] | None = None,
) -> Proposals:
    """A label for every row of `vectors` that is not an example (`examples`: row →
    label id). A row never gets a label the person rejected for it (`rejected`: row →
    label ids): the next most likely one instead, or none if every label was."""
    rows = np.fromiter(examples, np.int64, len(examples))
    labels = np.fromiter(examples.values(), np.int64, len(examples))
    proposer = Proposer(np.asarray(vectors[rows], np.float32), labels)
    candidates = np.setdiff1d(np.arange(len(vectors)), rows)
    if not len(candidates):
        return Proposals(candidates, candidates.copy(), np.zeros(0))
    chosen = np.empty(len(candidates), np.int64)
    top = np.empty(len(candidates), np.float64)  # the chance the proposal is right
    pairs = [(row, label) for row, labels in (rejected or {}).items() for label in labels]
    pairs = [
        (r, int(np.flatnonzero(proposer.labels == lb)[0]))
        for r, lb in pairs
        if lb in proposer.labels
    ]
    no_rows = np.array([r for r, _ in pairs], np.int64)
    no_columns = np.array([c for _, c in pairs], np.int64)
    for lo in range(0, len(candidates), _CHUNK):
        part = candidates[lo : lo + _CHUNK]
        p = proposer.probabilities(vectors[part])
        at = np.searchsorted(part, no_rows)  # the rejections of rows in this part
        inside = (at < len(part)) & (part[np.minimum(at, len(part) - 1)] == no_rows)
        p[at[inside], no_columns[inside]] = 0.0
        best = p.argmax(axis=1)
        chosen[lo : lo + len(part)] = proposer.labels[best]
        top[lo : lo + len(part)] = p[np.arange(len(part)), best]
    keep = top > 0  # every label rejected: nothing to propose
    return Proposals(candidates[keep], chosen[keep], top[keep])


def fit_classifier(vectors: np.ndarray, labels: np.ndarray, start=None):
    """The proposals' classifier (scikit-learn's LogisticRegression, C) fitted on unit
    vectors and their label ids; from the solution of `start` (a model of the same
    labels) when given: the problem is convex, so only the time changes."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    model = LogisticRegression(C=C, max_iter=300)
    if start is not None and np.array_equal(start.classes_, np.unique(labels)):
        model.set_params(warm_start=True)
        model.coef_, model.intercept_ = start.coef_.copy(), start.intercept_.copy()
    # one BLAS thread: 1,000 examples × 1280 fitted in 0.23 s, against 1.66 s with two
    # (the solver's many small products lose more to threading than they gain)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # "did not converge" at max_iter: still usable
        return model.fit(vectors, labels)


def _temperature(vectors: np.ndarray, labels: np.ndarray, whole) -> float:
    """The T whose tempered probabilities best predict each example from a model trained
    without it (FOLDS folds, each label spread over them): the least log-loss on a grid.
    Each fold's model starts from `whole`'s solution (the model of every example)."""
    folds = np.zeros(len(labels), np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        folds[members] = np.arange(len(members)) % FOLDS
    held: list[tuple[np.ndarray, np.ndarray]] = []  # (probabilities, column of the truth)
    for k in range(FOLDS):
        train, test = folds != k, folds == k
        if not test.any() or len(np.unique(labels[train])) < 2:
            continue
        model = fit_classifier(vectors[train], labels[train], start=whole)
        p = model.predict_proba(vectors[test])
        known = np.isin(labels[test], model.classes_)
        held.append((p[known], np.searchsorted(model.classes_, labels[test][known])))
    if not held:
        return 1.0

    def loss(t: float) -> float:
        return -sum(
            np.log(np.maximum(_tempered(p, t)[np.arange(len(truth)), truth], 1e-12)).sum()
            for p, truth in held
        )

    return float(min(TEMPERATURES, key=loss))


def _tempered(p: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities raised to 1/T and renormalised."""
    return _tempered_logits(np.log(np.maximum(p, 1e-12)), temperature)


def _tempered_logits(logits: np.ndarray, temperature: float) -> np.ndarray:
    """The softmax of logits / T."""
    z = logits / temperature
    z -= z.max(axis=1, keepdims=True)
    q = np.exp(z)
    return q / q.sum(axis=1, keepdims=True)


class _CollectionRows:
    """A collection's vectors indexed by path row, read as they are asked for."""

    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    def __len__(self) -> int:
        return len(self.collection)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        return self.collection.vectors_of(rows)


def content_hashes(collection: Collection) -> dict[str, str]:
    """Catalog path → content hash of the collection's readable images."""
    return {r.path: r.hash for r in collection.store.image_records() if r.hash}


def collection_proposals(
    collection: Collection, book: LabelBook, hashes: dict[str, str] | None = None
) -> Proposals:
    """`propose` over a collection's images (rows index `collection.paths`): its
    labelled contents are the examples, the person's rejections are kept out. `hashes`:
    `content_hashes(collection)`, when the caller has it (it reads every record)."""
    hashes = content_hashes(collection) if hashes is None else hashes
    labelled, rejected_pairs = book.labelled(), book.rejected()
    rejected_by_hash: dict[str, set[int]] = {}
    for digest, label in rejected_pairs:
        rejected_by_hash.setdefault(digest, set()).add(label)
    examples, rejected = {}, {}
    for row, path in enumerate(collection.paths):
        digest = hashes.get(path)
        if digest in labelled:
            examples[row] = labelled[digest]
        elif digest in rejected_by_hash:
            rejected[row] = rejected_by_hash[digest]
    return propose(_CollectionRows(collection), examples, rejected)
