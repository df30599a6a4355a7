"""Proposals from a few examples (core/proposals.py) on real labelled images indexed
with the real built-in model: their precision at the default threshold, rejections
kept out, and what is missing said in words."""

from __future__ import annotations

import numpy as np
import pytest

from tests import labelled_photos
from visualsearch.core.collection import Collection
from visualsearch.core.indexing import index_folder
from visualsearch.core.labels import LabelBook
from visualsearch.core.proposals import (
    DEFAULT_SURE,
    ProposalError,
    collection_proposals,
    propose,
)
from visualsearch.core.store import Store


def labelled_collection(folder, store_dir, encoder, examples: int = 3):
    """The folder indexed; its subfolders' labels kept for `examples` images per label
    only (the rest are the truth the proposals are checked against)."""
    store = Store(store_dir, root=folder)
    index_folder(folder, store, encoder)
    book = LabelBook(store)
    book.from_subfolders()
    truth = {path: label.id for path, label in book.paths_by_label().items()}
    records = {r.path: r.hash for r in store.image_records()}
    kept: dict[int, int] = {}
    for path in sorted(truth):
        label = truth[path]
        if kept.get(label, 0) < examples:
            kept[label] = kept.get(label, 0) + 1
        else:
            book.assign([records[path]], None)
    return Collection(folder, store, encoder), book, truth


def precision_and_coverage(collection, proposals, truth, threshold=DEFAULT_SURE):
    sure = proposals.sure(threshold)
    right = np.array(
        [
            truth[collection.paths[r]] == label
            for r, label in zip(proposals.rows, proposals.labels, strict=True)
        ]
    )
    return right[sure].mean(), sure.mean()


@pytest.fixture(scope="module")
def faces(tmp_path_factory, builtin_encoder):
    folder = labelled_photos.faces(tmp_path_factory.mktemp("faces"))
    return labelled_collection(folder, tmp_path_factory.mktemp("store"), builtin_encoder)


@pytest.fixture(scope="module")
def digits(tmp_path_factory, builtin_encoder):
    folder = labelled_photos.digits(tmp_path_factory.mktemp("digits"))
    return labelled_collection(folder, tmp_path_factory.mktemp("store"), builtin_encoder)


def test_three_faces_and_three_others_sort_the_rest(faces):
    """Measured: precision 0.99 over all 194 others, every one sure (bench/sort.py)."""
    collection, book, truth = faces
    proposals = collection_proposals(collection, book)
    assert len(proposals) == 194  # every image but the six examples
    precision, coverage = precision_and_coverage(collection, proposals, truth)
    assert precision >= 0.95 and coverage >= 0.9, (precision, coverage)


def test_digits_are_hard_for_the_built_in_model_and_the_confidence_says_so(digits):
    """ImageNet features tell handwritten digits apart poorly (about 40 % right with three
    examples each): the sure proposals are far more often right than the rest."""
    collection, book, truth = digits
    proposals = collection_proposals(collection, book)
    right = np.array(
        [
            truth[collection.paths[r]] == label
            for r, label in zip(proposals.rows, proposals.labels, strict=True)
        ]
    )
    sure = proposals.sure()
    assert 0.2 < right.mean() < 0.7
    assert right[sure].mean() > right[~sure].mean() + 0.2, (right[sure].mean(), right.mean())


def test_a_rejected_label_is_never_proposed_again(faces):
    collection, book, _ = faces
    before = collection_proposals(collection, book)
    row, label = int(before.rows[0]), int(before.labels[0])
    digest = collection.store.record(collection.paths[row]).hash
    book.reject(digest, label)
    try:
        after = collection_proposals(collection, book)
        i = int(np.flatnonzero(after.rows == row)[0])
        assert after.labels[i] != label  # the other label, with its lower confidence
        assert after.confidence[i] < before.confidence[0]
    finally:
        book.unreject(digest, label)


def test_what_is_missing_is_said():
    vectors = np.eye(8, dtype=np.float32)
    with pytest.raises(ProposalError, match="two labels with at least 3 examples"):
        propose(vectors, {0: 1, 1: 1, 2: 1})
    with pytest.raises(ProposalError, match=r"\(now: 1\)"):
        propose(vectors, {0: 1, 1: 1, 2: 1, 3: 2, 4: 2})
    every = propose(vectors, {i: 1 + i % 2 for i in range(8)})
    assert len(every) == 0  # every image is an example: nothing to propose
