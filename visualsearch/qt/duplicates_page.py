"""The Duplicates tab: groups of copies side by side with their facts and a suggested
copy to keep; marked images go to the system trash after a confirmation."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from visualsearch.core.duplicates import DuplicateGroup, presets
from visualsearch.qt.models import human_size
from visualsearch.qt.thumbnails import ImageLoader

THUMB = QSize(72, 72)
EXPANDED = 25  # groups shown open at first; the rest load their thumbnails when opened
PATH_ROLE = Qt.ItemDataRole.UserRole
HASH_ROLE = Qt.ItemDataRole.UserRole + 1
PROTECTED_ROLE = Qt.ItemDataRole.UserRole + 2  # why it is never moved to the trash, or ""


class DuplicatesPage(QWidget):
    find_requested = Signal(float)  # threshold
    trash_requested = Signal(list)  # [Path]
    export_requested = Signal()
    image_activated = Signal(Path)

    def __init__(self, thumbnails: ImageLoader, parent=None) -> None:
        super().__init__(parent)
        self._thumbnails = thumbnails
        self._presets = presets(0.9)
        self.groups: list[DuplicateGroup] = []
        thumbnails.loaded.connect(self._thumbnail_loaded)
        self.preset = QComboBox()
        self.preset.addItems(["identical", "near-identical", "similar"])
        self.preset.setCurrentText("near-identical")
        self.preset.currentTextChanged.connect(self._preset_chosen)
        self.slider = QSlider(Qt.Orientation.Horizontal, minimum=50, maximum=100)
        self.slider.setToolTip("How alike images must be to count as copies")
        self.slider.valueChanged.connect(self._slider_moved)
        self.value = QLabel()
        self.find = QPushButton("Find duplicates")
        self.find.clicked.connect(lambda: self.find_requested.emit(self.threshold()))
        self.mark = QPushButton("Mark all but the suggested copy")
        self.mark.clicked.connect(self.mark_all_but_keepers)
        self.trash = QPushButton("Move marked to trash…")
        self.trash.clicked.connect(lambda: self.trash_requested.emit(self.marked()))
        self.export = QPushButton("Export list as CSV…")
        self.export.clicked.connect(self.export_requested)
        self.summary = QLabel(
            "Find groups of copies: exact copies and edited ones (crops, resizes…)."
        )
        self.summary.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Image", "Resolution", "Size", "Date", "Format", "Folder"])
        self.tree.setIconSize(THUMB)
        self.tree.setUniformRowHeights(False)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.tree.setColumnWidth(0, 400)
        self.tree.itemExpanded.connect(self._load_thumbnails)
        self.tree.itemDoubleClicked.connect(self._double_clicked)
        top = QHBoxLayout()
        top.addWidget(QLabel("How alike:"))
        top.addWidget(self.preset)
        top.addWidget(self.slider, 1)
        top.addWidget(self.value)
        top.addWidget(self.find)
        actions = QHBoxLayout()
        actions.addWidget(self.summary, 1)
        for b in (self.mark, self.trash, self.export):
            actions.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addLayout(actions)
        layout.addWidget(self.tree, 1)
        self.set_model_threshold(0.9)
        self._update_buttons()

    def set_model_threshold(self, near_duplicate: float) -> None:
        self._presets = presets(near_duplicate)
        self._preset_chosen(self.preset.currentText())

    def threshold(self) -> float:
        return self.slider.value() / 100.0

    def _preset_chosen(self, name: str) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(round(self._presets[name] * 100))
        self.slider.blockSignals(False)
        self.value.setText(f"{self.threshold():.2f}")

    def _slider_moved(self, _value: int) -> None:
        self.value.setText(f"{self.threshold():.2f}")

    def set_groups(self, groups: list[DuplicateGroup], root: Path) -> None:
        self.groups = groups
        self.tree.clear()
        for n, group in enumerate(groups, 1):
            kind = "identical files" if group.exact else f"similarity ≥ {group.similarity:.2f}"
            head = QTreeWidgetItem([f"Group {n} · {len(group.rows)} images · {kind}"])
            head.setFirstColumnSpanned(True)
            head.setFlags(head.flags() & ~Qt.ItemFlag.ItemIsSelectable)
            self.tree.addTopLevelItem(head)
            head.setFirstColumnSpanned(True)
            for i, r in enumerate(group.members):
                path = root / r.path
                protected = group.protected[i] if group.protected else ""
                label = path.name + (f"\nkeep: {group.keep_reason}" if i == 0 else "")
                if protected:
                    label += f"\nnever moved to the trash: {protected}"
                child = QTreeWidgetItem(
                    [
                        label,
                        f"{r.width} × {r.height}" if r.width else "",
                        human_size(r.size),
                        r.taken or "",
                        r.format or "",
                        str(path.parent),
                    ]
                )
                child.setData(0, PATH_ROLE, str(path))
                child.setData(0, HASH_ROLE, r.hash)
                child.setData(0, PROTECTED_ROLE, protected)
                child.setFlags(child.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                child.setCheckState(0, Qt.CheckState.Unchecked)
                if protected:  # a link: trashing it would remove only the link
                    child.setFlags(child.flags() & ~Qt.ItemFlag.ItemIsUserCheckable)
                    child.setData(0, Qt.ItemDataRole.CheckStateRole, None)
                    child.setToolTip(0, f"Never moved to the trash: {protected}")
                if i == 0:
                    child.setToolTip(0, f"Suggested copy to keep: {group.keep_reason}")
                    font = child.font(0)
                    font.setBold(True)
                    child.setFont(0, font)
                head.addChild(child)
            if n <= EXPANDED:
                head.setExpanded(True)
        extra = sum(len(g.rows) - 1 for g in groups)
        self.summary.setText(
            f"{len(groups)} groups; {extra} images beyond one per group. The suggested copy to "
            "keep is first, in bold. Marked images go to the trash only after you confirm."
            if groups
            else "No duplicates at this similarity."
        )
        self._update_buttons()

    def image_items(self):
        for i in range(self.tree.topLevelItemCount()):
            head = self.tree.topLevelItem(i)
            for j in range(head.childCount()):
                yield head.child(j)

    def marked(self) -> list[Path]:
        return [
            Path(item.data(0, PATH_ROLE))
            for item in self.image_items()
            if item.checkState(0) == Qt.CheckState.Checked and not item.data(0, PROTECTED_ROLE)
        ]

    def mark_all_but_keepers(self) -> None:
        """Mark every copy but the suggested one, except links and files outside the folder."""
        for i in range(self.tree.topLevelItemCount()):
            head = self.tree.topLevelItem(i)
            for j in range(head.childCount()):
                child = head.child(j)
                if not child.data(0, PROTECTED_ROLE):
                    child.setCheckState(
                        0, Qt.CheckState.Unchecked if j == 0 else Qt.CheckState.Checked
                    )

    def remove_paths(self, paths: list[Path]) -> None:
        """Take trashed images out of their groups (and groups left with one image)."""
        gone = {str(p) for p in paths}
        for i in reversed(range(self.tree.topLevelItemCount())):
            head = self.tree.topLevelItem(i)
            for j in reversed(range(head.childCount())):
                if head.child(j).data(0, PATH_ROLE) in gone:
                    head.removeChild(head.child(j))
            if head.childCount() < 2:
                self.tree.takeTopLevelItem(i)
        self._update_buttons()

    def _update_buttons(self) -> None:
        has = self.tree.topLevelItemCount() > 0
        for b in (self.mark, self.trash, self.export):
            b.setEnabled(has)

    def _load_thumbnails(self, head: QTreeWidgetItem) -> None:
        for j in range(head.childCount()):
            self._set_icon(head.child(j))

    def _set_icon(self, item: QTreeWidgetItem) -> None:
        digest = item.data(0, HASH_ROLE)
        pixmap = self._thumbnails.pixmap(digest, THUMB) if digest else None
        if pixmap is not None:
            item.setIcon(0, QIcon(pixmap))

    def _thumbnail_loaded(self, digest: str) -> None:
        for item in self.image_items():
            if item.data(0, HASH_ROLE) == digest and item.parent().isExpanded():
                self._set_icon(item)

    def _double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        path = item.data(0, PATH_ROLE)
        if path:
            self.image_activated.emit(Path(path))
