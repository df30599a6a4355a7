"""Sorting by example in the real window (offscreen, the real built-in model): labels
from subfolders, the review queue driven from the keyboard, and a move into label
folders undone byte-identical."""

from __future__ import annotations

import hashlib

import pytest
from PySide6.QtCore import Qt

from tests import labelled_photos
from tests.qt.conftest import open_and_wait
from visualsearch.core.model_evaluation import evaluate_stored
from visualsearch.qt.sort_page import FIRST_STEPS


def checksums(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.fixture
def faces(tmp_path):
    return labelled_photos.faces(tmp_path / "faces")


def wait_for_queue(qtbot, window, n: int) -> None:
    qtbot.waitUntil(lambda: len(window.sorting.queue.items) == n, timeout=30_000)


def keep_examples(window, per_label: int = 3) -> dict[str, int]:
    """Every image labelled by its subfolder, then all but `per_label` per label unlabelled;
    returns each image's true label."""
    book = window.sorting.book
    truth = {p: label.id for p, label in book.paths_by_label().items()}
    seen: dict[int, int] = {}
    drop = []
    for path in sorted(truth):
        seen[truth[path]] = seen.get(truth[path], 0) + 1
        if seen[truth[path]] > per_label:
            drop.append(window.collection.records[path].hash)
    book.assign(drop, None)
    return truth


def test_the_review_queue_from_the_keyboard(qtbot, window, faces):
    open_and_wait(qtbot, window, faces)
    window.tabs.setCurrentWidget(window.sort_page)
    page = window.sort_page
    qtbot.mouseClick(page.subfolders_button, Qt.MouseButton.LeftButton)
    assert [page.label_list.item(i).text() for i in range(2)] == [
        "1  face (100)",
        "2  not a face (100)",
    ]
    truth = keep_examples(window)
    window.sorting.propose()
    wait_for_queue(qtbot, window, 194)
    book, queue = window.sorting.book, window.sorting.queue
    assert page.strip.count() == 194 and page.position() == 0
    assert "confidence" in page.caption.text()
    first = queue.items[0]

    page.setFocus()
    qtbot.keyClick(page, Qt.Key.Key_Space)  # accept: the image gets the proposed label
    assert book.labels_of([first.hash])[first.hash] == (first.label, "accepted")
    assert len(queue.items) == 193 and queue.items[0] != first

    second = queue.items[0]
    qtbot.keyClick(page, Qt.Key.Key_X)  # reject: never proposed that label again
    assert (second.hash, second.label) in book.rejected()

    qtbot.keyClick(page, Qt.Key.Key_Right)
    assert page.position() == 1
    moved_to = queue.items[1]
    other = next(label.id for label in book.all() if label.id != moved_to.label)
    key = Qt.Key.Key_1 if other == book.all()[0].id else Qt.Key.Key_2
    qtbot.keyClick(page, key)  # give the other label, whatever was proposed
    assert book.labels_of([moved_to.hash])[moved_to.hash] == (other, "user")

    qtbot.keyClick(page, Qt.Key.Key_Z)  # undo, three times: as before
    assert book.labels_of([moved_to.hash])[moved_to.hash] is None
    qtbot.keyClick(page, Qt.Key.Key_Z)
    assert (second.hash, second.label) not in book.rejected()
    qtbot.keyClick(page, Qt.Key.Key_Z)
    assert book.labels_of([first.hash])[first.hash] is None
    assert len(queue.items) == 194 and queue.items[0] == first

    # retraining after a decision keeps the queue going; the proposals are right
    qtbot.keyClick(page, Qt.Key.Key_Space)
    wait_for_queue(qtbot, window, 193)
    right = [truth[p.path] == p.label for p in queue.items]
    assert sum(right) / len(right) >= 0.95


def test_a_move_into_label_folders_is_undone_byte_identical(qtbot, make_window, faces, tmp_path):
    window = make_window()
    window.ctx.confirm.answer = True
    dest = tmp_path / "sorted"
    taken = dest / "face" / "lfw_000.png"
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"someone else's file")
    window.sorting.ask_sort = lambda _parent: (dest, "move")
    open_and_wait(qtbot, window, faces)
    before = checksums(faces)
    window.sorting.from_subfolders()

    with qtbot.waitSignal(
        window.sorting.message, timeout=60_000, check_params_cb=lambda t, _: "Move:" in t
    ):
        window.sorting.apply()
    assert window.ctx.confirm.asked[-1][0] == "Move images"
    assert not list(faces.rglob("*.png"))  # every image moved
    assert taken.read_bytes() == b"someone else's file"  # never overwritten
    assert (dest / "face" / "lfw_000 (2).png").is_file()

    with qtbot.waitSignal(
        window.sorting.message, timeout=60_000, check_params_cb=lambda t, _: "Undone" in t
    ):
        window.sorting.undo_sort()
    assert checksums(faces) == before
    assert checksums(dest) == {
        "face/lfw_000.png": hashlib.sha256(b"someone else's file").hexdigest()
    }


