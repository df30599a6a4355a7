"""The folder filter beside the grid: the collection's folders as a tree, with image counts."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QTreeView, QVBoxLayout, QWidget

from visualsearch.core.names import printable
from visualsearch.core.sorting import FolderNode, folder_tree

FOLDER_ROLE = Qt.ItemDataRole.UserRole + 1  # the folder's relative path ("" = all images)
COUNT_ROLE = Qt.ItemDataRole.UserRole + 2  # images in it and its subfolders


def _images(n: int) -> str:
    return f"{n:,} image" + ("" if n == 1 else "s")


class FolderFilter(QWidget):
    """A compact tree: "All images (N)" on top, the folders below it, each with the number
    of images in it and its subfolders.

    `folder_chosen(folder)` ("" = all) fires when the user picks a folder (click or keys),
    and when `set_paths` finds that the chosen folder no longer exists (it then falls back to
    all images); `select_folder` never fires it.
    """

    folder_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = QStandardItemModel(self)
        self.view = QTreeView(headerHidden=True, uniformRowHeights=True)
        self.view.setModel(self.model)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setIndentation(12)
        self.view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.view.setAccessibleName("Folders")
        self.view.selectionModel().currentChanged.connect(self._current_changed)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self._items: dict[str, QStandardItem] = {}  # folder path → its row
        self._folder = ""
        self._updating = False
        self.set_paths([])

    def sizeHint(self) -> QSize:
        return QSize(180, 300)

    # -- what the window calls --------------------------------------------------------------

    def folder(self) -> str:
        """The chosen folder, relative to the root ("" = all images)."""
        return self._folder

    def folders(self) -> list[str]:
        """Every folder shown, parents first ("" = all images)."""
        return list(self._items)

    def count(self, folder: str) -> int | None:
        """The number of images shown for `folder` (with its subfolders), None if absent."""
        item = self._items.get(folder)
        return None if item is None else item.data(COUNT_ROLE)

    def index_of(self, folder: str) -> QModelIndex:
        """The tree's index of `folder` (invalid when it is not shown)."""
        item = self._items.get(folder)
        return item.index() if item is not None else QModelIndex()

    def set_paths(self, rel_paths: Iterable[str]) -> None:
        """Show the folders of `rel_paths` (POSIX, relative to the root)."""
        self.set_tree(folder_tree(rel_paths))

    def set_tree(self, tree: FolderNode) -> None:
        """Show the folders of `tree` (`folder_tree`'s). The chosen folder and the open
        branches stay as they were where they still exist."""
        nodes = {node.path: node for node in tree.walk()}
        if nodes.keys() == self._items.keys():  # same folders (say, while indexing): recount
            for path, node in nodes.items():
                self._label(self._items[path], node)
            return
        expanded = {p for p, item in self._items.items() if self.view.isExpanded(item.index())}
        self._updating = True
        try:
            self.model.clear()
            self._items = {}
            self.model.appendRow(self._build(tree))
            self.view.expand(self._items[""].index())
            for path in expanded:
                if path in self._items:
                    self.view.expand(self._items[path].index())
            vanished = self._folder not in self._items
            self._select(self._folder if not vanished else "")
        finally:
            self._updating = False
        if vanished:
            self._folder = ""
            self.folder_chosen.emit("")

    def select_folder(self, folder: str) -> bool:
        """Choose `folder` as if the user had, but without `folder_chosen`; False (and no
        change) when it is not in the tree."""
        folder = folder.strip("/")
        if folder not in self._items:
            return False
        self._updating = True
        try:
            self._select(folder)
        finally:
            self._updating = False
        self._folder = folder
        return True

    # -- inside -------------------------------------------------------------------------------

    def _build(self, node: FolderNode) -> QStandardItem:
        item = QStandardItem()
        item.setData(node.path, FOLDER_ROLE)
        self._label(item, node)
        self._items[node.path] = item
        for child in node.children:
            item.appendRow(self._build(child))
        return item

    def _label(self, item: QStandardItem, node: FolderNode) -> None:
        name = "All images" if not node.path else printable(node.name)
        item.setText(f"{name} ({node.count:,})")
        item.setData(node.count, COUNT_ROLE)
        where = "in the collection" if not node.path else f"in {printable(node.path)}"
        item.setToolTip(f"{_images(node.count)} {where}, subfolders included")

    def _select(self, folder: str) -> None:
        index = self._items[folder].index()
        parent = index.parent()
        while parent.isValid():
            self.view.expand(parent)
            parent = parent.parent()
        self.view.setCurrentIndex(index)
        self.view.scrollTo(index)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self._updating or not current.isValid():
            return
        folder = current.data(FOLDER_ROLE)
        if folder != self._folder:
            self._folder = folder
            self.folder_chosen.emit(folder)
