"""The Duplicates tab: groups of copies with their facts and a suggested copy to keep;
a click on a group shows its copies side by side, large, their differences highlighted;
marked images go to the system trash after a confirmation."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from visualsearch.core.duplicates import DuplicateGroup, presets
from visualsearch.core.names import human_size
from visualsearch.core.sorting import record_date
from visualsearch.core.store import FileRecord
from visualsearch.qt.duplicates_compare import ComparisonStrip
from visualsearch.qt.thumbnails import ImageLoader, load_preview

INTRO = "Find groups of copies: exact copies and edited ones (crops, resizes…)."
THUMB = QSize(72, 72)
EXPANDED = 25  # groups shown open at first; the rest load their thumbnails when opened
PATH_ROLE = Qt.ItemDataRole.UserRole
HASH_ROLE = Qt.ItemDataRole.UserRole + 1
PROTECTED_ROLE = Qt.ItemDataRole.UserRole + 2  # why it is never moved to the trash, or ""


class DuplicatesPage(QWidget):
    find_requested = Signal(float)  # threshold
    trash_requested = Signal(list)  # [Path]
    export_requested = Signal()
    image_activated = Signal(Path)  # double-click
    image_clicked = Signal(Path)  # the current row changed: show its details

    def __init__(
        self, thumbnails: ImageLoader, previews: ImageLoader | None = None, parent=None
    ) -> None:
        """`previews` loads the large images compared side by side (keyed by path, as
        `load_preview` does); without one the page makes its own."""
        super().__init__(parent)
        self._thumbnails = thumbnails
        self._presets = presets(0.9)  # until the model tells its own
        self.groups: list[DuplicateGroup] = []
        self._root = Path()
        self._compared: QTreeWidgetItem | None = None  # the group's header row
        thumbnails.loaded.connect(self._thumbnail_loaded)
        if previews is None:
            self._pool = QThreadPool(self)
            previews = ImageLoader(load_preview, self._pool, "compare", threads=1)
            previews.setParent(self)  # deleted after the pool, which waits for its loads
        self._previews = previews
        self.comparison = ComparisonStrip(previews)
        self.comparison.member_clicked.connect(self._comparison_clicked)
        self.comparison.member_activated.connect(self._comparison_activated)
        self.comparison.mark_toggled.connect(self._comparison_marked)
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
        self.summary = QLabel(INTRO)
        self.summary.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Image", "Resolution", "Size", "Date", "Format", "Folder"])
        self.tree.setIconSize(THUMB)
        self.tree.setUniformRowHeights(False)
        # as wide as their contents: a name, a reason or a folder is never cut off (the
        # tree scrolls sideways instead)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setStretchLastSection(False)
        self.tree.itemExpanded.connect(self._load_thumbnails)
        self.tree.itemDoubleClicked.connect(self._double_clicked)
        self.tree.currentItemChanged.connect(self._current_changed)
        self.tree.itemChanged.connect(self._item_changed)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.tree)
        self.splitter.addWidget(self.comparison)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)  # the images get the larger share
        self.splitter.setSizes([2000, 3000])  # as a ratio: the tree's size hint asks for more
        top = QHBoxLayout()
        top.addWidget(QLabel("How alike:"))
        top.addWidget(self.preset)
        top.addWidget(self.slider, 1)
        top.addWidget(self.value)
        top.addWidget(self.find)
        actions = QHBoxLayout()
        for b in (self.mark, self.trash, self.export):
            actions.addWidget(b)
        actions.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.summary)  # a line of its own: beside the buttons it was squeezed
        layout.addLayout(actions)
        layout.addWidget(self.splitter, 1)
        self._preset_chosen(self.preset.currentText())
        self._update_buttons()

    def set_model_threshold(self, near_duplicate: float) -> None:
        """The model's presets; the slider moves to the chosen one only when they change
        (every indexing run tells the model: a value the user set stays)."""
        if presets(near_duplicate) == self._presets:
            return
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

    def clear(self) -> None:
        """Another folder: no groups, and nothing looked for yet."""
        self.set_groups([], Path())
        self.summary.setText(INTRO)

    def set_groups(self, groups: list[DuplicateGroup], root: Path) -> None:
        self.groups = groups
        self._root = root
        self._compared = None
        self.comparison.clear()
        self.tree.clear()
        for n, group in enumerate(groups, 1):
            head = QTreeWidgetItem([_head_text(n, group)])
            head.setFirstColumnSpanned(True)
            head.setFlags(head.flags() & ~Qt.ItemFlag.ItemIsSelectable)
            self.tree.addTopLevelItem(head)
            head.setFirstColumnSpanned(True)
            for i, r in enumerate(group.members):
                path = root / r.path
                protected = group.protected[i] if group.protected else ""
                label = path.name + (_keep_text(group.keep_reason) if i == 0 else "")
                if protected:
                    label += f"\nnever moved to the trash: {protected}"
                child = QTreeWidgetItem(
                    [
                        label,
                        f"{r.width} × {r.height}" if r.width else "",
                        human_size(r.size),
                        date_text(r),
                        r.format or "",
                        (Path(root.name) / Path(r.path).parent).as_posix(),
                    ]
                )
                child.setToolTip(3, _date_tip(r))
                child.setToolTip(5, str(path.parent))
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
        self.summary.setText(_summary_text(groups))
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
        """Take trashed images out of their groups (and groups left with one image); the
        groups' headers, the summary and the list for CSV export follow."""
        gone = {str(p) for p in paths}
        for i in reversed(range(self.tree.topLevelItemCount())):
            head = self.tree.topLevelItem(i)
            for j in reversed(range(head.childCount())):
                if head.child(j).data(0, PATH_ROLE) in gone:
                    head.removeChild(head.child(j))
            if head.childCount() < 2:
                self.tree.takeTopLevelItem(i)
        kept = (_without(g, gone, self._root) for g in self.groups)
        self.groups = [g for g in kept if len(g.members) > 1]
        for n, group in enumerate(self.groups, 1):
            self.tree.topLevelItem(n - 1).setText(0, _head_text(n, group))
        self.summary.setText(_summary_text(self.groups))
        self._update_buttons()
        self._refresh_comparison()

    def compared_group(self) -> DuplicateGroup | None:
        """The group shown side by side, if any."""
        if self._compared is None:
            return None
        n = self.tree.indexOfTopLevelItem(self._compared)
        return self.groups[n] if 0 <= n < len(self.groups) else None

    def _compare(self, head: QTreeWidgetItem) -> None:
        """Show `head`'s group side by side (again, after its members changed)."""
        n = self.tree.indexOfTopLevelItem(head)
        if not 0 <= n < len(self.groups):
            return
        self._compared = head
        marked = [
            head.child(j).checkState(0) == Qt.CheckState.Checked for j in range(head.childCount())
        ]
        self.comparison.show_group(self.groups[n], self._root, marked)

    def _refresh_comparison(self) -> None:
        if self._compared is not None and self.compared_group() is not None:
            self._compare(self._compared)
            current = self.tree.currentItem()
            if current is not None and current.parent() is self._compared:
                self.comparison.select(self._compared.indexOfChild(current))
        else:
            self._compared = None
            self.comparison.clear()

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

    def _current_changed(self, item: QTreeWidgetItem | None, _previous) -> None:
        if item is None:
            return
        head = item.parent() or item
        if head is not self._compared:
            self._compare(head)
        self.comparison.select(head.indexOfChild(item) if item is not head else None)
        path = item.data(0, PATH_ROLE)
        if path:
            self.image_clicked.emit(Path(path))

    def _item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        """A row's check box changed: the comparison's trash box follows."""
        if column == 0 and self._compared is not None and item.parent() is self._compared:
            j = self._compared.indexOfChild(item)
            if j < len(self.comparison.cells):
                self.comparison.set_marked(j, item.checkState(0) == Qt.CheckState.Checked)

    def _comparison_clicked(self, index: int) -> None:
        if self._compared is not None:
            self.tree.setCurrentItem(self._compared.child(index))

    def _comparison_activated(self, index: int) -> None:
        if self._compared is not None:
            self.image_activated.emit(Path(self._compared.child(index).data(0, PATH_ROLE)))

    def _comparison_marked(self, index: int, marked: bool) -> None:
        if self._compared is not None:
            state = Qt.CheckState.Checked if marked else Qt.CheckState.Unchecked
            self._compared.child(index).setCheckState(0, state)


