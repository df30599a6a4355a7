"""How well a model's vectors fit a person's labelled images: "which model fits my photos".

Every figure is read off the labelled vectors alone (unit rows, cosine = dot product):

- leave-one-out nearest neighbour: each image is given the label of its most similar
  other image (only the image itself is left out; identical files are one image in the
  store already, so near-copies count as neighbours, as they do in search);
- few-shot: k examples per label train the proposals' own classifier
  (`proposals.fit_classifier`), every other image of those labels is predicted, over
  repeated random splits: what the proposals will do with k labelled examples. Split r
  of k shots: for each label (in sorted order) the first k of a permutation of its rows,
  drawn in turn from one `np.random.default_rng([seed, k])`;
- mAP@10: how many of an image's ten nearest others share its label (see `_ap_at_10`).

The n × n similarities are never held at once: rows are compared CHUNK_ROWS at a time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from visualsearch.core.encoders.base import embed_files
from visualsearch.core.proposals import fit_classifier
from visualsearch.core.store import Store

CHUNK_ROWS = 512  # rows compared at once: 512 × 20,000 similarities = 41 MB (+82 MB ranks)
TOP = 10  # the "10" of mAP@10
MAX_PAIRS = 5  # confused pairs reported


@dataclass(frozen=True)
class LabelFigures:
    """One label's precision and recall under the leave-one-out nearest neighbour."""

    name: str
    images: int
    precision: float  # of the images predicted as this label, the share that are (0 if none)
    recall: float  # of this label's images, the share predicted as it


@dataclass(frozen=True)
class Evaluation:
    """The figures of one model's vectors against the labels (see the module's notes)."""

    images: int
    labels: list[str]  # sorted; the order of `confusion`'s rows and columns
    nearest_neighbour: float  # leave-one-out 1-NN accuracy
    # shots → (mean accuracy, standard deviation (ddof=0), repeats); a shot count is left
    # out when some label has no more images than it
    few_shot: dict[int, tuple[float, float, int]]
    map_at_10: float  # nan when no label has two images
    per_label: list[LabelFigures]
    confusion: np.ndarray  # (L, L) int64 counts; row = true label, column = predicted
    confused_pairs: list[tuple[str, str, int]]  # either direction summed, most first

    def as_dict(self) -> dict:
        """JSON-ready: plain numbers and lists, nan as None."""
        return {
            "images": self.images,
            "labels": list(self.labels),
            "nearest_neighbour": _number(self.nearest_neighbour),
            "few_shot": [
                {"shots": k, "accuracy": _number(m), "std": _number(s), "repeats": r}
                for k, (m, s, r) in sorted(self.few_shot.items())
            ],
            "map_at_10": _number(self.map_at_10),
            "per_label": [
                {
                    "name": f.name,
                    "images": f.images,
                    "precision": _number(f.precision),
                    "recall": _number(f.recall),
                }
                for f in self.per_label
            ],
            "confusion": self.confusion.tolist(),
            "confused_pairs": [
                {"first": a, "second": b, "count": n} for a, b, n in self.confused_pairs
            ],
        }


def evaluate_vectors(
    vectors: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    shots: Sequence[int] = (1, 5, 10),
    repeats: int = 10,
    seed: int = 0,
) -> Evaluation:
    """The figures for `vectors` (n, d), one label name per row in `labels`.

    Raises ValueError for fewer than 2 images or 2 labels, a length mismatch, non-finite
    or zero vectors, shots below 1 or repeats below 1. Rows not of unit length are
    normalised. The same `seed` gives the same few-shot figures, whatever other shot
    counts are asked for.
    """
    x = _unit_rows(vectors)
    names = np.asarray(labels, dtype=str)
    if names.ndim != 1 or len(names) != len(x):
        raise ValueError(f"{len(x)} vectors but {names.size} labels: one label per vector")
    if len(x) < 2:
        raise ValueError(f"evaluation needs at least 2 labelled images (got {len(x)})")
    label_names, ids = np.unique(names, return_inverse=True)
    if len(label_names) < 2:
        raise ValueError(f"evaluation needs at least 2 labels (got {len(label_names)})")
    if repeats < 1 or any(int(k) < 1 for k in shots):
        raise ValueError("shots and repeats must be at least 1")
    ids = ids.astype(np.int64)
    counts = np.bincount(ids, minlength=len(label_names))

    predicted, ap = _neighbour_figures(x, ids, counts)
    confusion = np.zeros((len(label_names), len(label_names)), np.int64)
    np.add.at(confusion, (ids, predicted), 1)
    kept = counts[ids] > 1
    return Evaluation(
        images=len(x),
        labels=[str(n) for n in label_names],
        nearest_neighbour=float(np.mean(predicted == ids)),
        few_shot=_few_shot(x, ids, counts, shots, repeats, seed),
        map_at_10=float(ap[kept].mean()) if kept.any() else math.nan,
        per_label=_per_label(label_names, counts, confusion),
        confusion=confusion,
        confused_pairs=_confused_pairs(label_names, confusion),
    )


