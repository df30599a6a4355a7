"""Bugs a new user hit in the window (issue 11): the banner's link and drops."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QTextDocumentFragment
from PySide6.QtWidgets import QDialog, QPlainTextEdit

from tests.conftest import distinct_images
from tests.qt.conftest import INDEX_TIMEOUT_MS, open_and_wait


def _link_position(label, anchor_text: str) -> QPoint:
    """The middle of a link's words in a one-line rich-text label."""
    plain = QTextDocumentFragment.fromHtml(label.text()).toPlainText()
    metrics = label.fontMetrics()
    assert metrics.horizontalAdvance(plain) < label.contentsRect().width(), "not one line"
    before = plain[: plain.index(anchor_text)]
    x = metrics.horizontalAdvance(before) + metrics.horizontalAdvance(anchor_text) // 2
    return QPoint(label.contentsRect().left() + x, label.contentsRect().center().y())


def _skipped_dialogs(window) -> list[QDialog]:
    return [
        d
        for d in window.findChildren(QDialog)
        if d.isVisible() and d.windowTitle() == "Skipped files"
    ]


def test_show_them_in_the_skipped_files_banner_opens_the_list(qtbot, window, tmp_path):
    folder = tmp_path / "photos"
    distinct_images(folder, 2, size=64)
    (folder / "broken.jpg").write_bytes(b"not a JPEG at all")
    open_and_wait(qtbot, window, folder)
    label = window.message.label
    assert "Show them" in window.message.text()
    assert not _skipped_dialogs(window)

    with qtbot.waitSignal(label.linkActivated, timeout=5_000) as clicked:
        qtbot.mouseClick(label, Qt.MouseButton.LeftButton, pos=_link_position(label, "Show them"))
    assert clicked.args == ["skipped"]
    (dialog,) = _skipped_dialogs(window)
    assert "broken.jpg" in dialog.findChild(QPlainTextEdit).toPlainText()
    dialog.close()


def _file_drag(path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    return mime


def test_drops_are_copies_never_moves(qtbot, window, tmp_path):
    dragged = tmp_path / "dragged folder"
    dragged.mkdir()
    mime = _file_drag(dragged)
    pos = QPointF(window.grid.geometry().center())
    offered = Qt.DropAction.MoveAction | Qt.DropAction.CopyAction
    shift = Qt.KeyboardModifier.ShiftModifier  # a file manager's "move" gesture

    enter = QDragEnterEvent(pos.toPoint(), offered, mime, Qt.MouseButton.LeftButton, shift)
    assert enter.proposedAction() == Qt.DropAction.MoveAction
    window.dragEnterEvent(enter)
    assert enter.isAccepted() and enter.dropAction() == Qt.DropAction.CopyAction

    drop = QDropEvent(pos, offered, mime, Qt.MouseButton.LeftButton, shift)
    with qtbot.waitSignal(window.collection.indexing_finished, timeout=INDEX_TIMEOUT_MS):
        window.dropEvent(drop)  # opens the folder
    assert drop.isAccepted() and drop.dropAction() == Qt.DropAction.CopyAction
    assert dragged.is_dir()


def test_a_drag_that_can_only_move_is_refused(window, tmp_path):
    mime = _file_drag(tmp_path / "photo.jpg")
    enter = QDragEnterEvent(
        window.grid.geometry().center(),
        Qt.DropAction.MoveAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dragEnterEvent(enter)
    assert not enter.isAccepted()
