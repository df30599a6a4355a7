"""The thumbnail grid: a QListView in icon mode with uniform items and a painting delegate."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QKeyEvent, QPainter, QPalette, QResizeEvent
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate

from visualsearch.core.names import printable

TEXT_LINES = 1
PADDING = 6
ELLIPSIS = "\u2026"
MAX_SUFFIX = 6  # ".jpeg", ".tiff": longer "suffixes" ("IMG_1.2024-backup") are part of the name
_ELIDED_CACHE_SIZE = 4096


def elide_file_name(name: str, metrics: QFontMetrics, width: int) -> str:
    """`name` fitted into `width` pixels by cutting the middle of its stem: the start (the
    part people read) keeps about two thirds of the room, the stem's end one third, and
    the extension stays whole, e.g. "IMG_20240413…3456.jpg"."""
    if metrics.horizontalAdvance(name) <= width:
        return name
    dot = name.rfind(".")
    stem, suffix = (
        (name[:dot], name[dot:]) if dot > 0 and len(name) - dot <= MAX_SUFFIX else (name, "")
    )
    room = width - metrics.horizontalAdvance(suffix + ELLIPSIS)
    if len(stem) < 2 or room < metrics.horizontalAdvance(stem[0]):
        return metrics.elidedText(name, Qt.TextElideMode.ElideRight, width)

    def fitted(n: int) -> str:
        tail = n // 3
        return stem[: n - tail] + ELLIPSIS + (stem[len(stem) - tail :] if tail else "") + suffix

    lo, hi = 1, len(stem) - 1  # how many of the stem's characters are kept; 1 fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if metrics.horizontalAdvance(fitted(mid)) <= width:
            lo = mid
        else:
            hi = mid - 1
    return fitted(lo)


class ThumbnailDelegate(QStyledItemDelegate):
    """Paints a square thumbnail (or a placeholder), the file name and a corner badge: the
    score for results, or the date or size the grid is sorted by."""

    def __init__(self, icon_size: int, parent=None) -> None:
        super().__init__(parent)
        self.icon_size = icon_size
        self.cell_width = 0  # the grid's stretched column width; 0: the smallest cell
        self._elided: dict[tuple[str, int, int], str] = {}

    def cell_size(self, font_height: int) -> QSize:
        """The smallest cell: the icon, its padding and one line of text."""
        return QSize(self.icon_size + 2 * PADDING, self.icon_size + 2 * PADDING + font_height + 4)

    def sizeHint(self, option, index) -> QSize:
        size = self.cell_size(option.fontMetrics.height())
        return QSize(max(size.width(), self.cell_width), size.height())

    def display_name(self, name: str, metrics: QFontMetrics, width: int) -> str:
        """The file name as drawn under the thumbnail (cached: names repaint on every scroll)."""
        key = (name, width, metrics.height())
        found = self._elided.get(key)
        if found is None:
            if len(self._elided) >= _ELIDED_CACHE_SIZE:
                self._elided.clear()
            found = self._elided[key] = elide_file_name(printable(name), metrics, width)
        return found

    def paint(self, painter: QPainter, option, index: QModelIndex) -> None:
        painter.save()
        rect = option.rect
        palette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.fillRect(
                rect.adjusted(2, 2, -2, -2), palette.color(QPalette.ColorRole.Highlight)
            )
        elif option.state & QStyle.StateFlag.State_MouseOver:
            painter.fillRect(
                rect.adjusted(2, 2, -2, -2), palette.color(QPalette.ColorRole.AlternateBase)
            )
        left = rect.x() + (rect.width() - self.icon_size) // 2
        box = QRect(left, rect.y() + PADDING, self.icon_size, self.icon_size)
        # straight from the model: QModelIndex.data() costs ~30 µs a call from Python
        item = index.model().item(index.row())
        pixmap = index.model().thumbnail(item)
        if pixmap is not None and not pixmap.isNull():
            w, h = pixmap.width(), pixmap.height()
            if w > box.width() or h > box.height():
                pixmap = pixmap.scaled(
                    box.size(),
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.FastTransformation,
                )
                w, h = pixmap.width(), pixmap.height()
            painter.drawPixmap(
                box.x() + (box.width() - w) // 2, box.y() + (box.height() - h) // 2, pixmap
            )
        else:
            painter.fillRect(box.adjusted(8, 8, -8, -8), palette.color(QPalette.ColorRole.Midlight))
        text_rect = QRect(
            rect.x() + PADDING,
            box.bottom() + 3,
            rect.width() - 2 * PADDING,
            option.fontMetrics.height(),
        )
        name = self.display_name(item.path.name, option.fontMetrics, text_rect.width())
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        painter.setPen(palette.color(role))
        painter.drawText(
            text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, name
        )
        shown = index.model().badge(item)
        if shown is not None:
            label, estimate = shown
            fm = option.fontMetrics
            badge = QRect(0, 0, fm.horizontalAdvance(label) + 8, fm.height() + 2)
            badge.moveTopRight(box.topRight())
            # a file's date (no EXIF) on blue-grey: an estimate, not when it was taken
            painter.fillRect(badge, QColor(40, 70, 120, 180) if estimate else QColor(0, 0, 0, 160))
            painter.setPen(QColor("white"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, label)
        painter.restore()


class ThumbnailGrid(QListView):
    """Emits `activated_item` for Enter ("find similar") and `view_requested` for Space and
    double-click (open the viewer). Columns are stretched to fill the viewport's width."""

    activated_item = Signal(QModelIndex)
    view_requested = Signal(QModelIndex)

    def __init__(self, icon_size: int = 160, parent=None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(True)  # layout of 50,000 items costs one size hint, not 50,000
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(2000)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setMouseTracking(True)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.setSpacing(0)
        self.delegate = ThumbnailDelegate(icon_size, self)
        self.setItemDelegate(self.delegate)
        self.set_icon_size(icon_size)
        self.doubleClicked.connect(self.view_requested)

    def setModel(self, model) -> None:
        super().setModel(model)
        if hasattr(model, "thumbnails_arrived"):
            model.thumbnails_arrived.connect(self._thumbnails_arrived)

    def _thumbnails_arrived(self, _digests: set) -> None:
        self.viewport().update()  # one repaint for a frame's worth of thumbnails

    def set_icon_size(self, size: int) -> None:
        self.delegate.icon_size = size
        self._fill_width()
        self.verticalScrollBar().setSingleStep(max(20, size // 4))

    def columns(self) -> int:
        """How many thumbnails fit side by side."""
        return max(1, self._layout_width() // self.gridSize().width())

    def _layout_width(self) -> int:
        """The width QListView wraps items in. Like QListViewPrivate::prepareItemsLayout,
        it keeps room for a vertical scroll bar that is shown only as needed, so that the
        columns do not change (and the bar does not blink) when the bar comes or goes;
        an item wraps when its right edge would reach this width."""
        width = self.maximumViewportSize().width() - 1
        if self.verticalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAsNeeded:
            style = self.style()
            width -= style.pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, self)
            if style.styleHint(QStyle.StyleHint.SH_ScrollView_FrameOnlyAroundContents, None, self):
                width -= 2 * style.pixelMetric(QStyle.PixelMetric.PM_DefaultFrameWidth, None, self)
        return width

    def _fill_width(self) -> None:
        """Spread the columns over the whole width: as many smallest cells as fit, each
        widened by an equal share of what is left (at most `columns - 1` pixels stay blank)."""
        width = self._layout_width()
        smallest = self.delegate.cell_size(self.fontMetrics().height())
        columns = max(1, width // smallest.width())
        cell = QSize(max(smallest.width(), width // columns), smallest.height())
        self.delegate.cell_width = cell.width()
        if cell != self.gridSize():
            self.setGridSize(cell)  # lays the items out again on the next pass of the loop

    def resizeEvent(self, event: QResizeEvent) -> None:
        self._fill_width()
        super().resizeEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        current = self.currentIndex()
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and current.isValid():
            self.activated_item.emit(current)
            return
        plain = event.modifiers() == Qt.KeyboardModifier.NoModifier
        if event.key() == Qt.Key.Key_Space and plain and current.isValid():
            self.view_requested.emit(current)  # Ctrl+Space still toggles the selection
            return
        super().keyPressEvent(event)
