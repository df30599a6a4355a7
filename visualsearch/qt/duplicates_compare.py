"""A duplicate group's images side by side, large, each with its facts underneath: the
facts that differ between the copies in bold colour, the best value of each starred, the
suggested copy to keep marked, and a check box that marks a copy for the trash."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QMouseEvent, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QGridLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QWidget,
)

from visualsearch.core.compare import BEST, FIELDS, LABELS, Fact, compare
from visualsearch.core.duplicates import DuplicateGroup
from visualsearch.core.names import printable
from visualsearch.qt.thumbnails import ImageLoader

PREVIEW = QSize(640, 640)  # decoded once at this size, then scaled to fit each cell
CELL_WIDTH = 240  # the narrowest a cell gets; more copies than fit scroll sideways
HINT = "Click a group or an image above to compare the copies side by side."


class ImageView(QWidget):
    """Draws one pixmap as large as fits, keeping its shape; a line of text until then."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._pixmap: QPixmap | None = None
        self._text = "Loading…"
        self.setMinimumSize(80, 80)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_pixmap(self, pixmap: QPixmap) -> None:
        self._pixmap = pixmap
        self.update()

    def set_text(self, text: str) -> None:
        self._pixmap = None
        self._text = text
        self.update()

    def has_image(self) -> bool:
        return self._pixmap is not None

    def text(self) -> str:
        return "" if self._pixmap is not None else self._text

    def image_rect(self) -> QRect:
        """Where the image is drawn: scaled to fit, centred. A small copy is enlarged too,
        so that the copies can be compared at the same scale (its resolution is below)."""
        if self._pixmap is None:
            return QRect()
        size = self._pixmap.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        rect = QRect(0, 0, size.width(), size.height())
        rect.moveCenter(self.rect().center())
        return rect

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        if self._pixmap is None:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._text)
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawPixmap(self.image_rect(), self._pixmap)


