"""Anomalies against a normal set (core/anomalies.py) on real images with the real
built-in model: faces are the normal set; the images that are not faces fall outside."""

from __future__ import annotations

import numpy as np
import pytest

from tests import labelled_photos
from visualsearch.core.anomalies import collection_anomalies, find_anomalies
from visualsearch.core.collection import Collection
from visualsearch.core.indexing import index_folder
from visualsearch.core.labels import LabelBook
from visualsearch.core.store import Store


@pytest.fixture(scope="module")
def inspected(tmp_path_factory, builtin_encoder):
    """50 faces marked normal; 50 other faces and 100 non-faces to inspect."""
    folder = labelled_photos.faces(tmp_path_factory.mktemp("faces"))
    store = Store(tmp_path_factory.mktemp("store"), root=folder)
    index_folder(folder, store, builtin_encoder)
    book = LabelBook(store)
    normal = book.create("good")
    book.set_normal(normal.id)
    faces = sorted(
        (r for r in store.image_records() if r.path.startswith("face/")), key=lambda r: r.path
    )
    book.assign([r.hash for r in faces[:50]], normal.id)
    yield Collection(folder, store, builtin_encoder), book
    store.close()


def test_what_is_not_a_face_falls_outside_the_faces(inspected):
    collection, book = inspected
    outside, found = collection_anomalies(collection, book)
    names = [path for path, _ in outside]
    not_faces = [p for p in names if p.startswith("not a face/")]
    assert len(not_faces) / len(names) >= 0.9  # what is flagged is unusual
    assert len(not_faces) >= 80  # and most of the unusual is flagged
    distances = [d for _, d in outside]
    assert distances == sorted(distances, reverse=True) and min(distances) > found.threshold
    # the threshold is the normal images' own 95th percentile: 1 in 20 would be flagged
    assert np.mean(found.normal_distances > found.threshold) == pytest.approx(0.05, abs=0.03)


def test_a_lower_percentile_flags_more(inspected):
    collection, book = inspected
    strict, _ = collection_anomalies(collection, book, percentile=50)
    loose, _ = collection_anomalies(collection, book, percentile=99)
    assert len(strict) > len(loose)


def test_the_distances_are_those_to_the_nearest_normal_images():
    rng = np.random.default_rng(0)
    normal = (1 + 0.3 * rng.normal(size=(30, 8))).astype(np.float32)  # one tight group
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    far = -normal[:3]
    found = find_anomalies(normal, np.concatenate([normal[:2], far]), neighbours=3)
    direct = 1 - np.sort(far @ normal.T, axis=1)[:, -3:].mean(axis=1)
    np.testing.assert_allclose(found.distances[2:], direct, rtol=1e-5)
    assert set(found.outside().tolist()) >= {2, 3, 4}
    with pytest.raises(ValueError, match="at least 2"):
        find_anomalies(normal[:1], far)
    with pytest.raises(ValueError, match="percentile"):
        find_anomalies(normal, far, percentile=101)


def test_without_a_normal_label_it_says_so(inspected):
    collection, book = inspected
    (label,) = [x for x in book.all() if x.normal]
    book.set_normal(label.id, False)
    try:
        with pytest.raises(ValueError, match="normal set first"):
            collection_anomalies(collection, book)
    finally:
        book.set_normal(label.id, True)