def test_the_evaluation_report_and_the_images_unlike_the_normal_set(qtbot, window, faces):
    open_and_wait(qtbot, window, faces)
    page, sorting = window.sort_page, window.sorting
    window.tabs.setCurrentWidget(page)
    sorting.from_subfolders()

    qtbot.mouseClick(page.evaluate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.evaluation.report is not None, timeout=60_000)
    report = window.evaluation.report
    (model,) = report.reports
    direct = evaluate_stored(
        window.sorting.book.store, model.model, window.sorting.book.names_by_path()
    )
    assert report.table.item(0, 1).text() == f"{direct.nearest_neighbour:.2f}"
    assert model.images_per_second > 0  # the folder's model: its speed measured here
    diagonal = sum(int(report.confusion.item(i, i).text()) for i in range(2))
    assert diagonal == int(direct.confusion.trace()) and diagonal >= 195
    report.close()

    face = next(label for label in sorting.book.all() if label.name == "face")
    sorting.book.set_normal(face.id)
    keep_examples(window, per_label=50)  # 50 normal faces; the rest is inspected
    sorting.book.assign(
        [r.hash for p, r in window.collection.records.items() if p.startswith("not a face/")],
        None,
    )
    with qtbot.waitSignal(window.results.results_shown, timeout=60_000):
        qtbot.mouseClick(page.anomalies_button, Qt.MouseButton.LeftButton)
    assert window.tabs.currentIndex() == 0  # the grid shows them
    shown = [window.model.item(i).rel for i in range(window.model.rowCount())]
    assert sum(p.startswith("not a face/") for p in shown) / len(shown) >= 0.9
    assert "Unlike the normal set" in window.results_area.query_label.text()


def test_labels_leave_the_window_as_csv_and_as_xmp_sidecars(qtbot, make_window, faces, tmp_path):
    window = make_window()
    window.ctx.confirm.answer = True
    open_and_wait(qtbot, window, faces)
    window.sorting.from_subfolders()
    window.sorting.export_labels(tmp_path / "labels.csv")
    rows = (tmp_path / "labels.csv").read_text("utf-8").splitlines()
    assert rows[0] == "path,label,colour,source" and len(rows) == 201
    images = checksums(faces)
    with qtbot.waitSignal(
        window.sorting.message, timeout=60_000, check_params_cb=lambda t, _: "XMP" in t
    ):
        qtbot.mouseClick(window.sort_page.sidecars_button, Qt.MouseButton.LeftButton)
    assert window.ctx.confirm.asked[-1][0] == "XMP sidecars"
    assert len(list(faces.rglob("*.png.xmp"))) == 200
    assert {k: v for k, v in checksums(faces).items() if not k.endswith(".xmp")} == images


def test_an_empty_sort_tab_says_what_to_do_first(qtbot, window, faces):
    """Opening a folder cleared the queue and the hint with it (a pixmap set on the
    label takes its text away): the tab was blank."""
    open_and_wait(qtbot, window, faces)
    assert window.sort_page.preview.text() == FIRST_STEPS
