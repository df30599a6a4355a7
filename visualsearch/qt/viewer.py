"""The viewer: one image large inside the window, with zoom, pan and previous/next.

The picture is a QGraphicsView: zooming is a view transform (no scaled copy of a
24 MP picture per step, which a QLabel in a QScrollArea would need), panning is its
hand drag, and zooming about the cursor is a transform plus a scroll. Files are
decoded in a pool thread through `core/imageio`'s bounded reads; the GUI thread only
paints. While a file loads, the thumbnail the caller already has is shown enlarged.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QEvent, QPoint, QRectF, Qt, QThreadPool, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeyEvent,
    QPainter,
    QPixmap,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from visualsearch.core.names import printable
from visualsearch.qt.full_images import FullImage, FullImageLoader, load_full

ZOOM_STEP = 1.25
MAX_ZOOM = 16.0
# Decoded images kept for going back and forth, within this many bytes: a 12 MP photo
# with its halved copies takes 64 MB, one at the 24 MP cap 128 MB (the current image
# is always kept, then the next one, then the previous one, then recent ones).
KEPT_BYTES = 320 << 20
BACKGROUND = QColor(32, 32, 32)


class _ImageItem(QGraphicsItem):
    """Paints a picture into the rectangle of its original size, from the smallest of
    its halved copies that still has a pixel for every pixel on the screen."""

    def __init__(self, levels: list[QImage], width: float, height: float, crisp: bool) -> None:
        super().__init__()
        self.levels = levels
        self.rect = QRectF(0, 0, width, height)
        self.crisp = crisp  # above 100 %, show the pixels as they are (a photo tool's look)

    def boundingRect(self) -> QRectF:
        return self.rect

    def paint(self, painter: QPainter, option, widget=None) -> None:
        scale = painter.worldTransform().m11() * painter.device().devicePixelRatioF()
        shown = self.rect.width() * scale  # device pixels across
        level = self.levels[0]
        for candidate in self.levels[1:]:
            if candidate.width() < shown:
                break
            level = candidate
        smooth = not (self.crisp and scale > 1.0)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        painter.drawImage(self.rect, level)


class _Canvas(QGraphicsView):
    """The picture's view; hands keys and Ctrl+wheel to the viewer."""

    def __init__(self, viewer: ImageViewer) -> None:
        super().__init__()
        self._viewer = viewer
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(BACKGROUND)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.message = QLabel(self, alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.message.setStyleSheet("color: #e0e0e0; font-size: 13pt; padding: 24px;")
        self.message.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.message.hide()

    def event(self, event: QEvent) -> bool:
        # our keys win over the window's shortcuts while the viewer has the focus
        if event.type() == QEvent.Type.ShortcutOverride and self._viewer.handles(event):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if not self._viewer.handle_key(event):
            super().keyPressEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            steps = event.angleDelta().y() / 120
            if steps:
                self._viewer.zoom_by(ZOOM_STEP**steps, event.position().toPoint())
            event.accept()
            return
        super().wheelEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.message.setGeometry(self.rect())
        self._viewer._canvas_resized()


def _button(text: str, tip: str) -> QToolButton:
    button = QToolButton(text=text, toolTip=tip)
    button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with the picture
    return button


class ImageViewer(QWidget):
    """One image of a list, large: fit to the window, zoom, pan, previous/next.

    `pool` runs the decoding; `cached(path)` returns a pixmap the caller already holds
    (a thumbnail or preview) to show at once while the file loads, or None; `load` is
    the decoder (`load_full`). Emits `current_changed` whenever another image is shown,
    and `closed` for Esc or Back, after letting go of its pictures: the caller then
    shows something else, and `show_items` opens the viewer again.
    """

    closed = Signal()
    current_changed = Signal(Path)

    def __init__(
        self,
        pool: QThreadPool,
        cached: Callable[[Path], QPixmap | None] | None = None,
        load: Callable[..., FullImage] = load_full,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._cached = cached or (lambda _path: None)
        self._paths: Sequence[Path] = []
        self._row = -1
        self._images: OrderedDict[Path, FullImage] = OrderedDict()
        self._errors: dict[Path, str] = {}
        self._item: _ImageItem | None = None
        self._full: FullImage | None = None  # None: a placeholder or nothing is shown
        self._fitted = True
        self._zoom = 1.0  # device pixels per pixel of the original
        self._loader = FullImageLoader(pool, load, self)
        self._loader.done.connect(self._loaded)

        self.back_button = _button("← Back", "Back to the grid (Esc)")
        self.previous_button = _button("‹ Previous", "Previous image (Left)")
        self.next_button = _button("Next ›", "Next image (Right)")
        self.fit_button = _button("Fit", "Fit the image to the window (Ctrl+0 or 1 toggles)")
        self.actual_button = _button("100 %", "Actual size: one image pixel per screen pixel (1)")
        for b in (self.fit_button, self.actual_button):
            b.setCheckable(True)
        self.info = QLabel()
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.info.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.back_button.clicked.connect(self.close_viewer)
        self.previous_button.clicked.connect(lambda: self.go_to(self._row - 1))
        self.next_button.clicked.connect(lambda: self.go_to(self._row + 1))
        self.fit_button.clicked.connect(self.fit)
        self.actual_button.clicked.connect(self.actual_size)

        bar = QHBoxLayout()
        bar.setContentsMargins(6, 4, 6, 4)
        for b in (self.back_button, self.previous_button, self.next_button):
            bar.addWidget(b)
        bar.addWidget(self.info, 1)
        bar.addWidget(self.fit_button)
        bar.addWidget(self.actual_button)
        self.canvas = _Canvas(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(self.canvas, 1)
        self.setFocusProxy(self.canvas)
        self._update_bar()

    # -- what is shown ---------------------------------------------------------------------

    def show_items(self, paths: Sequence[Path], row: int) -> None:
        """Show `paths[row]`, with `paths` (the current results, in order) for previous/next.

        `paths` is kept as given, not copied or scanned: the grid's million items hand
        over a view whose paths are made as they are shown. Decoded images stay within
        KEPT_BYTES, whether or not the new list has them."""
        self._paths = paths
        self._errors.clear()
        self._row = -1
        if not self._paths:
            self._clear("No images to show.")
            self._loader.want([])
            return
        self.go_to(row)

    def close_viewer(self) -> None:
        """Let go of the decoded pictures and ask to be closed (what Esc and Back do);
        `current_path()` still says which image was shown last."""
        self._images.clear()
        self._errors.clear()
        self._loader.want([])
        self._clear(None)
        self.closed.emit()

    def current_path(self) -> Path | None:
        return self._paths[self._row] if 0 <= self._row < len(self._paths) else None

    def current_row(self) -> int:
        return self._row

    def zoom(self) -> float:
        """The displayed scale: screen (device) pixels per pixel of the original."""
        return self._zoom

    def is_fitted(self) -> bool:
        return self._fitted

    def message(self) -> str | None:
        """The text shown instead of a picture (loading, or why it cannot be shown)."""
        label = self.canvas.message
        return None if label.isHidden() else label.text()

    def go_to(self, row: int) -> None:
        """Show the image at `row` (clamped to the list)."""
        if not self._paths:
            return
        row = max(0, min(row, len(self._paths) - 1))
        if row == self._row:
            return
        self._row = row
        path = self._paths[row]
        self._fitted = True
        full = self._images.get(path)
        if full is not None:
            self._images.move_to_end(path)
            self._show_full(full)
        elif path in self._errors:
            self._show_error(path)
        else:
            self._show_placeholder(path)
        neighbours = [self._paths[r] for r in (row + 1, row - 1) if 0 <= r < len(self._paths)]
        self._loader.want([p for p in [path, *neighbours] if p not in self._images])
        self.current_changed.emit(path)

    def _clear(self, message: str | None) -> None:
        self.canvas.scene().clear()
        self._item = None
        self._full = None
        self._set_message(message)
        self._update_bar()

    def _set_message(self, text: str | None) -> None:
        label = self.canvas.message
        label.setText(text or "")
        label.setGeometry(self.canvas.rect())
        label.setVisible(text is not None)

    def _set_item(self, item: _ImageItem) -> None:
        scene = self.canvas.scene()
        scene.clear()
        scene.addItem(item)
        scene.setSceneRect(item.boundingRect())
        self._item = item

    def _show_placeholder(self, path: Path) -> None:
        pixmap = self._cached(path)
        if pixmap is None or pixmap.isNull():
            self._clear("Loading…")
            return
        self._full = None
        image = pixmap.toImage()
        self._set_item(_ImageItem([image], image.width(), image.height(), crisp=False))
        self._set_message(None)
        self._apply_fit()

    def _show_full(self, full: FullImage) -> None:
        self._full = full
        self._set_item(_ImageItem(full.levels, full.width, full.height, crisp=True))
        self._set_message(None)
        self._apply_fit()

    def _show_error(self, path: Path) -> None:
        name = printable(path.name)
        self._clear(f"{name} cannot be shown:\n{self._errors[path]}")

    def _loaded(self, path: Path, result: object) -> None:
        if isinstance(result, FullImage):
            self._images[path] = result
            self._images.move_to_end(path)
            self._evict()
        else:
            self._errors[path] = str(result)
        if path != self.current_path():
            return
        if isinstance(result, FullImage):
            self._show_full(result)
        else:
            self._show_error(path)

    def _evict(self) -> None:
        """Within KEPT_BYTES: drop images shown long ago first, then the previous one, then
        the next one; never the current one."""
        rows = range(len(self._paths))
        near = [self._paths[r] for r in (self._row, self._row + 1, self._row - 1) if r in rows]
        order = [p for p in self._images if p not in near] + near[:0:-1]
        held = sum(image.size_in_bytes() for image in self._images.values())
        for path in order:
            if held <= KEPT_BYTES:
                break
            if path in self._images:
                held -= self._images.pop(path).size_in_bytes()

    # -- zoom ------------------------------------------------------------------------------

    def _dpr(self) -> float:
        return self.canvas.devicePixelRatioF() or 1.0

    def _fit_zoom(self) -> float:
        if self._item is None:
            return 1.0
        rect = self._item.boundingRect()
        view = self.canvas.viewport().size()
        if view.isEmpty():  # not laid out yet: fitted again when it is
            return 1.0
        scale = min(view.width() / rect.width(), view.height() / rect.height()) * self._dpr()
        # a placeholder thumbnail is enlarged to the size the picture will have; a picture
        # smaller than the window is shown at actual size, not blown up
        return scale if self._full is None else min(scale, 1.0)

    def _set_zoom(self, zoom: float, anchor: QPoint | None = None) -> None:
        canvas = self.canvas
        if anchor is None:
            anchor = canvas.viewport().rect().center()
        fixed = canvas.mapToScene(anchor)
        self._zoom = zoom
        s = zoom / self._dpr()
        canvas.setTransform(QTransform.fromScale(s, s))
        moved = canvas.mapFromScene(fixed) - anchor  # keep the anchor's scene point in place
        canvas.horizontalScrollBar().setValue(canvas.horizontalScrollBar().value() + moved.x())
        canvas.verticalScrollBar().setValue(canvas.verticalScrollBar().value() + moved.y())
        larger = self._item is not None and (
            canvas.horizontalScrollBar().maximum() > 0 or canvas.verticalScrollBar().maximum() > 0
        )
        canvas.setDragMode(
            QGraphicsView.DragMode.ScrollHandDrag if larger else QGraphicsView.DragMode.NoDrag
        )
        self._update_bar()

    def _apply_fit(self) -> None:
        self._fitted = True
        self._set_zoom(self._fit_zoom())

    def fit(self) -> None:
        """Fit the whole image into the window (the default)."""
        self._apply_fit()

    def actual_size(self) -> None:
        """One pixel of the original per screen pixel, about the window's centre."""
        if self._full is None:
            self._update_bar()
            return
        self._fitted = False
        self._set_zoom(1.0)

    def toggle_actual_size(self) -> None:
        if self._full is not None and not self._fitted and math.isclose(self._zoom, 1.0):
            self.fit()
        else:
            self.actual_size()

    def zoom_by(self, factor: float, anchor: QPoint | None = None) -> None:
        """Zoom in (factor > 1) or out about `anchor` (a viewport point; default: centre).
        Zooming out stops at the fitted view, which then follows the window's size."""
        if self._full is None:
            return
        lowest = self._fit_zoom()
        zoom = min(MAX_ZOOM, self._zoom * factor)
        if zoom <= lowest * 1.001:
            self._fitted = True
            self._set_zoom(lowest, anchor)
        else:
            self._fitted = False
            self._set_zoom(zoom, anchor)

    def _canvas_resized(self) -> None:
        if self._fitted:
            self._apply_fit()
        else:
            self._update_bar()

    # -- keys ------------------------------------------------------------------------------

    def _action(self, event: QKeyEvent) -> Callable[[], None] | None:
        key = event.key()
        # Shift is ignored: "+" is Shift+= on many keyboards, and Ctrl++ is Ctrl+Shift+=
        mods = event.modifiers() & ~(
            Qt.KeyboardModifier.KeypadModifier | Qt.KeyboardModifier.ShiftModifier
        )
        plain = mods == Qt.KeyboardModifier.NoModifier
        ctrl = mods == Qt.KeyboardModifier.ControlModifier
        K = Qt.Key
        if key == K.Key_Escape and plain:
            return self.close_viewer
        if key in (K.Key_Right, K.Key_PageDown) and plain:
            return lambda: self.go_to(self._row + 1)
        if key in (K.Key_Left, K.Key_PageUp) and plain:
            return lambda: self.go_to(self._row - 1)
        if key == K.Key_Home and plain:
            return lambda: self.go_to(0)
        if key == K.Key_End and plain:
            return lambda: self.go_to(len(self._paths) - 1)
        if (key == K.Key_1 and plain) or (key == K.Key_0 and ctrl):
            return self.toggle_actual_size
        if key in (K.Key_Plus, K.Key_Equal) and (plain or ctrl):
            return lambda: self.zoom_by(ZOOM_STEP)
        if key in (K.Key_Minus, K.Key_Underscore) and (plain or ctrl):
            return lambda: self.zoom_by(1 / ZOOM_STEP)
        return None

    def handles(self, event: QKeyEvent) -> bool:
        return self._action(event) is not None

    def handle_key(self, event: QKeyEvent) -> bool:
        """Act on a viewer key; False for keys the viewer leaves to others."""
        action = self._action(event)
        if action is None:
            return False
        action()
        event.accept()
        return True

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and self.handles(event):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if not self.handle_key(event):
            super().keyPressEvent(event)

    # -- the bar ---------------------------------------------------------------------------

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._update_bar()  # the name is elided to the bar's new width

    def _update_bar(self) -> None:
        path = self.current_path()
        count = len(self._paths)
        self.previous_button.setEnabled(self._row > 0)
        self.next_button.setEnabled(0 <= self._row < count - 1)
        shown = self._full is not None
        self.fit_button.setEnabled(shown)
        self.actual_button.setEnabled(shown)
        self.fit_button.setChecked(shown and self._fitted)
        # a small image fitted at 100 % is "Fit" only: both checked read as a contradiction
        self.actual_button.setChecked(shown and not self._fitted and math.isclose(self._zoom, 1.0))
        if path is None:
            self.info.setText("")
            return
        parts = [printable(path.name), f"{self._row + 1} / {count}"]
        if self._full is not None:
            parts.append(f"{self._full.width}×{self._full.height}")
            parts.append(f"{round(self._zoom * 100)} %")
        elif path in self._errors:
            parts.append("cannot be shown")
        else:
            parts.append("loading…")
        # the name gives way, never the position and scale (a 960 px window cut them off)
        metrics = self.info.fontMetrics()
        rest = " — " + " — ".join(parts[1:])
        room = max(self.info.width() - metrics.horizontalAdvance(rest) - 8, 16)
        parts[0] = metrics.elidedText(parts[0], Qt.TextElideMode.ElideMiddle, room)
        self.info.setText(" — ".join(parts))
        self.info.setToolTip(printable(str(path)))
