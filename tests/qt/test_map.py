"""The Map tab on real photos: layout, clusters, lasso, "more like these", export."""

from __future__ import annotations

import csv

import numpy as np
from PySide6.QtCore import QPointF, Qt

from tests.qt.conftest import open_and_wait, wait_results
from visualsearch.core.export import MANIFEST
from visualsearch.core.query import SelectionQuery
from visualsearch.qt.map_view import MapView, points_in_polygon


def _open_map(qtbot, window, gallery):
    open_and_wait(qtbot, window, gallery)
    with qtbot.waitSignal(window.maps.map_ready, timeout=240_000) as blocker:
        window.tabs.setCurrentWidget(window.map_page)
    return blocker.args[0]


def test_map_shows_every_image_and_named_clusters(qtbot, window, gallery):
    cmap = _open_map(qtbot, window, gallery)
    view = window.map_page.view
    assert len(view.world) == len(cmap.paths) == len(window.collection.records)
    tree = window.map_page.clusters.tree
    assert tree.topLevelItemCount() == cmap.clustering.k
    cat = cmap.labels[cmap.paths.index("chelsea.png")]
    assert "cat" in tree.topLevelItem(int(cat)).text(0).lower()

    # click a cluster: the grid lists its images, closest to the centre first
    window.maps.show_cluster(int(cat))
    names = [window.model.item(r).path.name for r in range(window.model.rowCount())]
    assert "chelsea.png" in names and len(names) == len(cmap.members(int(cat)))
    scores = [window.model.item(r).score for r in range(window.model.rowCount())]
    assert scores == sorted(scores, reverse=True)

    # rename it; the name is kept in the store for the next map
    item = tree.topLevelItem(int(cat))
    item.setText(0, "Chelsea the cat")
    assert window.maps.cmap.names[int(cat)] == "Chelsea the cat"
    window.pool.waitForDone(10_000)
    with qtbot.waitSignal(window.maps.map_ready, timeout=240_000) as blocker:
        window.maps.refresh()
    assert blocker.args[0].names[int(cat)] == "Chelsea the cat"
    item = window.map_page.clusters.tree.topLevelItem(int(cat))
    item.setText(0, "")  # back to the suggested name
    window.pool.waitForDone(10_000)


def test_lasso_selects_points_shows_them_and_finds_more_like_them(qtbot, window, gallery):
    cmap = _open_map(qtbot, window, gallery)
    view = window.map_page.view
    chelsea = cmap.paths.index("chelsea.png")
    centre = view.to_screen(view.world[chelsea : chelsea + 1])[0]
    # a small square drawn around chelsea with Shift held: what is inside is selected
    corners = [(-15, -15), (15, -15), (15, 15), (-15, 15), (-15, -14)]
    points = [QPointF(centre[0] + dx, centre[1] + dy) for dx, dy in corners]
    shift = Qt.KeyboardModifier.ShiftModifier
    with qtbot.waitSignal(view.selection_changed) as blocker:
        qtbot.mousePress(view, Qt.MouseButton.LeftButton, shift, points[0].toPoint())
        for p in points[1:]:
            qtbot.mouseMove(view, p.toPoint())
        qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, shift, points[-1].toPoint())
    rows = blocker.args[0]
    assert chelsea in rows
    polygon = np.array([view.to_world(p.x(), p.y()) for p in points])
    assert set(rows.tolist()) == set(
        np.flatnonzero(points_in_polygon(view.world, polygon)).tolist()
    )
    grid = {window.model.item(r).rel for r in range(window.model.rowCount())}
    assert grid == {cmap.paths[r] for r in rows}
    assert "selected on the map" in window.results_area.query_label.text()

    result = wait_results(qtbot, window, window.map_page.more.click)
    assert isinstance(result.query, SelectionQuery)
    assert not {str(p) for p in result.query.paths} & {str(h.path) for h in result.hits}
    # ranked by the selection's mean vector: the same order as computed here directly
    mean = cmap.vectors[rows].mean(0)
    sims = cmap.vectors @ (mean / np.linalg.norm(mean))
    sims[rows] = -np.inf
    expected = [cmap.paths[i] for i in np.argsort(-sims)[:3]]
    got = [h.path.relative_to(gallery).as_posix() for h in result.hits[:3]]
    assert got == expected


