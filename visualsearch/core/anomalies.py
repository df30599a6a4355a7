"""Anomalies against a normal set (quality inspection): a label's images are "normal";
every other image gets its distance to its nearest normal examples, and the images
farther than the normal images themselves usually are fall outside.

The threshold comes from the normal images' own leave-one-out distances: a normal
image's distance to its nearest *other* normal images. At percentile 95, one normal
image in twenty would itself be called unusual; the user can move it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from visualsearch.core.collection import Collection
from visualsearch.core.labels import LabelBook

NEIGHBOURS = 5  # the distance is the mean over this many nearest normal images
DEFAULT_PERCENTILE = 95.0
_CHUNK = 2048  # rows compared with the normal set at once


@dataclass(frozen=True)
class Anomalies:
    """Each candidate's distance (1 − mean cosine to its nearest normal images), the
    threshold, and the normal images' own distances it came from."""

    distances: np.ndarray  # one per candidate row, in the order given
    threshold: float
    normal_distances: np.ndarray

    def outside(self) -> np.ndarray:
        """The candidates farther than the threshold, most unusual first."""
        rows = np.flatnonzero(self.distances > self.threshold)
        return rows[np.argsort(-self.distances[rows], kind="stable")]


def find_anomalies(
    normal: np.ndarray,
    candidates: np.ndarray,
    percentile: float = DEFAULT_PERCENTILE,
    neighbours: int = NEIGHBOURS,
) -> Anomalies:
    """`candidates` (unit rows) measured against the `normal` ones (unit rows)."""
    normal = np.asarray(normal, np.float32)
    if len(normal) < 2:
        raise ValueError("a normal set needs at least 2 images")
    if not 0 <= percentile <= 100:
        raise ValueError(f"the percentile is from 0 to 100, not {percentile}")
    k = max(1, min(neighbours, len(normal) - 1))
    own = _distances(normal, normal, k, leave_out_self=True)
    found = _distances(np.asarray(candidates, np.float32), normal, k)
    return Anomalies(found, float(np.percentile(own, percentile)), own)


def _distances(rows: np.ndarray, normal: np.ndarray, k: int, leave_out_self: bool = False):
    out = np.empty(len(rows), np.float32)
    for lo in range(0, len(rows), _CHUNK):
        sims = rows[lo : lo + _CHUNK] @ normal.T
        if leave_out_self:
            sims[np.arange(len(sims)), np.arange(lo, lo + len(sims))] = -np.inf
        nearest = -np.partition(-sims, k - 1, axis=1)[:, :k]
        out[lo : lo + len(sims)] = 1.0 - nearest.mean(axis=1)
    return out


def collection_anomalies(
    collection: Collection, book: LabelBook, percentile: float = DEFAULT_PERCENTILE
) -> tuple[list[tuple[str, float]], Anomalies]:
    """The collection's images outside the normal set (the label marked normal), most
    unusual first, as (catalog path, distance); the images with a label are left out."""
    normal_labels = [label.id for label in book.all() if label.normal]
    if not normal_labels:
        raise ValueError("mark a label as the normal set first")
    labelled = book.labelled()
    hashes = {r.path: r.hash for r in collection.store.image_records()}
    normal, others = [], []
    for row, path in enumerate(collection.paths):
        label = labelled.get(hashes.get(path))
        if label in normal_labels:
            normal.append(row)
        elif label is None:
            others.append(row)
    found = find_anomalies(
        collection.vectors_of(np.array(normal, np.int64)),
        collection.vectors_of(np.array(others, np.int64)),
        percentile,
    )
    outside = found.outside()
    return [(collection.paths[others[i]], float(found.distances[i])) for i in outside], found
