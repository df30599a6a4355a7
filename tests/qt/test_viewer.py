"""The viewer driven with keys, buttons, the wheel and the mouse, judged by the pixels it
shows; and the grid: columns that fill the width, names cut in the middle, Space to view."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt, QThreadPool
from PySide6.QtGui import QAction, QColor, QFontMetrics, QKeySequence, QPixmap, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMainWindow, QStyle

from visualsearch.qt.full_images import load_full
from visualsearch.qt.grid_view import ThumbnailGrid, elide_file_name
from visualsearch.qt.image_list_model import GridItem, ImageListModel
from visualsearch.qt.thumbnails import ImageLoader
from visualsearch.qt.viewer import ImageViewer

W, H = 1600, 1200  # larger than the viewer, so that fitting halves it
COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}
TIMEOUT_MS = 20_000


@pytest.fixture
def solid_images(tmp_path) -> list[Path]:
    paths = []
    for name, rgb in COLOURS.items():
        path = tmp_path / f"{name}.png"
        Image.new("RGB", (W, H), rgb).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def pool():
    pool = QThreadPool()
    yield pool
    pool.waitForDone()  # no decode may finish into a deleted viewer


def make_viewer(qtbot, pool, **kwargs) -> ImageViewer:
    viewer = ImageViewer(pool, **kwargs)
    qtbot.addWidget(viewer)
    viewer.resize(800, 700)
    viewer.show()
    qtbot.waitExposed(viewer)
    return viewer


@pytest.fixture
def viewer(qtbot, pool) -> ImageViewer:
    return make_viewer(qtbot, pool)


def pixel(viewer: ImageViewer, x: int | None = None, y: int | None = None) -> QColor:
    """The colour on screen at a point of the picture area (default: its centre)."""
    image = viewer.canvas.viewport().grab().toImage()
    x = image.width() // 2 if x is None else x
    y = image.height() // 2 if y is None else y
    return image.pixelColor(x, y)


def showing(viewer: ImageViewer, name: str) -> bool:
    return viewer.info.text().endswith("%") and pixel(viewer) == QColor(*COLOURS[name])


def wait_showing(qtbot, viewer: ImageViewer, name: str) -> None:
    qtbot.waitUntil(lambda: showing(viewer, name), timeout=TIMEOUT_MS)


def key(viewer: ImageViewer, k: Qt.Key, mods=Qt.KeyboardModifier.NoModifier) -> None:
    QTest.keyClick(viewer.canvas, k, mods)


def shown_rect(viewer: ImageViewer):
    """The picture's rectangle in viewport pixels."""
    canvas = viewer.canvas
    return canvas.mapFromScene(canvas.sceneRect()).boundingRect()


def test_arrows_page_keys_home_and_end_walk_the_list(qtbot, viewer, solid_images):
    red, green, blue, yellow = solid_images
    changed: list[Path] = []
    viewer.current_changed.connect(changed.append)
    viewer.show_items(solid_images, 0)
    wait_showing(qtbot, viewer, "red")
    assert viewer.info.text() == "red.png — 1 / 4 — 1600×1200 — 50 %"
    assert not viewer.previous_button.isEnabled()

    key(viewer, Qt.Key.Key_Right)
    wait_showing(qtbot, viewer, "green")
    assert viewer.current_path() == green
    assert viewer.info.text().startswith("green.png — 2 / 4 — ")
    key(viewer, Qt.Key.Key_End)
    wait_showing(qtbot, viewer, "yellow")
    assert not viewer.next_button.isEnabled()
    key(viewer, Qt.Key.Key_Right)  # the last one stays
    assert viewer.current_path() == yellow
    key(viewer, Qt.Key.Key_Left)
    wait_showing(qtbot, viewer, "blue")
    key(viewer, Qt.Key.Key_Home)
    wait_showing(qtbot, viewer, "red")
    key(viewer, Qt.Key.Key_PageDown)
    wait_showing(qtbot, viewer, "green")
    key(viewer, Qt.Key.Key_PageUp)
    wait_showing(qtbot, viewer, "red")
    assert changed == [red, green, yellow, blue, red, green, red]

    QTest.mouseClick(viewer.next_button, Qt.MouseButton.LeftButton)
    wait_showing(qtbot, viewer, "green")
    QTest.mouseClick(viewer.previous_button, Qt.MouseButton.LeftButton)
    wait_showing(qtbot, viewer, "red")