def nearest_rows(vectors: np.ndarray, k: int = 10) -> np.ndarray:
    """(n, k): the indices of each unit row's k nearest other rows, nearest first."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1)[:, :k]


def neighbour_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """How far two sets of vectors of the same images agree on each image's k nearest
    others (mean share): how faithful a faster backend or another device is."""
    pairs = zip(nearest_rows(a, k), nearest_rows(b, k), strict=True)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in pairs]))


def projected_seconds(images_per_second: float, library_images: int) -> float:
    """Seconds to encode `library_images` at `images_per_second`."""
    if not images_per_second > 0 or library_images < 0:
        raise ValueError("the speed must be positive and the number of images not negative")
    return library_images / images_per_second


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"vectors must be a 2-d array of rows (got shape {x.shape})")
    if not np.isfinite(x).all():
        raise ValueError("vectors contain NaN or infinite values")
    norms = np.linalg.norm(x, axis=1)
    if len(x) and not (norms > 0).all():
        raise ValueError("vectors contain rows of zero length")
    if not np.allclose(norms, 1.0, atol=1e-4):
        x = x / norms[:, None]
    return np.ascontiguousarray(x)


def _neighbour_figures(
    x: np.ndarray, ids: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's leave-one-out nearest neighbour's label (ties: the lowest row) and its
    AP@10, comparing CHUNK_ROWS rows with all the others at a time."""
    n = len(x)
    chunk = max(1, int(CHUNK_ROWS))
    top = min(TOP, n - 1)
    predicted = np.empty(n, np.int64)
    ap = np.empty(n, np.float64)
    for lo in range(0, n, chunk):
        rows = np.arange(lo, min(lo + chunk, n))
        sims = x[rows] @ x.T
        sims[np.arange(len(rows)), rows] = -np.inf  # never its own neighbour
        predicted[rows] = ids[sims.argmax(axis=1)]
        best = np.argpartition(sims, n - top, axis=1)[:, n - top :]
        order = np.argsort(-np.take_along_axis(sims, best, axis=1), axis=1, kind="stable")
        ranked = np.take_along_axis(best, order, axis=1)
        ap[rows] = _ap_at_10(ids[ranked] == ids[rows][:, None], counts[ids[rows]] - 1)
    return predicted, ap


def _ap_at_10(relevant: np.ndarray, others: np.ndarray) -> np.ndarray:
    """AP@10 per row: the sum of precision@i over the ranks i ≤ 10 holding a same-label
    image, divided by min(10, the number of same-label others); 0 where there are none.

    `relevant`: (rows, ≤10) whether each ranked neighbour shares the row's label.
    """
    ranks = np.arange(1, relevant.shape[1] + 1)
    precision = np.cumsum(relevant, axis=1) / ranks
    total = (precision * relevant).sum(axis=1)
    return np.divide(total, np.minimum(TOP, others), out=np.zeros(len(total)), where=others > 0)


def _few_shot(
    x: np.ndarray,
    ids: np.ndarray,
    counts: np.ndarray,
    shots: Sequence[int],
    repeats: int,
    seed: int,
) -> dict[int, tuple[float, float, int]]:
    members = [np.flatnonzero(ids == label) for label in range(len(counts))]
    out: dict[int, tuple[float, float, int]] = {}
    for k in sorted({int(k) for k in shots}):
        if counts.min() <= k:
            continue  # some label would have nothing left to test
        # one BLAS thread: the fits are small, and threads made each 10-20x slower (2 cores)
        with threadpool_limits(limits=1, user_api="blas"):
            out[k] = _repeated_splits(x, ids, members, k, repeats, seed)
    return out


