"""File ▸ Library…: the library's roots with their state and counts; add, remove, open;
and a search over all of them as one, unplugged ones included (their hits marked
offline, their thumbnails from their stores).

The roots, their stores and the offline rule are `core.library`'s; this only shows them.
Counting and searching read each root's store, so they run in the pool.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from visualsearch.core.encoders.base import Encoder
from visualsearch.core.library import Library, LibraryError, LibraryHit, RootState
from visualsearch.core.names import printable
from visualsearch.core.query import TextQuery
from visualsearch.qt.workers import TaskSlot

LIBRARY_HITS = 60  # best matches shown for a search over every root
HIT_ICON = 112


def library_search(
    library: Library, encoder: Callable[[], Encoder], text: str, cache_dir: Path | None = None
) -> list[tuple[LibraryHit, QImage | None]]:
    """The best matches for `text` over every root, with their thumbnails (in the pool:
    it may load the model and opens each root's store). LibraryError when no root is
    indexed with the model (not "no match": the words were never compared)."""
    model = encoder()
    hits = library.search(model, TextQuery(text), LIBRARY_HITS, cache_dir)
    if not hits and not library.indexed_with(model.id):
        raise LibraryError(
            f"no folder of the library is indexed with {model.id} yet: open one with "
            "that model chosen, or run visualsearch library index --model …"
        )
    images = []
    for data in library.thumbnails(hits):
        image = QImage.fromData(data) if data else None
        images.append(image if image is not None and not image.isNull() else None)
    return list(zip(hits, images, strict=True))


class LibraryDialog(QDialog):
    """The roots of `library`; `open_root` asks the window to open one of them, and
    `show_image` (root, image) to open a hit's root with the hit and its look-alikes.
    `encoder` loads the model searches use (called in the pool); `cache_dir` holds its
    scale, so that hits show matches (core/calibration.py)."""

    # Paths travel as Python objects and are looked up by row: a str through Qt loses the
    # bytes of a name that is not UTF-8 ("Sch\udcf6nbrunn" came back "Schnbrunn")
    open_root = Signal(object)  # Path
    show_image = Signal(object, object)  # root, image: Path

    def __init__(
        self,
        library: Library,
        pool: QThreadPool,
        encoder: Callable[[], Encoder],
        parent: QWidget | None = None,
        cache_dir: Path | None = None,
    ):
        super().__init__(parent)
        self.library = library
        self.encoder, self.cache_dir = encoder, cache_dir
        self._roots: list[Path] = []
        self._found: list[LibraryHit] = []
        self.searching = TaskSlot(pool, self)
        self.search_box = QLineEdit()
        self.search_box.setPlaceholderText(
            "Search every folder as one, unplugged ones too (press Enter)"
        )
        self.search_box.setClearButtonEnabled(True)
        self.search_box.returnPressed.connect(self.search)
        self.hits = QListWidget()
        self.hits.setViewMode(QListView.ViewMode.IconMode)
        self.hits.setResizeMode(QListView.ResizeMode.Adjust)
        self.hits.setMovement(QListView.Movement.Static)
        self.hits.setIconSize(QSize(HIT_ICON, HIT_ICON))
        self.hits.setGridSize(QSize(HIT_ICON + 40, HIT_ICON + 44))
        self.hits.setWordWrap(True)
        self.hits.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.hits.itemActivated.connect(self._hit_activated)
        self.hits.hide()
        self.setWindowTitle("Library")
        self.states: list[RootState] = []
        self.counting = TaskSlot(pool, self)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Folder", "State", "Images"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a path's end tells most
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        self.tree.itemDoubleClicked.connect(lambda *_: self.open_selected())
        self.note = QLabel(
            "Folders and drives searched as one (visualsearch library search). A drive that"
            " is unplugged stays listed, offline: its images are kept and nothing is"
            " encoded again when it is back."
        )
        self.note.setWordWrap(True)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.add_button = QPushButton("Add Folder…")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Take the folder off the list; what was indexed is kept")
        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Open the folder in the window")
        self.add_button.clicked.connect(self._choose_folder)
        self.remove_button.clicked.connect(self.remove_selected)
        self.open_button.clicked.connect(self.open_selected)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        for button in (self.add_button, self.remove_button, self.open_button):
            buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        for button in buttons.buttons():  # Enter in the search box searches, never closes
            button.setAutoDefault(False)
            button.setDefault(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.note)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.search_box)
        layout.addWidget(self.hits, 3)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        self.resize(820, 640)
        self.refresh()
        if library.roots:
            self.search_box.setFocus()  # what the dialog is opened for most

    def refresh(self) -> None:
        """List the roots now; their state and counts arrive from the pool."""
        self.tree.clear()
        self._roots = list(self.library.roots)  # a tree item's row is its index here
        for root in self._roots:
            item = QTreeWidgetItem([printable(str(root)), "…", ""])
            item.setToolTip(0, printable(str(root)))
            self.tree.addTopLevelItem(item)
        if not self.library.roots:
            self.message.setText("No folders yet: Add Folder… puts one in the library.")
        self._selection_changed()
        self.counting.start(self.library.states, self._show_states, self._failed)

    def _show_states(self, states: list[RootState]) -> None:
        self.states = states
        for state in states:
            item = self._item(state.path)
            if item is None:
                continue
            item.setText(1, "Damaged" if state.problem else "Online" if state.online else "Offline")
            item.setToolTip(
                1,
                "The folder is there"
                if state.online
                else "Not found (an unplugged drive?): still searchable from its index",
            )
            if state.problem:
                item.setToolTip(1, f"Its index cannot be read: {state.problem}")
            item.setText(2, f"{state.indexed:,}")
            item.setTextAlignment(2, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._selection_changed()

    def _failed(self, message: str) -> None:
        self.message.setText(f"The library could not be read: {message}")

    def _item(self, root: Path) -> QTreeWidgetItem | None:
        row = self._roots.index(root) if root in self._roots else -1
        return self.tree.topLevelItem(row) if 0 <= row < self.tree.topLevelItemCount() else None

    def _selected(self) -> Path | None:
        items = self.tree.selectedItems()
        row = self.tree.indexOfTopLevelItem(items[0]) if items else -1
        return self._roots[row] if 0 <= row < len(self._roots) else None

    def _selected_state(self) -> RootState | None:
        root = self._selected()
        return next((s for s in self.states if s.path == root), None)

    def _selection_changed(self) -> None:
        root, state = self._selected(), self._selected_state()
        self.remove_button.setEnabled(root is not None)
        self.open_button.setEnabled(state is not None and state.online)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder to the library")
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str | Path) -> None:
        try:
            root = self.library.add(Path(folder))
        except LibraryError as exc:
            self.message.setText(str(exc))
            return
        self.message.setText(
            f"Added {printable(str(root))}. visualsearch library index indexes every folder"
            " that is plugged in; opening it here indexes it too."
        )
        self.refresh()

    def remove_selected(self) -> None:
        root = self._selected()
        if root is None:
            return
        self.library.remove(root)
        self.message.setText(f"Removed {printable(str(root))}; what was indexed is kept.")
        self.refresh()

    def open_selected(self) -> None:
        root, state = self._selected(), self._selected_state()
        if root is None or state is None or not state.online:
            if root is not None:
                self.message.setText(f"{printable(str(root))} is offline: plug it in to open it.")
            return
        self.open_root.emit(root)
        self.accept()

    # -- searching every root ---------------------------------------------------------------

    def search(self) -> None:
        text = self.search_box.text().strip()
        if not text:
            return
        if not self.library.roots:
            self.message.setText("No folders yet: Add Folder… puts one in the library.")
            return
        self.message.setText(f"Searching every folder for “{printable(text)}”…")
        self.searching.start(
            lambda: library_search(self.library, self.encoder, text, self.cache_dir),
            lambda found: self._show_hits(text, found),
            lambda why: self.message.setText(f"Nothing searched: {why}."),
        )

    def _show_hits(self, text: str, found: list[tuple[LibraryHit, QImage | None]]) -> None:
        self.hits.clear()
        self.hits.show()
        self._found = [hit for hit, _ in found]
        for hit, image in found:
            path = hit.hit.path
            label = f"{printable(path.name)}\n{hit.hit.score:.2f}"
            item = QListWidgetItem(label + (" · offline" if hit.offline else ""))
            if image is not None:
                item.setIcon(QIcon(QPixmap.fromImage(image)))
            where = printable(str(path))
            item.setToolTip(
                f"{where}\nnot plugged in: shown from its index" if hit.offline else where
            )
            if hit.offline:
                item.setForeground(QColor(Qt.GlobalColor.gray))
            self.hits.addItem(item)  # its row is its hit's index in `found`
        roots = len({hit.root for hit, _ in found})
        offline = sum(1 for hit, _ in found if hit.offline)
        self.message.setText(
            f"No images match “{printable(text)}”."
            if not found
            else f"The best {len(found)} for “{printable(text)}” from {roots} "
            + ("folder" if roots == 1 else "folders")
            + (f", {offline} offline" if offline else "")
            + ". Double-click one to open its folder with the images most like it."
        )

    def _hit_activated(self, item: QListWidgetItem) -> None:
        hit = self._found[self.hits.row(item)]
        root, path = hit.root, hit.hit.path
        if hit.offline:
            self.message.setText(
                f"{printable(str(root))} is offline: plug it in to open {printable(path.name)}."
            )
            return
        self.show_image.emit(root, path)
        self.accept()