class CellFrame(QFrame):
    """The frame behind one copy's column: shows whether it is selected."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("compareCell")
        self.set_selected(False)

    def set_selected(self, selected: bool) -> None:
        colour = "palette(highlight)" if selected else "transparent"
        self.setStyleSheet(f"#compareCell {{ border: 2px solid {colour}; border-radius: 4px; }}")


class CellRow(QWidget):
    """The copies' columns side by side; a click anywhere in a column but on its trash
    box (the labels and the image pass their clicks up to here) picks that copy."""

    clicked = Signal(int)  # the column's index
    activated = Signal(int)  # double-click

    def __init__(self, cells: list[CompareCell], parent=None) -> None:
        super().__init__(parent)
        self.cells = cells

    def column_at(self, pos: QPoint) -> int | None:
        return next((i for i, c in enumerate(self.cells) if c.frame.geometry().contains(pos)), None)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        column = self.column_at(event.position().toPoint())
        if event.button() == Qt.MouseButton.LeftButton and column is not None:
            self.clicked.emit(column)
        super().mousePressEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        column = self.column_at(event.position().toPoint())
        if event.button() == Qt.MouseButton.LeftButton and column is not None:
            self.activated.emit(column)
        super().mouseDoubleClickEvent(event)


class CompareCell:
    """One copy's widgets in the strip: its image, name, facts, keeper's mark or why it is
    never trashed, and its trash box; they sit in one column of the strip's grid, so the
    same fact of every copy is on the same line."""

    def __init__(
        self, path: Path, facts: dict[str, Fact], keep_reason: str, protected: str
    ) -> None:
        self.path = path
        self.selected = False
        self.frame = CellFrame()
        self.image = ImageView()
        self.image.setToolTip(str(path))
        self.name = QLabel(printable(path.name), wordWrap=True)
        self.name.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.badge = QLabel(wordWrap=True)  # keeper, or why it never goes to the trash
        self.badge.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        if keep_reason:
            self.badge.setText(f"★ Suggested copy to keep\nkeep: {keep_reason}")
            self.badge.setToolTip("The copy the group suggests keeping, and why")
            _emphasise(self.badge, bold=True)
        elif protected:
            self.badge.setText(f"Never moved to the trash: {protected}")
        self.fields = {f: QLabel(f"{LABELS[f]}:") for f in FIELDS}
        self.values = {f: _fact_label(f, facts[f]) for f in FIELDS}
        self.trash_box = QCheckBox("Move to trash")
        self.trash_box.setToolTip(
            "Mark this copy; marked copies go to the trash only after you confirm"
        )
        if protected:
            self.trash_box.setEnabled(False)
            self.trash_box.setToolTip(f"Never moved to the trash: {protected}")

    def place(self, grid: QGridLayout, column: int) -> None:
        """Into `grid` at columns column…column+3: a margin, field names, values, a margin."""
        grid.addWidget(self.frame, 0, column, _ROWS, 4)
        grid.addWidget(self.image, 1, column + 1, 1, 2)
        grid.addWidget(self.name, 2, column + 1, 1, 2)
        for row, field in enumerate(FIELDS, 3):
            grid.addWidget(self.fields[field], row, column + 1)
            grid.addWidget(self.values[field], row, column + 2)
        grid.addWidget(self.badge, _ROWS - 3, column + 1, 1, 2)
        grid.addWidget(self.trash_box, _ROWS - 2, column + 1, 1, 2)
        grid.setColumnMinimumWidth(column, _MARGIN)
        grid.setColumnMinimumWidth(column + 3, _MARGIN)
        grid.setColumnStretch(column + 2, 1)
        grid.setColumnMinimumWidth(column + 2, CELL_WIDTH - 100)

    def set_selected(self, selected: bool) -> None:
        self.selected = selected
        self.frame.set_selected(selected)


_MARGIN = 6
_ROWS = 3 + len(FIELDS) + 3  # margin, image, name, facts, badge, trash box, margin


class ComparisonStrip(QStackedWidget):
    """The copies of one group side by side; scrolls sideways when they do not fit."""

    member_clicked = Signal(int)  # index in the group
    member_activated = Signal(int)
    mark_toggled = Signal(int, bool)  # index in the group, marked for the trash

    def __init__(self, previews: ImageLoader, parent=None) -> None:
        super().__init__(parent)
        self._previews = previews
        self.cells: list[CompareCell] = []
        previews.loaded.connect(self._preview_loaded)
        self.hint = QLabel(HINT, alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.addWidget(self.hint)
        self.addWidget(self.scroll)

    def show_group(
        self, group: DuplicateGroup, root: Path, marked: list[bool] | None = None
    ) -> None:
        """Show `group`'s members (paths under `root`); `marked`: their trash boxes."""
        self.cells = []
        row = CellRow(self.cells)
        row.clicked.connect(self.member_clicked)
        row.activated.connect(self.member_activated)
        grid = QGridLayout(row)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(4)
        grid.setRowStretch(1, 1)  # the images take the height the facts leave
        grid.setRowMinimumHeight(0, _MARGIN)
        grid.setRowMinimumHeight(_ROWS - 1, _MARGIN)
        facts = compare(group.members, root.name)
        for i, record in enumerate(group.members):
            cell = CompareCell(
                root / record.path,
                facts[i],
                group.keep_reason if i == 0 else "",
                group.protected[i] if group.protected else "",
            )
            cell.place(grid, 4 * i)
            cell.trash_box.setChecked(bool(marked and marked[i]))
            cell.trash_box.toggled.connect(lambda on, i=i: self.mark_toggled.emit(i, on))
            self.cells.append(cell)
        old = self.scroll.takeWidget()
        if old is not None:
            old.deleteLater()
        self.scroll.setWidget(row)
        self.setCurrentWidget(self.scroll)
        for cell in self.cells:
            self._show_preview(cell)

    def clear(self) -> None:
        """Back to the hint: no group to compare."""
        self.cells = []
        old = self.scroll.takeWidget()
        if old is not None:
            old.deleteLater()
        self.setCurrentWidget(self.hint)

    def set_marked(self, index: int, marked: bool) -> None:
        """Check or clear a member's trash box without echoing `mark_toggled`."""
        box = self.cells[index].trash_box
        box.blockSignals(True)
        box.setChecked(marked)
        box.blockSignals(False)

    def select(self, index: int | None) -> None:
        """Frame the member at `index` (None: no member), scrolled into view."""
        for i, cell in enumerate(self.cells):
            cell.set_selected(i == index)
        if index is not None and index < len(self.cells):
            self.scroll.ensureWidgetVisible(self.cells[index].frame)

    def selected(self) -> int | None:
        return next((i for i, c in enumerate(self.cells) if c.selected), None)

    def _show_preview(self, cell: CompareCell) -> None:
        key = str(cell.path)
        pixmap = self._previews.pixmap(key, PREVIEW)
        if pixmap is not None:
            cell.image.set_pixmap(pixmap)
        elif self._previews.failed(key):
            cell.image.set_text("Cannot show this image")

    def _preview_loaded(self, key: str) -> None:
        for cell in self.cells:
            if str(cell.path) == key and not cell.image.has_image():
                self._show_preview(cell)


def _fact_label(field: str, fact: Fact) -> QLabel:
    text = fact.text.replace("/", "/\u200b")  # a long folder wraps at its slashes
    if fact.best:
        text += f"  ★ {BEST[field]}"
    label = QLabel(text, wordWrap=True)  # not selectable: a click anywhere picks the cell
    if fact.differs:
        _emphasise(label, bold=True, colour=True)
        tip = "Not the same in every copy"
        label.setToolTip(tip + (f"; the {BEST[field]} of the group" if fact.best else ""))
    return label


def _emphasise(label: QLabel, bold: bool, colour: bool = False) -> None:
    font = label.font()
    font.setBold(bold)
    label.setFont(font)
    if colour:  # the theme's link colour: readable on light and dark themes alike
        palette = label.palette()
        palette.setColor(QPalette.ColorRole.WindowText, palette.color(QPalette.ColorRole.Link))
        label.setPalette(palette)