def _repeated_splits(
    x: np.ndarray, ids: np.ndarray, members: list[np.ndarray], k: int, repeats: int, seed: int
) -> tuple[float, float, int]:
    """Mean and standard deviation of the accuracy over `repeats` random k-shot splits."""
    rng = np.random.default_rng([seed, k])
    accuracy = []
    for _ in range(repeats):
        train = np.concatenate([rng.permutation(m)[:k] for m in members])
        test = np.ones(len(x), bool)
        test[train] = False
        model = fit_classifier(x[train], ids[train])
        accuracy.append(float(np.mean(model.predict(x[test]) == ids[test])))
    return float(np.mean(accuracy)), float(np.std(accuracy)), repeats


def _per_label(names: np.ndarray, counts: np.ndarray, confusion: np.ndarray) -> list[LabelFigures]:
    right = np.diag(confusion)
    called = confusion.sum(axis=0)
    return [
        LabelFigures(
            name=str(name),
            images=int(counts[i]),
            precision=float(right[i] / called[i]) if called[i] else 0.0,
            recall=float(right[i] / counts[i]),
        )
        for i, name in enumerate(names)
    ]


def _confused_pairs(names: np.ndarray, confusion: np.ndarray) -> list[tuple[str, str, int]]:
    both = confusion + confusion.T
    a, b = np.triu_indices(len(names), k=1)
    pairs = [(int(both[i, j]), int(i), int(j)) for i, j in zip(a, b, strict=True) if both[i, j]]
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    return [(str(names[i]), str(names[j]), n) for n, i, j in pairs[:MAX_PAIRS]]


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def encoding_speed(encoder, paths: Sequence[Path], limit: int = 48) -> float:
    """Images per second that `encoder` reads, decodes and encodes here, timed on up to
    `limit` of `paths` after one warm-up image (which loads the network)."""

    def encode(batch: Sequence[Path]) -> None:
        _, failed = embed_files(encoder, batch)
        if failed:
            raise failed[0][1]

    paths = list(paths)[: limit + 1]
    if len(paths) < 2:
        raise ValueError("timing a model needs at least 2 images")
    encode(paths[:1])
    started = time.perf_counter()
    encode(paths[1:])
    return (len(paths) - 1) / (time.perf_counter() - started)


def evaluate_stored(store: Store, model: str, labels: dict[str, str], **options) -> Evaluation:
    """`evaluate_vectors` on the labelled images' vectors stored for `model`."""
    vectors = store.load_vector_set(model)
    rows = [i for i, path in enumerate(vectors.paths) if path in labels]
    names = [labels[vectors.paths[i]] for i in rows]
    return evaluate_vectors(vectors.matrix[rows], names, **options)


def usable_labels(labels: dict[str, str], least: int = 2) -> tuple[dict[str, str], list[str]]:
    """The labels of `least` or more images (a label of one image has no neighbour of
    its own to find), and the names of those left out."""
    counts: dict[str, int] = {}
    for name in labels.values():
        counts[name] = counts.get(name, 0) + 1
    dropped = sorted(name for name, n in counts.items() if n < least)
    kept = {path: name for path, name in labels.items() if counts[name] >= least}
    return kept, dropped


@dataclass(frozen=True)
class ModelReport:
    """One model's figures on the labelled images, and its speed here when measured."""

    model: str
    evaluation: Evaluation
    images_per_second: float | None = None  # None: the model is not loaded here
    projected_seconds: float | None = None  # the whole folder at that speed


def model_report(
    store: Store, model: str, labels: dict[str, str], encoder=None, folder: Path | None = None
) -> ModelReport:
    """`evaluate_stored` for `model`; with its `encoder` and the images' `folder`, also
    its speed on the labelled files and the time the store's whole folder would take."""
    evaluation = evaluate_stored(store, model, labels)
    if encoder is None or folder is None:
        return ModelReport(model, evaluation)
    paths = [path for path in map(Path(folder).joinpath, sorted(labels)) if path.is_file()]
    speed = encoding_speed(encoder, paths)
    return ModelReport(model, evaluation, speed, projected_seconds(speed, store.image_count()))
