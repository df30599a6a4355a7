"""The thumbnail grid: a QListView in icon mode with uniform items and a painting delegate."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QPainter, QPalette
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate

TEXT_LINES = 1
PADDING = 6


class ThumbnailDelegate(QStyledItemDelegate):
    """Paints a square thumbnail (or a placeholder), the file name and, for results, the score."""

    def __init__(self, icon_size: int, parent=None) -> None:
        super().__init__(parent)
        self.icon_size = icon_size

    def cell_size(self, font_height: int) -> QSize:
        return QSize(self.icon_size + 2 * PADDING, self.icon_size + 2 * PADDING + font_height + 4)

    def sizeHint(self, option, index) -> QSize:
        return self.cell_size(option.fontMetrics.height())

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
        box = QRect(rect.x() + PADDING, rect.y() + PADDING, self.icon_size, self.icon_size)
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
            rect.x() + PADDING, box.bottom() + 3, box.width(), option.fontMetrics.height()
        )
        name = option.fontMetrics.elidedText(
            item.path.name,
            Qt.TextElideMode.ElideMiddle,
            text_rect.width(),
        )
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        painter.setPen(palette.color(role))
        painter.drawText(
            text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, name
        )
        score = item.score
        if score is not None:
            label = f"{score:.2f}"
            fm = option.fontMetrics
            badge = QRect(0, 0, fm.horizontalAdvance(label) + 8, fm.height() + 2)
            badge.moveTopRight(box.topRight())
            painter.fillRect(badge, QColor(0, 0, 0, 160))
            painter.setPen(QColor("white"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, label)
        painter.restore()


class ThumbnailGrid(QListView):
    """Emits `activated_item` for Enter and double-click ("find similar")."""

    activated_item = Signal(QModelIndex)

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
        self.doubleClicked.connect(self.activated_item)

    def setModel(self, model) -> None:
        super().setModel(model)
        if hasattr(model, "thumbnails_arrived"):
            model.thumbnails_arrived.connect(self._thumbnails_arrived)

    def _thumbnails_arrived(self, _digests: set) -> None:
        self.viewport().update()  # one repaint for a frame's worth of thumbnails

    def set_icon_size(self, size: int) -> None:
        self.delegate.icon_size = size
        self.setGridSize(self.delegate.cell_size(self.fontMetrics().height()))
        self.verticalScrollBar().setSingleStep(max(20, size // 4))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.activated_item.emit(self.currentIndex())
            return
        super().keyPressEvent(event)
