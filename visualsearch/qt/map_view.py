"""The map: every image a point at its layout position, coloured by cluster.

Points are rasterised with numpy into one image (100,000 points in 25 ms) instead of
one graphics item each; above DRAW_AT_ONCE points that happens in the pool, and the last
drawing is shown moved and scaled to the view until the new one is ready. Zoomed in
far enough, points become thumbnails.
Wheel zooms around the cursor, dragging pans, Shift+drag (or lasso mode) selects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QWidget

from visualsearch.qt.thumbnails import ImageLoader
from visualsearch.qt.workers import TaskSlot

log = logging.getLogger(__name__)

POINT_MIN = 4.0  # radius of a point, pixels: never smaller, so that a point is easy to hit
POINT_MAX = 8.0
POINT_SHARE = 0.25  # radius = this × the side of the square each visible point has to itself
HIT_MARGIN = 3.0  # a click this far outside a point's edge still hits it
THUMBS_BELOW = 150  # at most this many points on screen: draw thumbnails instead
# Up to this many points are drawn on the GUI thread (25 ms at 100,000); more in the
# pool: a million took 0.3 s for every zoom step (bench/window_scale.py)
DRAW_AT_ONCE = 100_000
BACKGROUND = QColor(250, 250, 250)
OUTLINE = QColor(30, 30, 30)

# Glasbey's method (Glasbey et al., 2007): each colour the one farthest (CIEDE2000) from
# those before it, the background and black, among an RGB grid of 17 steps with
# lightness L* 30-82 (visible on the light background). The closest two of the first 24
# differ by ΔE 19; the golden-ratio hues used before had pairs at ΔE 4 among 24.
PALETTE = (
    "#BE0032", "#0077FF", "#558800", "#DD8800", "#FF66DD", "#00AAAA", "#771199",
    "#774400", "#998888", "#005544", "#CCCC00", "#00DD77", "#BBBBFF", "#FF6655",
    "#555566", "#44BBFF", "#AAAA88", "#EEBBCC", "#666655", "#995577", "#9955FF",
    "#0044AA", "#337788", "#FFBB99", "#FF1177", "#335500", "#338866", "#CC5500",
)  # fmt: skip
# Clusters beyond the palette take its colours again with another marker:
# a filled disc, then a disc with a dark outline, then a square with a dark outline.
DISC, OUTLINED, SQUARE = 0, 1, 2


def cluster_colours(k: int) -> list[QColor]:
    """A colour per cluster: cluster i always gets the same one; beyond the palette the
    colours repeat (and `cluster_marker` tells those clusters apart)."""
    return [QColor(PALETTE[i % len(PALETTE)]) for i in range(k)]


def cluster_marker(cluster: int) -> int:
    """DISC, OUTLINED or SQUARE: how a cluster's points are drawn."""
    return min(cluster // len(PALETTE), SQUARE)


@dataclass(frozen=True)
class View:
    """Where points are on screen: (world − offset) × ppu + the centre of a w × h view."""

    offset: tuple[float, float]
    ppu: float  # pixels per world unit
    width: int
    height: int

    def screen(self, world: np.ndarray) -> np.ndarray:
        centre = np.array([self.width / 2.0, self.height / 2.0])
        return (np.asarray(world, np.float64) - np.array(self.offset)) * self.ppu + centre

    def moved_from(self, before: View) -> tuple[float, float, float]:
        """(k, dx, dy): a pixel (x, y) drawn for `before` is at (k·x + dx, k·y + dy) here."""
        k = self.ppu / before.ppu
        dx, dy = (
            (np.array(before.offset) - np.array(self.offset)) * self.ppu
            - np.array([before.width / 2.0, before.height / 2.0]) * k
            + np.array([self.width / 2.0, self.height / 2.0])
        )
        return k, float(dx), float(dy)


def on_screen(screen: np.ndarray, width: int, height: int) -> np.ndarray:
    """Which of the screen positions `screen` (n, 2) lie in a `width` × `height` view."""
    x, y = screen[:, 0], screen[:, 1]
    return (x >= 0) & (x < width) & (y >= 0) & (y < height)


def point_radius(visible: int, width: int, height: int) -> float:
    """Points share the screen: fewer on screen (zoomed in, or a small collection),
    larger each, between POINT_MIN and POINT_MAX pixels."""
    side = np.sqrt(max(1, width * height) / max(visible, 1))
    return float(np.clip(POINT_SHARE * side, POINT_MIN, POINT_MAX))


def draw_points(
    world: np.ndarray,
    view: View,
    fill: np.ndarray,
    edge: np.ndarray,
    square: np.ndarray,
) -> tuple[QImage, float]:
    """All points drawn into one image with numpy (the cost of 100,000 points is a few
    array operations, not 100,000 QPainter calls), and the radius they were drawn with.
    Plain values in, an image out: it runs in the pool for a large map."""
    w, h = max(1, view.width), max(1, view.height)
    s = np.rint(view.screen(world)).astype(np.int64) if len(world) else np.zeros((0, 2), int)
    radius = point_radius(int(on_screen(s, w, h).sum()), w, h)
    reach = int(np.ceil(radius))
    # drawn with a margin of two radii on every side: a point centred up to a radius
    # off screen still shows its edge, and no stamp needs clipping
    pad = 2 * reach
    pw, ph = w + 2 * pad, h + 2 * pad
    buf = np.full(ph * pw, BACKGROUND.rgba(), np.uint32)
    if len(world):
        s = s + pad
        near = (
            (s[:, 0] >= reach) & (s[:, 0] < pw - reach)
            & (s[:, 1] >= reach) & (s[:, 1] < ph - reach)
        )  # fmt: skip
        for squares in (False, True):
            rows = np.flatnonzero(near & (square == squares))
            if len(rows):
                flat = s[rows, 1] * pw + s[rows, 0]
                inner, outer = fill[rows], edge[rows]
                for offset, on_edge in _stamp(radius, pw, squares):
                    buf[flat + offset] = outer if on_edge else inner
    buf = np.ascontiguousarray(buf.reshape(ph, pw)[pad : pad + h, pad : pad + w])
    image = QImage(buf.data, w, h, 4 * w, QImage.Format.Format_ARGB32)
    return image.copy(), radius  # own the pixels: `buf` goes away


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Boolean mask of `points` (n, 2) inside `polygon` (m, 2), by ray casting (even-odd)."""
    x, y = points[:, 0], points[:, 1]
    inside = np.zeros(len(points), bool)
    px, py = polygon[:, 0], polygon[:, 1]
    qx, qy = np.roll(px, -1), np.roll(py, -1)
    for x1, y1, x2, y2 in zip(px, py, qx, qy, strict=True):
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < at)
    return inside


def _stamp(radius: float, row: int, square: bool) -> list[tuple[int, bool]]:
    """A disc (or square) of `radius` as offsets into a buffer `row` pixels wide, each
    with whether it is an outer pixel (drawn in the outline colour)."""
    reach = int(np.ceil(radius))
    out = []
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            d2 = dx * dx + dy * dy
            if square:
                out.append((dy * row + dx, max(abs(dx), abs(dy)) == reach))
            elif d2 <= radius * radius:
                out.append((dy * row + dx, d2 > (radius - 1.5) ** 2))
    return out


class MapView(QWidget):
    clicked = Signal(int)  # row
    hovered = Signal(int)  # row, or -1
    selection_changed = Signal(object)  # np.ndarray of rows

    def __init__(self, thumbnails: ImageLoader, parent=None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setMinimumSize(300, 300)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._thumbnails = thumbnails
        thumbnails.loaded.connect(self._thumbnail_loaded)
        self.world = np.zeros((0, 2), np.float32)  # coordinates scaled to [0, 1]
        self.labels = np.zeros(0, np.int64)
        self.hashes: list[str | None] = []
        self.colours: list[QColor] = []
        self._rgb = np.zeros((0,), np.uint32)  # each point's fill
        self._edge = np.zeros((0,), np.uint32)  # and its outline (= fill for plain discs)
        self._square = np.zeros((0,), bool)
        self._radius = POINT_MIN
        self.selected = np.zeros(0, np.int64)
        self.scale = 1.0  # pixels per world unit, relative to fitting the view
        self.offset = np.zeros(2)  # world point at the view's centre
        self.lasso_mode = False
        self._raster: QImage | None = None  # the last drawing of the points
        self._raster_for: tuple[View, int] | None = None  # the view and data it shows
        self._asked_for: tuple[View, int] | None = None  # being drawn in the pool
        self._drawing = TaskSlot(QThreadPool.globalInstance(), self)
        self._drag_start: QPointF | None = None
        self._last_pos: QPointF | None = None
        self._lasso: list[QPointF] = []
        self._hover = -1
        self._dragged = False
        self._version = 0  # of the data and its colours: a drawing of another is stale
        self._drag_thumbs = False  # the drag began over thumbnails, not points
        self._screen_key: tuple | None = None  # the view the cached screen positions are for
        self._screen_cache = np.zeros((0, 2))
        self._visible_cache = np.zeros(0, np.int64)

    # -- data -------------------------------------------------------------------------------

    def set_data(
        self, coords: np.ndarray, labels: np.ndarray, hashes: list[str | None], k: int
    ) -> None:
        coords = np.asarray(coords, np.float64)
        if len(coords):
            lo, hi = coords.min(0), coords.max(0)
            span = max(float((hi - lo).max()), 1e-9)
            self.world = ((coords - lo) / span).astype(np.float32)
        else:
            self.world = np.zeros((0, 2), np.float32)
        self.labels = np.asarray(labels, np.int64)
        self.hashes = list(hashes)
        self._version += 1
        self.set_cluster_count(k)
        self.selected = np.zeros(0, np.int64)
        self.reset_view()

    def set_cluster_count(self, k: int) -> None:
        self.colours = cluster_colours(max(k, 1))
        fill = np.array([c.rgba() for c in self.colours], np.uint32)
        markers = np.array([cluster_marker(c) for c in range(len(fill))])
        edge = np.where(markers == DISC, fill, np.uint32(OUTLINE.rgba())).astype(np.uint32)
        labels = self.labels if len(self.labels) else np.zeros(0, np.int64)
        self._rgb, self._edge, self._square = fill[labels], edge[labels], markers[labels] == SQUARE
        self._version += 1
        self.update()

    def set_selection(self, rows) -> None:
        self.selected = np.asarray(rows, np.int64)
        self.update()

    def reset_view(self) -> None:
        self.scale = 1.0
        self.offset = self.world.mean(0).astype(np.float64) if len(self.world) else np.full(2, 0.5)
        if len(self.world):
            self.offset = (self.world.min(0) + self.world.max(0)) / 2.0
        self.update()

    # -- geometry ---------------------------------------------------------------------------

    def _pixels_per_unit(self) -> float:
        # a margin of half a thumbnail, so that the ones at the edge are whole
        return max(50.0, min(self.width(), self.height()) - 100.0) * self.scale

    def _screen(self) -> np.ndarray:
        """Every point's screen position in the current view, computed once per view
        (hovering over a million points asked for them on every mouse move)."""
        view = self.view()
        key = (view, self._version)
        if key != self._screen_key:
            self._screen_cache = view.screen(self.world)
            self._visible_cache = np.flatnonzero(
                on_screen(self._screen_cache, view.width, view.height)
            )
            self._screen_key = key
        return self._screen_cache

    def view(self) -> View:
        x, y = self.offset.tolist()
        return View((x, y), self._pixels_per_unit(), self.width(), self.height())

    def to_screen(self, world: np.ndarray) -> np.ndarray:
        return self.view().screen(world)

    def to_world(self, x: float, y: float) -> np.ndarray:
        ppu = self._pixels_per_unit()
        return (np.array([x - self.width() / 2.0, y - self.height() / 2.0]) / ppu) + self.offset

    def point_radius(self, visible: int | None = None) -> float:
        visible = len(self.visible_rows()) if visible is None else visible
        return point_radius(visible, self.width(), self.height())

    def hit_radius(self) -> float:
        """How far from a point's centre a click or hover still finds it: its edge and a
        little more, or half a thumbnail where thumbnails are shown."""
        visible = len(self.visible_rows())
        if 0 < visible <= THUMBS_BELOW:
            return self._thumb_size(visible) / 2.0
        return self.point_radius(visible) + HIT_MARGIN

    def row_at(self, x: float, y: float, radius: float | None = None) -> int:
        """The point nearest (x, y) within `radius` pixels (the hit radius), or -1."""
        if not len(self.world):
            return -1
        radius = self.hit_radius() if radius is None else radius
        screen = self._screen()
        d2 = (screen[:, 0] - x) ** 2 + (screen[:, 1] - y) ** 2
        row = int(np.argmin(d2))
        return row if d2[row] <= radius**2 else -1

    def visible_rows(self) -> np.ndarray:
        self._screen()
        return self._visible_cache

    def zoom(self, factor: float, at: QPointF | None = None) -> None:
        at = at or QPointF(self.width() / 2, self.height() / 2)
        before = self.to_world(at.x(), at.y())
        self.scale = float(np.clip(self.scale * factor, 0.5, 400.0))
        after = self.to_world(at.x(), at.y())
        self.offset += before - after
        self.update()

    # -- painting ---------------------------------------------------------------------------

    def render_points(self) -> QImage:
        """The points drawn for the view as it is now (on this thread)."""
        image, self._radius = draw_points(
            self.world, self.view(), self._rgb, self._edge, self._square
        )
        return image

    def _points_image(self) -> bool:
        """Make sure a drawing for the view as it is now is there or on its way; whether
        `_raster` is that drawing. During a drag none is asked for: the last one moves."""
        wanted = (self.view(), self._version)
        if self._raster_for == wanted:
            return True
        if self._drag_start is not None and not self._lasso:
            return False
        if len(self.world) <= DRAW_AT_ONCE:
            self._raster, self._raster_for = self.render_points(), wanted
            return True
        if self._asked_for != wanted:
            self._asked_for = wanted
            world, fill, edge, square = self.world, self._rgb, self._edge, self._square
            self._drawing.start(
                lambda: draw_points(world, wanted[0], fill, edge, square),
                lambda drawn: self._drawn(wanted, drawn),
                lambda why: log.warning("the map could not be drawn: %s", why),
            )
        return False

    def _drawn(self, drawn_for: tuple[View, int], drawn: tuple[QImage, float]) -> None:
        self._raster, self._radius = drawn
        self._raster_for = drawn_for
        self.update()

    def _paint_moved(self, painter: QPainter) -> None:
        """The last drawing of these points, moved and scaled to the view."""
        painter.fillRect(self.rect(), BACKGROUND)
        if self._raster is None or self._raster_for is None:
            return
        before, version = self._raster_for
        if version != self._version:
            return  # other points, or other colours
        k, dx, dy = self.view().moved_from(before)
        painter.save()
        painter.translate(dx, dy)
        painter.scale(k, k)
        painter.drawImage(0, 0, self._raster)
        painter.restore()

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        # a drag over points does not look for the visible ones (every point, every move)
        moving_points = self._drag_start is not None and not self._lasso and not self._drag_thumbs
        visible = np.zeros(0, np.int64) if moving_points else self.visible_rows()
        if 0 < len(visible) <= THUMBS_BELOW:
            painter.fillRect(self.rect(), BACKGROUND)
            self._paint_thumbnails(painter, visible)
        elif self._points_image() and self._raster is not None:
            painter.drawImage(0, 0, self._raster)
        else:
            self._paint_moved(painter)
        if len(self.selected):
            s = self.to_screen(self.world[self.selected])
            thumbs = 0 < len(visible) <= THUMBS_BELOW
            radius = self._thumb_size(len(visible)) * 0.6 if thumbs else self._radius + 3
            painter.setPen(QPen(QColor(20, 20, 20), 2.5 if thumbs else 1.5))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            for x, y in s:
                painter.drawEllipse(QPointF(x, y), radius, radius)
        if self._hover >= 0:
            self._paint_hover(painter, self._hover)
        if self._lasso:
            painter.setPen(QPen(QColor(30, 90, 200), 1.5, Qt.PenStyle.DashLine))
            painter.setBrush(QColor(30, 90, 200, 40))
            painter.drawPolygon(QPolygonF(self._lasso))
        if not len(self.world):
            painter.setPen(QColor(120, 120, 120))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "The map appears here.")
        painter.end()

    def _thumb_size(self, visible: int | None = None) -> int:
        """Thumbnails share the screen: fewer on screen, bigger each."""
        visible = len(self.visible_rows()) if visible is None else visible
        return int(np.clip(0.5 * np.sqrt(self.width() * self.height() / max(visible, 1)), 24, 96))

    def _paint_thumbnails(self, painter: QPainter, rows: np.ndarray) -> None:
        size = self._thumb_size(len(rows))
        request = QSize(128, 128)
        s = self.to_screen(self.world[rows])
        for row, (x, y) in zip(rows.tolist(), s, strict=True):
            colour = self.colours[self.labels[row]]
            box = QRectF(x - size / 2, y - size / 2, size, size)
            digest = self.hashes[row]
            pixmap = self._thumbnails.pixmap(digest, request) if digest else None
            if pixmap is not None:
                target = QSize(pixmap.width(), pixmap.height()).scaled(
                    size, size, Qt.AspectRatioMode.KeepAspectRatio
                )
                box = QRectF(
                    x - target.width() / 2, y - target.height() / 2, target.width(), target.height()
                )
                painter.drawPixmap(box.toRect(), pixmap)
            else:
                painter.fillRect(box, colour.lighter(150))
            painter.setPen(QPen(colour, 3))
            painter.drawRect(box)

    def _paint_hover(self, painter: QPainter, row: int) -> None:
        digest = self.hashes[row] if row < len(self.hashes) else None
        pixmap = self._thumbnails.pixmap(digest, QSize(128, 128)) if digest else None
        x, y = self.to_screen(self.world[row : row + 1])[0]
        painter.setPen(QPen(QColor(0, 0, 0), 2))
        painter.drawEllipse(QPointF(x, y), self._radius + 4, self._radius + 4)
        if pixmap is None:
            return
        left = x + 12 if x + 12 + pixmap.width() < self.width() else x - 12 - pixmap.width()
        top = min(max(0, y - pixmap.height() / 2), self.height() - pixmap.height())
        painter.fillRect(
            QRectF(left - 3, top - 3, pixmap.width() + 6, pixmap.height() + 6), QColor("white")
        )
        painter.drawPixmap(int(left), int(top), pixmap)

    def _thumbnail_loaded(self, _digest: str) -> None:
        if self._hover >= 0 or 0 < len(self.visible_rows()) <= THUMBS_BELOW:
            self.update()

    # -- interaction ------------------------------------------------------------------------

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120.0
        self.zoom(1.25**steps, event.position())

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        self._drag_start = self._last_pos = event.position()
        self._dragged = False
        lasso = self.lasso_mode or bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        self._lasso = [event.position()] if lasso else []
        self._drag_thumbs = 0 < len(self.visible_rows()) <= THUMBS_BELOW

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        if self._drag_start is not None:
            if (pos - self._drag_start).manhattanLength() > 3:
                self._dragged = True
            if self._lasso:
                self._lasso.append(pos)
            elif self._last_pos is not None:
                d = pos - self._last_pos
                self.offset -= np.array([d.x(), d.y()]) / self._pixels_per_unit()
            self._last_pos = pos
            self.update()
            return
        row = self.row_at(pos.x(), pos.y())
        if row != self._hover:
            self._hover = row
            self.hovered.emit(row)
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._drag_start is None:
            return
        pos = event.position()
        if self._lasso and len(self._lasso) > 2:
            polygon = np.array([self.to_world(p.x(), p.y()) for p in self._lasso])
            self.select_polygon(polygon)
        elif not self._dragged:
            row = self.row_at(pos.x(), pos.y())
            if row >= 0:
                self.clicked.emit(row)
        self._drag_start = self._last_pos = None
        self._lasso = []
        self.update()  # drawn anew where the drag left the points

    def select_polygon(self, polygon_world: np.ndarray) -> np.ndarray:
        """Select the points inside a polygon given in world coordinates."""
        rows = np.flatnonzero(points_in_polygon(self.world, np.asarray(polygon_world)))
        self.set_selection(rows)
        self.selection_changed.emit(rows)
        return rows

    def leaveEvent(self, event) -> None:
        if self._hover >= 0:
            self._hover = -1
            self.hovered.emit(-1)
            self.update()
        super().leaveEvent(event)

    def keyPressEvent(self, event) -> None:
        if event.key() in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom(1.25)
        elif event.key() == Qt.Key.Key_Minus:
            self.zoom(0.8)
        elif event.key() == Qt.Key.Key_0:
            self.reset_view()
        else:
            super().keyPressEvent(event)