def test_show_items_opens_at_the_row_asked_for(qtbot, viewer, solid_images):
    with qtbot.waitSignal(viewer.current_changed) as blocker:
        viewer.show_items(solid_images, 2)
    assert blocker.args == [solid_images[2]]
    wait_showing(qtbot, viewer, "blue")
    assert viewer.info.text().startswith("blue.png — 3 / 4 — ")


def test_escape_and_back_close_the_viewer(qtbot, viewer, solid_images):
    viewer.show_items(solid_images, 0)
    key(viewer, Qt.Key.Key_Right)
    with qtbot.waitSignal(viewer.closed, timeout=1000):
        key(viewer, Qt.Key.Key_Escape)
    assert viewer.current_path() == solid_images[1]  # for the grid to select it
    viewer.show_items(solid_images, 2)
    wait_showing(qtbot, viewer, "blue")
    with qtbot.waitSignal(viewer.closed, timeout=1000):
        QTest.mouseClick(viewer.back_button, Qt.MouseButton.LeftButton)


def test_fit_by_default_and_1_toggles_actual_size(qtbot, viewer, tmp_path):
    # the left quarter black: the fitted picture shows it at the viewport's left edge,
    # while at 100 % (centred) only the picture's middle half is on screen
    img = Image.new("RGB", (W, H), COLOURS["red"])
    img.paste((0, 0, 0), (0, 0, W // 4, H))
    path = tmp_path / "quarter.png"
    img.save(path)
    viewer.show_items([path], 0)
    qtbot.waitUntil(lambda: viewer.info.text().endswith("%"), timeout=TIMEOUT_MS)
    view = viewer.canvas.viewport().rect()

    assert viewer.is_fitted() and viewer.zoom() == pytest.approx(0.5)
    assert viewer.fit_button.isChecked() and not viewer.actual_button.isChecked()
    rect = shown_rect(viewer)
    assert abs(rect.width() - W // 2) <= 2 and view.contains(rect.adjusted(1, 1, -1, -1))
    assert pixel(viewer, 100) == QColor(0, 0, 0)
    assert pixel(viewer, 300) == QColor(*COLOURS["red"])

    key(viewer, Qt.Key.Key_1)
    assert viewer.zoom() == 1.0 and not viewer.is_fitted()
    assert viewer.info.text().endswith("— 100 %") and viewer.actual_button.isChecked()
    rect = shown_rect(viewer)
    assert abs(rect.width() - W) <= 2 and abs(rect.center().x() - view.center().x()) <= 2
    assert pixel(viewer, 5) == QColor(*COLOURS["red"])  # the black quarter is off screen

    key(viewer, Qt.Key.Key_1)
    assert viewer.is_fitted() and viewer.zoom() == pytest.approx(0.5)
    assert pixel(viewer, 100) == QColor(0, 0, 0)
    key(viewer, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert viewer.zoom() == 1.0
    QTest.mouseClick(viewer.fit_button, Qt.MouseButton.LeftButton)
    assert viewer.is_fitted() and viewer.zoom() == pytest.approx(0.5)
    QTest.mouseClick(viewer.actual_button, Qt.MouseButton.LeftButton)
    assert viewer.zoom() == 1.0


def test_plus_and_minus_zoom_but_never_below_the_fitted_view(qtbot, viewer, solid_images):
    viewer.show_items(solid_images, 0)
    wait_showing(qtbot, viewer, "red")
    key(viewer, Qt.Key.Key_Plus)
    assert viewer.zoom() == pytest.approx(0.625) and not viewer.is_fitted()
    assert viewer.info.text().endswith("— 62 %")
    assert shown_rect(viewer).width() >= 999
    key(viewer, Qt.Key.Key_Minus)
    key(viewer, Qt.Key.Key_Minus)
    assert viewer.is_fitted() and viewer.zoom() == pytest.approx(0.5)

    # a fitted picture follows the window's size; a zoomed one keeps its scale
    viewer.resize(400, 700)
    qtbot.waitUntil(lambda: viewer.zoom() == pytest.approx(0.25))
    key(viewer, Qt.Key.Key_1)
    viewer.resize(800, 700)
    qtbot.waitUntil(lambda: viewer.canvas.viewport().width() == 800)
    assert viewer.zoom() == 1.0


def _ctrl_wheel(widget, pos: QPoint, steps: int) -> None:
    event = QWheelEvent(
        QPointF(pos),
        QPointF(widget.mapToGlobal(pos)),
        QPoint(),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.ControlModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def test_the_viewers_keys_win_over_the_windows_shortcuts(qtbot, pool, solid_images):
    # the main window binds Esc to "All Images" and Ctrl++ to larger thumbnails
    window = QMainWindow()
    qtbot.addWidget(window)
    fired: list[str] = []
    for keys in ("Esc", "Ctrl++", "Right"):
        action = QAction(keys, window, shortcut=QKeySequence(keys))
        action.triggered.connect(lambda _=False, k=keys: fired.append(k))
        window.addAction(action)
    viewer = ImageViewer(pool)
    window.setCentralWidget(viewer)
    window.resize(800, 700)
    window.show()
    qtbot.waitActive(window)
    viewer.setFocus()
    viewer.show_items(solid_images, 0)
    wait_showing(qtbot, viewer, "red")
    QTest.keyClick(viewer.canvas, Qt.Key.Key_Plus, Qt.KeyboardModifier.ControlModifier)
    assert viewer.zoom() > 0.5
    QTest.keyClick(viewer.canvas, Qt.Key.Key_Right)
    assert viewer.current_path() == solid_images[1]
    with qtbot.waitSignal(viewer.closed, timeout=1000):
        QTest.keyClick(viewer.canvas, Qt.Key.Key_Escape)
    assert fired == []


def test_ctrl_wheel_zooms_about_the_cursor(qtbot, viewer, solid_images):
    viewer.show_items(solid_images, 0)
    wait_showing(qtbot, viewer, "red")
    canvas = viewer.canvas
    cursor = QPoint(200, 150)
    under = canvas.mapToScene(cursor)
    _ctrl_wheel(canvas.viewport(), cursor, 2)
    assert viewer.zoom() == pytest.approx(0.5 * 1.25**2)
    after = canvas.mapToScene(cursor)
    assert abs(after.x() - under.x()) <= 2 and abs(after.y() - under.y()) <= 2
    _ctrl_wheel(canvas.viewport(), cursor, -5)
    assert viewer.is_fitted()


def test_dragging_pans_a_picture_larger_than_the_view(qtbot, viewer, solid_images):
    viewer.show_items(solid_images, 0)
    wait_showing(qtbot, viewer, "red")
    key(viewer, Qt.Key.Key_1)
    port = viewer.canvas.viewport()
    centre = port.rect().center()
    before = viewer.canvas.mapToScene(centre)
    QTest.mousePress(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre)
    QTest.mouseMove(port, centre + QPoint(-60, -30))
    QTest.mouseMove(port, centre + QPoint(-120, -60))
    QTest.mouseRelease(
        port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre + QPoint(-120, -60)
    )
    after = viewer.canvas.mapToScene(centre)
    # the picture followed the hand: what was 120 px right of the centre now is there
    assert after.x() - before.x() == pytest.approx(120, abs=2)
    assert after.y() - before.y() == pytest.approx(60, abs=2)


def test_the_cached_thumbnail_shows_until_the_file_is_decoded(qtbot, pool, solid_images):
    gate = threading.Event()

    def slow_load(path, cancelled):
        gate.wait(TIMEOUT_MS / 1000)
        return load_full(path, cancelled)

    thumb = QPixmap(160, 120)
    thumb.fill(QColor(255, 0, 255))
    viewer = make_viewer(qtbot, pool, cached=lambda path: thumb, load=slow_load)
    try:
        viewer.show_items(solid_images, 0)
        assert pixel(viewer) == QColor(255, 0, 255)
        rect = shown_rect(viewer)  # enlarged to fill the view like the picture will
        assert rect.width() >= 790 or rect.height() >= viewer.canvas.viewport().height() - 10
        assert viewer.info.text() == "red.png — 1 / 4 — loading…"
        assert viewer.message() is None
    finally:
        gate.set()
    wait_showing(qtbot, viewer, "red")
    assert viewer.info.text() == "red.png — 1 / 4 — 1600×1200 — 50 %"


def test_the_next_image_is_decoded_ahead_and_shown_at_once(qtbot, pool, solid_images):
    red, green, blue, _ = solid_images
    decoded: list[Path] = []

    def recording_load(path, cancelled):
        decoded.append(path)
        return load_full(path, cancelled)

    viewer = make_viewer(qtbot, pool, load=recording_load)
    viewer.show_items(solid_images, 0)
    wait_showing(qtbot, viewer, "red")
    pool.waitForDone()
    QApplication.processEvents()  # deliver the finished decode
    assert decoded == [red, green]
    key(viewer, Qt.Key.Key_Right)
    assert showing(viewer, "green")  # no waiting: it was ready
    pool.waitForDone()
    QApplication.processEvents()
    key(viewer, Qt.Key.Key_Left)
    assert showing(viewer, "red")
    assert decoded == [red, green, blue]  # each file decoded once


def test_files_that_cannot_be_shown_say_why(qtbot, viewer, solid_images, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not an image")
    truncated = tmp_path / "truncated.jpg"
    Image.new("RGB", (640, 480), (10, 200, 30)).save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    viewer.show_items([broken, truncated, solid_images[0]], 0)

    qtbot.waitUntil(lambda: (viewer.message() or "").startswith("broken.jpg cannot be shown"))
    assert "not an image" in viewer.message()
    assert viewer.canvas.message.isVisible()
    assert viewer.info.text() == "broken.jpg — 1 / 3 — cannot be shown"
    key(viewer, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: "truncated" in (viewer.message() or ""), timeout=TIMEOUT_MS)
    assert viewer.message().startswith("truncated.jpg cannot be shown")
    key(viewer, Qt.Key.Key_Right)
    wait_showing(qtbot, viewer, "red")
    assert viewer.message() is None
    key(viewer, Qt.Key.Key_Home)  # known to be broken: said at once
    assert "not an image" in viewer.message()


def test_an_empty_list_shows_a_message(qtbot, viewer):
    viewer.show_items([], 0)
    assert viewer.message() == "No images to show."
    assert viewer.current_path() is None
    key(viewer, Qt.Key.Key_Right)  # nothing to go to, and no error
    key(viewer, Qt.Key.Key_1)


def test_large_pictures_are_decoded_within_the_pixel_cap(tmp_path):
    path = tmp_path / "large.png"
    Image.new("RGB", (4000, 3000), (0, 0, 255)).save(path)
    full = load_full(path, max_pixels=3_000_000)
    assert (full.width, full.height) == (4000, 3000)  # the original's size, for the 100 %
    top = full.levels[0]
    assert top.width() * top.height() <= 3_000_000
    assert top.width() / top.height() == pytest.approx(4 / 3, rel=0.01)
    assert top.pixelColor(10, 10) == QColor(0, 0, 255)
    assert [level.width() for level in full.levels] == [
        top.width() >> i for i in range(len(full.levels))
    ]
    assert max(full.levels[-1].width(), full.levels[-1].height()) < 1024


# -- the grid -------------------------------------------------------------------------------


def grid_with(qtbot, n: int, icon_size: int = 100) -> ThumbnailGrid:
    loader = ImageLoader(lambda key, size: None, QThreadPool(), "viewer-test")
    model = ImageListModel(loader, icon_size)
    model.set_items(
        [GridItem(Path(f"/photos/IMG_20240413_{i:06d}.jpg"), None, None) for i in range(n)]
    )
    grid = ThumbnailGrid(icon_size)
    grid.setModel(model)
    qtbot.addWidget(grid)
    grid.show()
    return grid


def first_row(grid: ThumbnailGrid):
    model = grid.model()
    rects = [grid.visualRect(model.index(r)) for r in range(model.rowCount())]
    return [r for r in rects if r.top() == rects[0].top()]


def laid_out(grid: ThumbnailGrid, width: int) -> bool:
    row = first_row(grid)
    return grid.width() == width and row[0].width() == grid.gridSize().width()


def test_grid_columns_fill_the_width_as_it_is_resized(qtbot):
    grid = grid_with(qtbot, 80)
    smallest = grid.delegate.cell_size(grid.fontMetrics().height()).width()
    for icon_size in (100, 64):
        grid.set_icon_size(icon_size)
        smallest = grid.delegate.cell_size(grid.fontMetrics().height()).width()
        for width in (330, 451, 803, 1000, 612):
            grid.resize(width, 500)
            qtbot.waitUntil(lambda w=width: laid_out(grid, w))
            row = first_row(grid)
            columns = len(row)
            view = grid.viewport().width()
            assert grid.verticalScrollBar().isVisible()
            assert row[0].left() == 0
            assert {r.width() for r in row} == {row[0].width()} and row[0].width() >= smallest
            assert (columns + 1) * smallest > view, "as many columns as fit"
            blank = view - (row[-1].right() + 1)
            assert 0 <= blank <= columns + 1, (width, icon_size, blank)


def test_a_grid_without_a_scroll_bar_leaves_only_the_bars_room(qtbot):
    grid = grid_with(qtbot, 7)
    grid.resize(700, 500)
    bar = grid.verticalScrollBar()
    qtbot.waitUntil(
        lambda: laid_out(grid, 700) and len(first_row(grid)) == 6 and not bar.isVisible()
    )
    row = first_row(grid)
    extent = grid.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, grid)
    blank = grid.viewport().width() - (row[-1].right() + 1)
    # Qt lays icons out as if the bar were there, so that columns do not jump when it comes
    assert blank <= extent + len(row) + 1


def test_space_and_double_click_ask_for_the_viewer_enter_for_similar(qtbot):
    grid = grid_with(qtbot, 10)
    grid.resize(600, 400)
    qtbot.waitUntil(lambda: laid_out(grid, 600))
    grid.setFocus()
    index = grid.model().index(3)
    grid.setCurrentIndex(index)
    with qtbot.waitSignal(grid.view_requested, timeout=1000) as blocker:
        QTest.keyClick(grid, Qt.Key.Key_Space)
    assert blocker.args[0].row() == 3
    with qtbot.assertNotEmitted(grid.view_requested):
        QTest.keyClick(grid, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
    with qtbot.waitSignal(grid.activated_item, timeout=1000) as blocker:
        QTest.keyClick(grid, Qt.Key.Key_Return)
    assert blocker.args[0].row() == 3
    centre = grid.visualRect(grid.model().index(5)).center()
    with qtbot.waitSignal(grid.view_requested, timeout=1000) as blocker:
        # a user's double-click: a click, then the second press (QTest sends only that)
        QTest.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=centre)
        QTest.mouseDClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    assert blocker.args[0].row() == 5


def test_names_are_cut_in_the_middle_of_the_stem_keeping_start_and_extension(qtbot):
    grid = grid_with(qtbot, 1)
    fm = QFontMetrics(grid.font())
    name = "IMG_20240413_123456.jpg"
    assert elide_file_name(name, fm, fm.horizontalAdvance(name)) == name
    widths = range(fm.horizontalAdvance("IMG_…6.jpg"), fm.horizontalAdvance(name))
    for width in widths:
        shown = elide_file_name(name, fm, width)
        assert fm.horizontalAdvance(shown) <= width
        head, tail = shown.split("…")
        assert head and name.startswith(head) and tail.endswith(".jpg")
        kept_end = tail.removesuffix(".jpg")
        assert name.removesuffix(".jpg").endswith(kept_end)
        assert len(head) >= 2 * len(kept_end) - 1 and len(head) >= 4, shown
    room = fm.horizontalAdvance("IMG_2024…0413.jpg")
    assert elide_file_name("IMG_20240413.jpg" + "", fm, room).startswith("IMG_20")
    # no extension, or too narrow even for it: the start is what stays
    assert elide_file_name("a_long_name_without_dots", fm, 60).startswith("a_lo")
    assert elide_file_name(name, fm, fm.horizontalAdvance("IMG…")).startswith("IM")
    # what the delegate draws under a thumbnail is this, escaped for undecodable bytes
    assert grid.delegate.display_name("bad\udce9name.jpg", fm, 500) == "bad\\xe9name.jpg"


def test_photos_are_shown_upright_from_their_exif_orientation(tmp_path):
    img = Image.new("RGB", (300, 200), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 150, 200))  # blue left half, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "rotated.jpg"
    img.save(path, quality=95, exif=exif)
    full = load_full(path)
    assert (full.width, full.height) == (200, 300)
    top = full.levels[0]
    assert (top.width(), top.height()) == (200, 300)
    assert top.pixelColor(100, 20).blue() > 200  # the stored left half is now on top
    assert top.pixelColor(100, 280).red() > 200