def test_export_the_selection_and_clusters_into_folders(qtbot, window, gallery, tmp_path):
    cmap = _open_map(qtbot, window, gallery)
    cat = int(cmap.labels[cmap.paths.index("chelsea.png")])
    rows = cmap.members(cat)
    dest = tmp_path / "export"
    with qtbot.waitSignal(window.maps.export_finished, timeout=60_000) as blocker:
        window.maps.export_rows(rows, dest)
    report = blocker.args[0]
    folder = dest / report.folders[cmap.names[cat]].name
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        cmap.paths[r].rsplit("/", 1)[-1] for r in rows
    )
    assert "Copied" in window.message.text() and "overwritten" not in window.message.text()
    with open(dest / MANIFEST, newline="", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == len(rows)

    # the job lets go of its thread just after telling its outcome
    qtbot.waitUntil(lambda: not window.maps.export_jobs.busy(), timeout=10_000)
    with qtbot.waitSignal(window.maps.export_finished, timeout=60_000) as blocker:
        window.maps.export_rows(rows, dest)  # again: the same files are there, none copied twice
    assert blocker.args[0].renamed == 0 and len(blocker.args[0].already) == len(rows)
    assert "already there with the same content" in window.message.text()


def test_map_view_zoom_pan_hover_and_paint(qtbot, tmp_path):
    from PySide6.QtCore import QThreadPool

    from visualsearch.qt.thumbnails import ImageLoader

    loader = ImageLoader(lambda key, size: None, QThreadPool(), "map-test")
    view = MapView(loader)
    qtbot.addWidget(view)
    view.resize(400, 400)
    view.show()
    rng = np.random.default_rng(0)
    coords = rng.standard_normal((5000, 2))
    view.set_data(coords, rng.integers(0, 7, 5000), [None] * 5000, 7)
    image = view.render_points()
    assert image.width() == 400 and image.pixelColor(200, 200) != image.pixelColor(0, 0)
    before = view.visible_rows().size
    view.zoom(8.0)
    assert view.visible_rows().size < before
    row = int(view.visible_rows()[0])
    x, y = view.to_screen(view.world[row : row + 1])[0]
    assert view.row_at(x + 1, y) == row
    with qtbot.waitSignal(view.clicked) as blocker:
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPointF(x, y).toPoint())
    assert blocker.args[0] == view.row_at(x, y)


def test_a_drag_moves_the_points_as_drawn_and_draws_them_again_when_it_ends(qtbot, monkeypatch):
    """Every mouse move of a drag drew all the points again: 0.2 s each at a million."""
    view = _scattered_view(qtbot, seed=1)
    view.grab()  # painted (grab calls paintEvent; offscreen windows may not repaint)
    drawn = []
    real = view.render_points
    monkeypatch.setattr(view, "render_points", lambda: drawn.append(1) or real())
    start = view.offset.copy()
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPointF(200, 200).toPoint())
    for x in range(205, 300, 10):
        qtbot.mouseMove(view, QPointF(x, 200).toPoint())
        view.grab()
    assert not drawn  # the drawn points were moved, not drawn again
    grabbed = view.grab().toImage()
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPointF(295, 200).toPoint())
    assert len(drawn) == 0
    after = view.grab().toImage()
    assert len(drawn) == 1  # once, where the drag left them
    assert view.offset[0] < start[0] and view.offset[1] == start[1]
    same = sum(
        grabbed.pixel(x, y) == after.pixel(x, y) for x in range(0, 400, 8) for y in range(0, 400, 8)
    )
    assert same > 0.9 * 50 * 50  # what the drag showed is what is drawn after it


def test_a_large_map_is_drawn_in_the_pool_and_the_last_drawing_shown_meanwhile(qtbot, monkeypatch):
    """A million points took 0.3 s on the GUI thread for every zoom step; above
    DRAW_AT_ONCE (0 here) they are drawn in the pool and the last drawing, moved and
    scaled, stands in until the new one is there."""
    from PySide6.QtGui import QImage

    from visualsearch.qt import map_view
    from visualsearch.qt.map_view import BACKGROUND

    monkeypatch.setattr(map_view, "DRAW_AT_ONCE", 0)
    view = _scattered_view(qtbot, seed=2)

    def drawn() -> bool:
        return view._raster_for == (view.view(), view._version)

    def painted(image) -> int:
        bg = BACKGROUND.rgba()
        return sum(image.pixel(x, y) != bg for x in range(0, 400, 4) for y in range(0, 400, 4))

    assert painted(view.grab().toImage()) == 0  # asked for, not there yet: background
    qtbot.waitUntil(drawn, timeout=10_000)
    first = view.grab().toImage()
    rgb = QImage.Format.Format_RGB32
    assert first == view.render_points().convertToFormat(rgb)  # the pool's is this view's
    view.zoom(1.5)
    stand_in = view.grab().toImage()
    assert not drawn() and painted(stand_in) > 0.5 * painted(first)  # the last one, scaled
    qtbot.waitUntil(drawn, timeout=10_000)
    assert view.grab().toImage() == view.render_points().convertToFormat(rgb)


