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
    with qtbot.waitSignal(window.map_ready, timeout=240_000) as blocker:
        window.show_map()
    return blocker.args[0]


def test_map_shows_every_image_and_named_clusters(qtbot, window, gallery):
    cmap = _open_map(qtbot, window, gallery)
    view = window.map_page.view
    assert len(view.world) == len(cmap.paths) == len(window.records)
    tree = window.map_page.clusters.tree
    assert tree.topLevelItemCount() == cmap.clustering.k
    cat = cmap.labels[cmap.paths.index("chelsea.png")]
    assert "cat" in tree.topLevelItem(int(cat)).text(0).lower()

    # click a cluster: the grid lists its images, closest to the centre first
    window.show_cluster(int(cat))
    names = [window.model.item(r).path.name for r in range(window.model.rowCount())]
    assert "chelsea.png" in names and len(names) == len(cmap.members(int(cat)))
    scores = [window.model.item(r).score for r in range(window.model.rowCount())]
    assert scores == sorted(scores, reverse=True)

    # rename it; the name is kept in the store for the next map
    item = tree.topLevelItem(int(cat))
    item.setText(0, "Chelsea the cat")
    assert window.cmap.names[int(cat)] == "Chelsea the cat"
    window.pool.waitForDone(10_000)
    with qtbot.waitSignal(window.map_ready, timeout=240_000) as blocker:
        window.refresh_map()
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
    assert "selected on the map" in window.query_label.text()

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
    with qtbot.waitSignal(window.export_finished, timeout=60_000) as blocker:
        window.export_rows(rows, dest)
    report = blocker.args[0]
    folder = dest / report.folders[cmap.names[cat]].name
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        cmap.paths[r].rsplit("/", 1)[-1] for r in rows
    )
    assert "Copied" in window.message.text() and "overwritten" not in window.message.text()
    with open(dest / MANIFEST, newline="", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == len(rows)

    with qtbot.waitSignal(window.export_finished, timeout=60_000) as blocker:
        window.export_rows(rows, dest)  # again: the same files are there, none copied twice
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