def _head_text(n: int, group: DuplicateGroup) -> str:
    kind = "identical files" if group.exact else f"similarity ≥ {group.similarity:.2f}"
    return f"Group {n} · {len(group.members)} images · {kind}"


def _summary_text(groups: list[DuplicateGroup]) -> str:
    if not groups:
        return "No duplicates at this similarity."
    extra = sum(len(g.members) - 1 for g in groups)
    return (
        f"{len(groups)} groups; {extra} images beyond one per group. The suggested copy to "
        "keep is first, in bold. Marked images go to the trash only after you confirm."
    )


def _without(group: DuplicateGroup, gone: set[str], root: Path) -> DuplicateGroup:
    """`group` less the members whose paths (under `root`) are in `gone`."""
    keep = [i for i, r in enumerate(group.members) if str(root / r.path) not in gone]
    return replace(
        group,
        rows=[group.rows[i] for i in keep],
        members=[group.members[i] for i in keep],
        protected=[group.protected[i] for i in keep] if group.protected else [],
    )


def date_text(record: FileRecord) -> str:
    """The day taken (EXIF), else the day the file was modified, marked as such."""
    date = record_date(record)
    if date is None:
        return ""
    return f"{date.when:%Y-%m-%d}" + (" (file date)" if date.source == "file" else "")


def _date_tip(record: FileRecord) -> str:
    date = record_date(record)
    if date is None:
        return "No date taken in the file, nor a modification time"
    if date.source == "taken":
        return f"Taken {record.taken} (EXIF)"
    return f"No date taken in the file; modified {date.when:%Y-%m-%d %H:%M:%S}"


def _keep_text(reason: str) -> str:
    """The keeper's reason below its name, one reason a line, so that none is cut off."""
    reasons = re.split(r",\s+(?![^()]*\))", reason)  # commas outside parentheses
    return "\nkeep: " + ",\n".join(reasons)
