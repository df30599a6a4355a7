"""The review queue (core/review.py): decisions change the labels, undo takes each back
exactly, and the two orders."""

from __future__ import annotations

import numpy as np
import pytest

from visualsearch.core.labels import LabelBook
from visualsearch.core.proposals import Proposals
from visualsearch.core.review import ReviewQueue
from visualsearch.core.store import FileRecord, Store


@pytest.fixture
def queue(tmp_path):
    store = Store(tmp_path / "store")
    records = [FileRecord(f"img{i}.jpg", 10, 1, f"h{i}") for i in range(6)]
    store.commit_batch("m", records)
    book = LabelBook(store)
    cat, dog = book.create("cat"), book.create("dog")
    proposals = Proposals(
        np.array([1, 2, 3, 4]),
        np.array([cat.id, dog.id, cat.id, dog.id]),
        np.array([0.9, 0.55, 0.3, 0.99]),
    )
    q = ReviewQueue(book)
    q.load(proposals, [r.path for r in records], {r.path: r.hash for r in records})
    yield q, book, cat, dog
    store.close()


def test_most_sure_first_or_the_most_uncertain_first(queue):
    q, _, cat, _ = queue
    assert [p.path for p in q.items] == ["img4.jpg", "img1.jpg", "img2.jpg", "img3.jpg"]
    q.show(order="teach")
    assert [p.path for p in q.items] == ["img2.jpg", "img3.jpg", "img1.jpg", "img4.jpg"]
    q.show(label=cat.id, order="sure")
    assert [p.path for p in q.items] == ["img1.jpg", "img3.jpg"]
    with pytest.raises(ValueError):
        q.show(order="random")


def test_accept_reject_assign_and_undo_each(queue):
    q, book, cat, dog = queue
    first = q.accept(0)  # img4 is a dog
    assert book.labelled() == {"h4": dog.id} and first.path == "img4.jpg"
    q.reject(0)  # img1 is not a cat
    assert book.rejected() == {("h1", cat.id)}
    q.assign(0, cat.id)  # img2 was proposed a dog: a cat
    assert book.labelled() == {"h4": dog.id, "h2": cat.id}
    assert [p.path for p in q.items] == ["img3.jpg"]

    assert q.undo() == 0 and book.labelled() == {"h4": dog.id}
    assert q.items[0].path == "img2.jpg"
    assert q.undo() == 0 and book.rejected() == set()
    assert q.undo() == 0 and book.labelled() == {}
    assert [p.path for p in q.items] == ["img4.jpg", "img1.jpg", "img2.jpg", "img3.jpg"]
    assert q.undo() is None and not q.can_undo()


def test_undo_restores_a_label_an_accept_replaced(queue):
    q, book, cat, dog = queue
    book.assign(["h4"], cat.id)  # the person had said cat; the proposal says dog
    q.accept(0)
    assert book.labels_of(["h4"]) == {"h4": (dog.id, "accepted")}
    q.undo()
    assert book.labels_of(["h4"]) == {"h4": (cat.id, "user")}


def test_a_position_outside_the_queue_is_refused(queue):
    q, *_ = queue
    with pytest.raises(IndexError, match="holds 4"):
        q.accept(4)


def test_accepting_every_sure_proposal_is_one_undo(queue):
    q, book, cat, dog = queue
    assert q.accept_sure(0.5) == 3  # 0.99, 0.9, 0.55
    assert book.labelled() == {"h4": dog.id, "h1": cat.id, "h2": dog.id}
    assert [p.path for p in q.items] == ["img3.jpg"]
    q.undo()
    assert book.labelled() == {}
    assert [p.path for p in q.items] == ["img4.jpg", "img1.jpg", "img2.jpg", "img3.jpg"]
    assert q.accept_sure(1.0) == 0 and not q.can_undo()
