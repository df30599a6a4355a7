"""The Sort tab: the labels, and the review queue of proposals driven from the keyboard
(1–9 give label n, Space accept, X reject, Z undo, arrows move), with the image large
enough to judge. Widgets only: the sorting controller holds the state and does the work."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QKeyEvent, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from visualsearch.core.anomalies import DEFAULT_PERCENTILE
from visualsearch.core.labels import Label
from visualsearch.core.names import printable
from visualsearch.core.proposals import DEFAULT_SURE
from visualsearch.core.review import Proposal
from visualsearch.qt.thumbnails import ImageLoader
from visualsearch.qt.widgets import ElidedLabel

PREVIEW = QSize(560, 420)
THUMB = QSize(96, 96)
STRIP = 200  # proposals shown in the strip at once (the queue may hold 100,000)
FIRST_STEPS = "Make labels and give each a few images (3 or more) to see proposals."
KEYS_HELP = "Space accept · X reject · 1–9 give label n · Z undo · ← → move"


def _row(*widgets: QWidget, stretch: bool = False) -> QHBoxLayout:
    """The widgets side by side (with `stretch`, kept to the left)."""
    row = QHBoxLayout()
    for widget in widgets:
        row.addWidget(widget)
    if stretch:
        row.addStretch(1)
    return row


def swatch(colour: str) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(QColor(colour))
    return QIcon(pixmap)


class SortPage(QWidget):
    new_label = Signal()
    rename_label = Signal(int)
    recolour_label = Signal(int)
    delete_label = Signal(int)
    normal_label = Signal(int)
    from_subfolders = Signal()
    review_changed = Signal(object, str)  # label id or None (all), order ("sure" | "teach")
    sure_changed = Signal(float)
    accept = Signal(int)  # queue position
    reject = Signal(int)
    assign = Signal(int, int)  # position, label id
    undo = Signal()
    accept_all_sure = Signal()
    apply_requested = Signal()
    undo_sort_requested = Signal()
    anomalies_requested = Signal(float)  # percentile
    image_shown = Signal(Path)  # the proposal under review: its details
    evaluate_requested = Signal()
    export_requested = Signal()
    sidecars_requested = Signal()

    def __init__(self, thumbnails: ImageLoader, previews: ImageLoader) -> None:
        super().__init__()
        self._thumbnails, self._previews = thumbnails, previews
        self._labels: list[Label] = []
        self._queue: list[Proposal] = []
        self._rows: dict[str, int] = {}  # content hash → its row in the strip
        self._root = Path()
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        thumbnails.loaded.connect(self._thumbnail_loaded)
        previews.loaded.connect(self._preview_loaded)

        self.label_list = QListWidget()
        self.label_list.setMaximumWidth(240)
        buttons = []
        for text, act in (
            ("New…", self.new_label.emit),
            ("Rename…", lambda: self._with_label(self.rename_label)),
            ("Colour…", lambda: self._with_label(self.recolour_label)),
            ("Delete", lambda: self._with_label(self.delete_label)),
            ("Normal set", lambda: self._with_label(self.normal_label)),
        ):
            button = QPushButton(text)
            button.clicked.connect(act)
            buttons.append(button)
        buttons[-1].setToolTip(
            "Mark this label's images as normal: the rest is measured against them"
        )
        self.apply_button = QPushButton("Apply sort…")
        self.apply_button.setToolTip(
            "Copy, link or move the labelled images into a folder per label"
        )
        self.undo_sort_button = QPushButton("Undo last sort")
        self.export_button = QPushButton("Export labels…")
        self.export_button.setToolTip("The labelled images as CSV or JSON")
        self.export_button.clicked.connect(self.export_requested.emit)
        self.sidecars_button = QPushButton("XMP sidecars…")
        self.sidecars_button.setToolTip(
            "Each label as a keyword in a new photo.jpg.xmp beside the image (digiKam, "
            "darktable); existing sidecars and the images are left alone"
        )
        self.sidecars_button.clicked.connect(self.sidecars_requested.emit)
        self.subfolders_button = QPushButton("Use my subfolders as labels")
        self.subfolders_button.clicked.connect(self.from_subfolders.emit)
        self.evaluate_button = QPushButton("Which model fits my photos?")
        self.evaluate_button.setToolTip(
            "Each model's accuracy on the labelled images, and its speed here"
        )
        self.evaluate_button.clicked.connect(self.evaluate_requested.emit)
        self.percentile = QDoubleSpinBox(minimum=50.0, maximum=100.0, singleStep=1.0, decimals=1)
        self.percentile.setValue(DEFAULT_PERCENTILE)
        self.percentile.setSuffix(" %")
        self.percentile.setToolTip(
            "How far from the normal set counts as unusual: this percentile of the normal "
            "images' own distances (95 %: 1 normal image in 20 would be flagged)"
        )
        self.anomalies_button = QPushButton("Unlike the normal set")
        self.anomalies_button.clicked.connect(
            lambda: self.anomalies_requested.emit(self.percentile.value())
        )
        left = QVBoxLayout()
        left.addWidget(QLabel("<b>Labels</b>"))
        left.addWidget(self.label_list, 1)
        left.addLayout(_row(*buttons[:3]))
        left.addLayout(_row(*buttons[3:]))
        left.addWidget(self.subfolders_button)
        left.addLayout(_row(self.apply_button, self.undo_sort_button))
        left.addLayout(_row(self.export_button, self.sidecars_button))
        left.addWidget(self.evaluate_button)
        left.addLayout(_row(self.anomalies_button, self.percentile))

        self.review_label = QComboBox()
        self.review_label.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.review_label.setMinimumContentsLength(10)
        self.order = QComboBox()
        self.order.addItem("Most sure first", "sure")
        self.order.addItem("Teach me", "teach")
        self.order.setToolTip("Teach me: the most uncertain proposals first")
        self.sure = QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.05, decimals=2)
        self.sure.setValue(DEFAULT_SURE)
        self.sure.setToolTip("Proposals below this confidence are unsure")
        self.accept_sure_button = QPushButton("Accept all sure")
        # two rows: the window fits half a 1920 px screen
        bar = _row(QLabel("Review:"), self.review_label, self.order, stretch=True)
        actions = _row(QLabel("Sure from:"), self.sure, self.accept_sure_button, stretch=True)

        self.preview = QLabel(FIRST_STEPS)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setWordWrap(True)
        self.preview.setMinimumSize(PREVIEW / 2)
        self.preview.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.caption = QLabel()
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        self.caption.setWordWrap(True)
        self.path = ElidedLabel()  # a long file name never widens the window
        self.path.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.status = QLabel()
        self.strip = QListWidget()
        self.strip.setViewMode(QListView.ViewMode.IconMode)
        self.strip.setFlow(QListView.Flow.LeftToRight)
        self.strip.setWrapping(False)
        self.strip.setIconSize(THUMB)
        self.strip.setFixedHeight(THUMB.height() + 48)
        self.strip.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.strip.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the page takes the keys
        self.strip.currentRowChanged.connect(self._show_current)
        right = QVBoxLayout()
        right.addLayout(bar)
        right.addLayout(actions)
        right.addWidget(self.preview, 1)
        right.addWidget(self.caption)
        right.addWidget(self.path)
        right.addWidget(self.strip)
        right.addWidget(self.status)
        layout = QHBoxLayout(self)
        layout.addLayout(left)
        layout.addLayout(right, 1)

        self.review_label.currentIndexChanged.connect(self._review_changed)
        self.order.currentIndexChanged.connect(self._review_changed)
        self.sure.valueChanged.connect(self.sure_changed.emit)
        self.accept_sure_button.clicked.connect(self.accept_all_sure.emit)
        self.apply_button.clicked.connect(self.apply_requested.emit)
        self.undo_sort_button.clicked.connect(self.undo_sort_requested.emit)

    # -- what the controller shows --------------------------------------------------------

    def set_labels(self, labels: list[Label], counts: dict[int, int]) -> None:
        chosen = self.chosen_label()
        self._labels = labels
        self.label_list.clear()
        for n, label in enumerate(labels, start=1):
            key = f"{n}  " if n <= 9 else "   "
            normal = " · normal" if label.normal else ""
            text = f"{key}{printable(label.name)} ({counts.get(label.id, 0)}){normal}"
            item = QListWidgetItem(swatch(label.colour), text)
            item.setData(Qt.ItemDataRole.UserRole, label.id)
            self.label_list.addItem(item)
            if label.id == chosen:
                self.label_list.setCurrentItem(item)
        reviewed = self.review_label.currentData()
        self.review_label.blockSignals(True)
        self.review_label.clear()
        self.review_label.addItem("All labels", None)
        for label in labels:
            self.review_label.addItem(swatch(label.colour), printable(label.name), label.id)
        found = self.review_label.findData(reviewed)
        self.review_label.setCurrentIndex(max(found, 0))
        self.review_label.blockSignals(False)

    def chosen_label(self) -> int | None:
        item = self.label_list.currentItem()
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def set_queue(self, queue: list[Proposal], root: Path, position: int = 0) -> None:
        """Show the queue's first STRIP proposals, `position` current."""
        self._queue, self._root = list(queue[:STRIP]), root
        self._rows = {p.hash: row for row, p in enumerate(self._queue)}
        self.strip.blockSignals(True)
        self.strip.clear()
        names = {label.id: label for label in self._labels}
        for p in self._queue:
            label = names.get(p.label)
            item = QListWidgetItem(f"{p.confidence:.2f} {label.name if label else '?'}")
            pixmap = self._thumbnails.pixmap(p.hash, THUMB)
            if pixmap is not None:
                item.setIcon(QIcon(pixmap))
            self.strip.addItem(item)
        self.strip.blockSignals(False)
        self.strip.setCurrentRow(min(position, len(self._queue) - 1) if self._queue else -1)
        self._show_current(self.strip.currentRow())

    def set_status(self, text: str) -> None:
        self.status.setText(text)

    def position(self) -> int:
        return self.strip.currentRow()

    # -- keys -----------------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key, at = event.key(), self.position()
        if key == Qt.Key.Key_Z:
            self.undo.emit()
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Right) and self._queue:
            step = -1 if key == Qt.Key.Key_Left else 1
            self.strip.setCurrentRow(max(0, min(len(self._queue) - 1, at + step)))
        elif at < 0:
            super().keyPressEvent(event)
        elif key == Qt.Key.Key_Space:
            self.accept.emit(at)
        elif key == Qt.Key.Key_X:
            self.reject.emit(at)
        elif Qt.Key.Key_1 <= key <= Qt.Key.Key_9 and key - Qt.Key.Key_1 < len(self._labels):
            self.assign.emit(at, self._labels[key - Qt.Key.Key_1].id)
        else:
            super().keyPressEvent(event)

    # -- inside ---------------------------------------------------------------------------

    def _with_label(self, signal) -> None:
        label = self.chosen_label()
        if label is not None:
            signal.emit(label)

    def _review_changed(self) -> None:
        self.review_changed.emit(self.review_label.currentData(), self.order.currentData())

    def _show_current(self, row: int) -> None:
        if not 0 <= row < len(self._queue):
            self.preview.setPixmap(QPixmap())
            self.preview.setText("No proposals to review." if self._labels else FIRST_STEPS)
            self.caption.setText("")
            self.path.setText("")
            return
        p = self._queue[row]
        label = next((x for x in self._labels if x.id == p.label), None)
        name = printable(label.name) if label else "?"
        colour = label.colour if label else "#888888"
        self.caption.setText(
            f"<span style='color:{colour}'>■</span> <b>{name}</b>? confidence "
            f"{p.confidence:.2f}<br><small>{KEYS_HELP}</small>"
        )
        self.path.setText(printable(p.path))
        self.image_shown.emit(self._root / p.path)
        pixmap = self._previews.pixmap(str(self._root / p.path), PREVIEW)
        if pixmap is None:
            self.preview.setText("Loading…")
        else:
            self.preview.setPixmap(pixmap)

    def _preview_loaded(self, key: str) -> None:
        row = self.position()
        if 0 <= row < len(self._queue) and key == str(self._root / self._queue[row].path):
            self._show_current(row)

    def _thumbnail_loaded(self, key: str) -> None:
        row = self._rows.get(key)
        item = self.strip.item(row) if row is not None else None
        pixmap = self._thumbnails.pixmap(key, THUMB) if item is not None else None
        if pixmap is not None:
            item.setIcon(QIcon(pixmap))
