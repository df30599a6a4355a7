"""What the user can do with the images in the grid: find similar, open, show in the
file manager, copy paths, the context menu; and queries from drops and the clipboard."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QBuffer, QIODevice, QMimeData, QModelIndex, QObject, Qt, QUrl, Signal
from PySide6.QtGui import QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QMenu

from visualsearch.core.query import ImageDataQuery, ImageQuery, Query, SelectionQuery
from visualsearch.qt.desktop import show_in_file_manager
from visualsearch.qt.results_controller import ResultsController


def query_for_mime(mime: QMimeData) -> Query | Path | None:
    """What dropped or pasted data asks for: a folder to open, an image query, or None."""
    files = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
    if files:
        return files[0] if files[0].is_dir() else ImageQuery(files[0])
    if mime.hasImage():
        image = QImage(mime.imageData())
        if image.isNull():
            return None
        buffer = QBuffer()
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buffer, "PNG")
        return ImageDataQuery(bytes(buffer.data()))
    return None


def accept_without_move(event: QDropEvent) -> None:
    """Accept a drag or drop as a copy (or link), never a move: a file manager deletes
    the source of an accepted move. Offered only a move, it is refused."""
    for action in (Qt.DropAction.CopyAction, Qt.DropAction.LinkAction):
        if event.possibleActions() & action:
            event.setDropAction(action)
            event.accept()
            return
    event.ignore()


class FileActions(QObject):
    open_folder = Signal(Path)
    message = Signal(str, str)  # text, "info" | "error"

    def __init__(
        self,
        results: ResultsController,
        open_url: Callable[[QUrl], bool],
        parent: QObject | None = None,
        label_menu: Callable[[QMenu, list[str]], None] | None = None,
    ) -> None:
        """`label_menu` adds the "Label as" entries for the selected images (their
        catalog paths) to the grid's context menu."""
        super().__init__(parent)
        self.label_menu = label_menu
        self.results = results
        self.grid = results.grid
        self.model = results.model
        self.open_url = open_url
        self.grid.activated_item.connect(self.activated)
        self.grid.customContextMenuRequested.connect(self._menu)

    def selection_size(self) -> int:
        """How many images are selected, without listing them (Ctrl+A on a million)."""
        return sum(r.height() for r in self.grid.selectionModel().selection())

    def selected_paths(self) -> list[Path]:
        rows = sorted({i.row() for i in self.grid.selectionModel().selectedIndexes()})
        if not rows and self.grid.currentIndex().isValid():
            rows = [self.grid.currentIndex().row()]
        return [self.model.item(r).path for r in rows]

    def activated(self, index: QModelIndex) -> None:
        selected = self.selected_paths()
        if len(selected) > 1:  # Enter on a multi-selection: more like these
            self.results.run_query(SelectionQuery(tuple(selected)))
        else:
            self.results.find_similar(Path(self.model.item(index.row()).path))

    def similar_to_current(self) -> None:
        if self.grid.currentIndex().isValid():
            self.activated(self.grid.currentIndex())

    def copy_paths(self) -> None:
        paths = self.selected_paths()
        if paths:
            QGuiApplication.clipboard().setText("\n".join(str(p) for p in paths))

    def open_path(self, path: Path) -> None:
        if not self.open_url(QUrl.fromLocalFile(str(path))):
            self.message.emit(f"No application could open {path}.", "error")

    def show_in_folder(self, path: Path) -> None:
        if not show_in_file_manager(Path(path), self.open_url):
            self.message.emit(f"Could not open the folder {Path(path).parent}.", "error")

    def ask(self, mime: QMimeData) -> bool:
        """Open the dropped/pasted folder or search with the image; False if neither."""
        what = query_for_mime(mime)
        if isinstance(what, Path):
            self.open_folder.emit(what)
        elif what is not None:
            self.results.run_query(what)
        return what is not None

    def paste(self) -> None:
        if not self.ask(QGuiApplication.clipboard().mimeData()):
            self.message.emit("The clipboard holds no image or image file to search with.", "info")

    def _menu(self, pos) -> None:
        index = self.grid.indexAt(pos)
        if not index.isValid():
            return
        path = self.model.item(index.row()).path
        menu = QMenu(self.grid)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)  # and its lambdas with it
        selected = self.selected_paths()
        if len(selected) > 1:
            menu.addAction(
                f"Find more like these {len(selected)}",
                lambda: self.results.run_query(SelectionQuery(tuple(selected))),
            )
        menu.addAction("Find similar", lambda: self.results.find_similar(path))
        if self.label_menu is not None:
            rows = sorted({i.row() for i in self.grid.selectionModel().selectedIndexes()})
            rels = [rel for r in rows or [index.row()] if (rel := self.model.item(r).rel)]
            self.label_menu(menu, rels)
        menu.addSeparator()
        menu.addAction("Open", lambda: self.open_path(path))
        menu.addAction("Show in folder", lambda: self.show_in_folder(path))
        menu.addAction("Copy path", self.copy_paths)
        menu.popup(self.grid.viewport().mapToGlobal(pos))
