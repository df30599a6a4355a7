"""The Map tab: the map view beside the list of clusters (names, sizes, examples)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from visualsearch.core.collection_map import CollectionMap
from visualsearch.qt.map_view import MapView, cluster_colours
from visualsearch.qt.thumbnails import ImageLoader

EXAMPLE = QSize(30, 30)
EXAMPLES = 2
PANEL_WIDTH = 250  # the list beside the map: the map gets the rest of the tab


class ClusterPanel(QWidget):
    k_changed = Signal(object)  # an int, or None for automatic
    cluster_activated = Signal(int)
    renamed = Signal(int, str)
    export_requested = Signal(list)  # cluster numbers
    relayout_requested = Signal()

    def __init__(self, thumbnails: ImageLoader, parent=None) -> None:
        super().__init__(parent)
        self._thumbnails = thumbnails
        self._examples: list[list[str | None]] = []
        self._filling = False
        thumbnails.loaded.connect(self._thumbnail_loaded)
        self.auto = QCheckBox("Automatic", checked=True)
        self.auto.setToolTip(
            "Let visualsearch choose how many clusters: one per group of clearly alike"
            " images, at most 40"
        )
        self.k = QSpinBox(minimum=1, maximum=60, value=8)
        self.k.setEnabled(False)
        self.k.setToolTip("How many clusters")
        self.auto.toggled.connect(self._k_mode_changed)
        self.k.editingFinished.connect(self._k_edited)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(3)
        self.tree.setHeaderLabels(["Cluster", "#", "Examples"])
        self.tree.headerItem().setToolTip(0, "Double-click a name to change it")
        self.tree.headerItem().setToolTip(1, "Images in the cluster")
        self.tree.headerItem().setToolTip(2, "The images closest to the cluster's centre")
        self.tree.setRootIsDecorated(False)
        self.tree.setIconSize(
            QSize(EXAMPLE.width() * EXAMPLES + 3 * (EXAMPLES - 1), EXAMPLE.height())
        )
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.setMinimumWidth(200)
        self.tree.itemChanged.connect(self._item_changed)
        self.tree.itemClicked.connect(self._item_clicked)
        self.export_button = QPushButton("Export checked clusters…")
        self.export_button.setToolTip(
            "Copy (or link) the images of the checked clusters into folders"
        )
        self.export_button.clicked.connect(self._export_clicked)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setMinimumWidth(1)  # wrapped text never widens the panel
        self.relayout_button = QPushButton("Lay out again")
        self.relayout_button.setToolTip(
            "Arrange every image afresh and find the clusters again (new images were"
            " placed beside the ones most like them, without moving the others)"
        )
        self.relayout_button.setVisible(False)
        self.relayout_button.clicked.connect(self.relayout_requested)
        top = QHBoxLayout()
        top.addWidget(QLabel("Clusters:"))
        top.addWidget(self.auto)
        top.addWidget(self.k)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.relayout_button)
        layout.addWidget(self.export_button)

    def sizeHint(self) -> QSize:
        return QSize(PANEL_WIDTH, super().sizeHint().height())

    def set_map(self, cmap: CollectionMap, hashes: list[str | None]) -> None:
        self._filling = True
        self.tree.clear()
        colours = cluster_colours(cmap.clustering.k)
        sizes = cmap.clustering.sizes()
        self._examples = [[hashes[r] for r in reps[:EXAMPLES]] for reps in cmap.representatives]
        for c in range(cmap.clustering.k):
            item = QTreeWidgetItem([cmap.names[c], f"{sizes[c]:,}", ""])
            item.setData(0, Qt.ItemDataRole.UserRole, c)
            item.setToolTip(0, f"{cmap.names[c]}\nSuggested: {cmap.suggested[c]}")
            item.setFlags(
                item.flags() | Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsUserCheckable
            )
            item.setCheckState(0, Qt.CheckState.Checked)
            item.setIcon(0, _swatch(colours[c]))
            item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.tree.addTopLevelItem(item)
        self._refresh_examples()
        self.tree.resizeColumnToContents(1)
        self.tree.resizeColumnToContents(2)
        self.auto.blockSignals(True)
        self.auto.setChecked(cmap.clustering.auto)
        self.auto.blockSignals(False)
        self.k.setEnabled(not cmap.clustering.auto)
        self.k.setValue(cmap.clustering.k)
        status = f"{len(cmap.paths):,} images in {cmap.clustering.k} clusters."
        if cmap.lost_names:
            lost = ", ".join(f"“{name}”" for name in cmap.lost_names)
            status += (
                f" No cluster holds most of the images named {lost} now; the name"
                " comes back when a cluster does."
            )
        if cmap.placed:
            status += (
                f" {cmap.placed:,} images added since the map was laid out were placed"
                " beside the images most like them."
            )
        self.relayout_button.setVisible(cmap.placed > 0)
        self.status.setText(status)
        self._filling = False

    def checked(self) -> list[int]:
        out = []
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.checkState(0) == Qt.CheckState.Checked:
                out.append(item.data(0, Qt.ItemDataRole.UserRole))
        return out

    def _refresh_examples(self) -> None:
        for i in range(self.tree.topLevelItemCount()):
            self.tree.topLevelItem(i).setIcon(2, self._strip(self._examples[i]))

    def _strip(self, digests: list[str | None]) -> QIcon:
        size = self.tree.iconSize()
        pixmap = QPixmap(size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        for i, digest in enumerate(digests):
            thumb = self._thumbnails.pixmap(digest, EXAMPLE) if digest else None
            x = i * (EXAMPLE.width() + 3)
            if thumb is None:
                painter.fillRect(x, 0, EXAMPLE.width(), EXAMPLE.height(), QColor(225, 225, 225))
            else:
                painter.drawPixmap(
                    x + (EXAMPLE.width() - thumb.width()) // 2,
                    (EXAMPLE.height() - thumb.height()) // 2,
                    thumb,
                )
        painter.end()
        return QIcon(pixmap)

    def _thumbnail_loaded(self, digest: str) -> None:
        if any(digest in ex for ex in self._examples):
            self._filling = True
            self._refresh_examples()
            self._filling = False

    def _k_mode_changed(self, auto: bool) -> None:
        self.k.setEnabled(not auto)
        self.k_changed.emit(None if auto else self.k.value())

    def _k_edited(self) -> None:
        if not self.auto.isChecked():
            self.k_changed.emit(self.k.value())

    def _item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if not self._filling and column == 0:
            self.renamed.emit(item.data(0, Qt.ItemDataRole.UserRole), item.text(0).strip())

    def _item_clicked(self, item: QTreeWidgetItem, column: int) -> None:
        self.cluster_activated.emit(item.data(0, Qt.ItemDataRole.UserRole))

    def _export_clicked(self) -> None:
        self.export_requested.emit(self.checked())


def _swatch(colour: QColor) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(colour)
    return QIcon(pixmap)


class MapPage(QWidget):
    """Map and clusters side by side, with the selection's actions above them."""

    more_like_these = Signal()
    export_selection = Signal()

    def __init__(self, thumbnails: ImageLoader, parent=None) -> None:
        super().__init__(parent)
        self.view = MapView(thumbnails)
        self.clusters = ClusterPanel(thumbnails)
        self.lasso = QPushButton("Lasso", checkable=True)
        self.lasso.setToolTip("Drag to draw around images (or hold Shift while dragging)")
        self.lasso.toggled.connect(self._lasso_toggled)
        reset = QPushButton("Fit")
        reset.setToolTip("Show the whole map (0)")
        reset.clicked.connect(self.view.reset_view)
        self.more = QPushButton("Find more like these")
        self.more.setToolTip("Rank the collection by the selected images' mean vector")
        self.more.clicked.connect(self.more_like_these)
        self.export = QPushButton("Export selection…")
        self.export.clicked.connect(self.export_selection)
        self.selection_label = QLabel("Wheel to zoom, drag to pan, Shift+drag to select.")
        self.selection_label.setWordWrap(True)  # else its width alone keeps the window wide
        self.message = QLabel()
        self.view.selection_changed.connect(self._selection_changed)
        bar = QHBoxLayout()
        for w in (self.lasso, reset, self.more, self.export):
            bar.addWidget(w)
        bar.addWidget(self.selection_label, 1)
        self.splitter = splitter = QSplitter()
        splitter.addWidget(self.view)
        splitter.addWidget(self.clusters)
        splitter.setCollapsible(0, False)
        # growing the window widens the map only; the list keeps its width (drag to change)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.message)
        layout.addWidget(splitter, 1)
        self._selection_changed([])

    def _lasso_toggled(self, on: bool) -> None:
        self.view.lasso_mode = on

    def _selection_changed(self, rows) -> None:
        n = len(rows)
        self.more.setEnabled(n > 0)
        self.export.setEnabled(n > 0)
        if n:
            self.selection_label.setText(f"{n:,} selected")