def _scattered_view(qtbot, seed: int, n: int = 3000) -> MapView:
    """A 400 × 400 map of `n` normally scattered points in 5 clusters, shown."""
    view = MapView(_loader())
    qtbot.addWidget(view)
    view.resize(400, 400)
    view.show()
    rng = np.random.default_rng(seed)
    view.set_data(rng.standard_normal((n, 2)), rng.integers(0, 5, n), [None] * n, 5)
    return view


def _loader():
    from PySide6.QtCore import QThreadPool

    from visualsearch.qt.thumbnails import ImageLoader

    return ImageLoader(lambda key, size: None, QThreadPool(), "map-test")


def test_24_clusters_get_24_clearly_distinct_colours_and_more_get_other_markers(qtbot):
    """Golden-ratio hues gave pairs of clusters colours a person cannot tell apart."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    from visualsearch.qt.map_view import BACKGROUND, OUTLINE, PALETTE, cluster_colours

    colours = cluster_colours(24)
    rgb = np.array([[c.red(), c.green(), c.blue()] for c in [*colours, BACKGROUND]]) / 255.0
    lab = rgb2lab(rgb[None])[0]
    distance = deltaE_ciede2000(lab[:, None, :], lab[None, :, :])
    np.fill_diagonal(distance, np.inf)
    print(
        f"\nclosest two of 24 cluster colours (or one and the background): ΔE {distance.min():.1f}"
    )
    assert distance.min() >= 15  # clearly different (ΔE 2.3 is a just noticeable difference)

    # drawn: one point per cluster, far apart; clusters beyond the palette repeat its
    # colours with an outline, then as outlined squares
    k = 2 * len(PALETTE) + 1
    view = MapView(_loader())
    qtbot.addWidget(view)
    view.resize(800, 800)
    side = int(np.ceil(np.sqrt(k)))
    coords = np.array([(c % side, c // side) for c in range(k)], float)
    view.set_data(coords, np.arange(k), [None] * k, k)
    image = view.render_points()
    reach = int(np.ceil(view.point_radius()))
    seen = {}
    for c in range(k):
        x, y = np.rint(view.to_screen(view.world[c : c + 1])[0]).astype(int)
        seen[c] = image.pixelColor(x, y).rgb()
        edge = image.pixelColor(x + reach - 1, y).rgb()
        corner = image.pixelColor(x + reach, y + reach).rgb()
        assert seen[c] == view.colours[c].rgb()
        if c < len(PALETTE):
            assert edge == seen[c] and corner == BACKGROUND.rgb(), c  # a plain disc
        elif c < 2 * len(PALETTE):
            assert edge == OUTLINE.rgb() and corner == BACKGROUND.rgb(), c  # outlined disc
        else:
            assert corner == OUTLINE.rgb(), c  # an outlined square
    assert len({seen[c] for c in range(24)}) == 24
    assert seen[0] == seen[len(PALETTE)] == seen[2 * len(PALETTE)]


def test_points_are_large_enough_to_hit_and_a_click_at_the_edge_finds_one(qtbot):
    from visualsearch.qt.map_view import POINT_MIN

    view = MapView(_loader())
    qtbot.addWidget(view)
    view.resize(400, 400)
    view.show()
    grid = np.array([(i % 20, i // 20) for i in range(400)], float)  # 16 px apart on screen
    view.set_data(grid, np.arange(400) % 5, [None] * 400, 5)
    image = view.render_points()
    row = 210
    x, y = np.rint(view.to_screen(view.world[row : row + 1])[0]).astype(int)
    colour = image.pixelColor(x, y)
    right = next(d for d in range(1, 20) if image.pixelColor(x + d, y) != colour) - 1
    print(f"\npoint radius drawn: {right} px")
    assert right >= POINT_MIN and image.pixelColor(x - right, y) == colour
    for dx, dy in ((right, 0), (0, -right), (-right, 0), (right + 2, 0)):
        with qtbot.waitSignal(view.clicked) as blocker:
            qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPointF(x + dx, y + dy).toPoint())
        assert blocker.args[0] == row, (dx, dy)

    # many points: never smaller than POINT_MIN; zoomed in, larger
    rng = np.random.default_rng(0)
    view.set_data(rng.standard_normal((100_000, 2)), np.zeros(100_000, int), [None] * 100_000, 1)
    dense = view.point_radius()
    while len(view.visible_rows()) > 1_000:
        view.zoom(2.0)
    assert dense >= POINT_MIN and view.point_radius() > dense


def _cluster_map(names: list[str]):
    from visualsearch.core.analysis import Clustering
    from visualsearch.core.collection_map import CollectionMap

    k, n = len(names), 10 * len(names)
    labels = np.arange(n) % k
    vectors = np.eye(k, dtype=np.float32)
    coords = np.random.default_rng(0).standard_normal((k, 2))[labels] * 5
    clustering = Clustering(labels, vectors, True)
    paths = [f"p{i}.jpg" for i in range(n)]
    reps = [[c, c + k] for c in range(k)]
    return CollectionMap(
        paths, vectors[labels], coords, clustering, names, list(names), reps, np.ones(n)
    )


def test_the_map_gets_most_of_the_tab(qtbot):
    """The cluster list took a third of the tab beside the details panel."""
    from visualsearch.qt.map_page import MapPage

    page = MapPage(_loader())
    qtbot.addWidget(page)
    names = ["Egyptian cat", "jeep", "thatched roof", "folding chair", "prayer rug"] * 7
    cmap = _cluster_map([f"{name} {i}" if i >= 5 else name for i, name in enumerate(names)])
    page.resize(1280, 800)
    page.show()
    qtbot.waitExposed(page)
    page.view.set_data(cmap.coords, cmap.labels, [None] * len(cmap.paths), cmap.clustering.k)
    page.clusters.set_map(cmap, [None] * len(cmap.paths))
    qtbot.wait(10)
    shares = {}
    for width in (1280, 900):  # a 1280 × 800 window: the tab alone, or beside the details
        page.resize(width, 800)
        qtbot.waitUntil(lambda w=width: page.width() == w)
        shares[width] = page.view.width() / width
    print(f"\nthe map's share of the tab: {shares}")
    assert shares[1280] >= 0.78 and shares[900] >= 0.7
    assert page.clusters.width() <= 0.2 * 1280
    stretch = page.splitter.sizes()
    page.resize(1600, 800)  # a larger window widens the map only
    qtbot.waitUntil(lambda: page.width() == 1600)
    assert page.splitter.sizes()[1] == stretch[1] and page.view.width() > 0.8 * 1600
    # and a cluster's usual name still fits beside its check box and colour
    tree = page.clusters.tree
    assert tree.topLevelItem(2).text(0) == "thatched roof"
    assert tree.columnWidth(0) >= tree.fontMetrics().horizontalAdvance("thatched roof") + 40


def test_the_cluster_list_says_which_names_no_cluster_took(qtbot):
    from visualsearch.qt.map_page import ClusterPanel

    panel = ClusterPanel(_loader())
    qtbot.addWidget(panel)
    cmap = _cluster_map(["yurt", "jeep"])
    panel.set_map(cmap, [None] * len(cmap.paths))
    assert panel.status.text() == "20 images in 2 clusters."
    cmap.lost_names = ["cars and yurts"]
    panel.set_map(cmap, [None] * len(cmap.paths))
    assert "“cars and yurts”" in panel.status.text()
    assert [panel.tree.topLevelItem(c).text(0) for c in range(2)] == ["yurt", "jeep"]


def test_the_cluster_list_says_when_new_images_were_placed_and_lays_out_again(qtbot):
    from visualsearch.qt.map_page import ClusterPanel

    panel = ClusterPanel(_loader())
    qtbot.addWidget(panel)
    panel.show()
    cmap = _cluster_map(["yurt", "jeep"])
    panel.set_map(cmap, [None] * len(cmap.paths))
    assert not panel.relayout_button.isVisible()
    cmap.placed = 3
    panel.set_map(cmap, [None] * len(cmap.paths))
    assert "3 images added since the map was laid out were placed" in panel.status.text()
    assert panel.relayout_button.isVisible()
    with qtbot.waitSignal(panel.relayout_requested):
        qtbot.mouseClick(panel.relayout_button, Qt.MouseButton.LeftButton)
