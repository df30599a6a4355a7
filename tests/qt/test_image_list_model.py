"""The grid model under qtmodeltester, and the thumbnail loader on a real store."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, QThreadPool
from PySide6.QtGui import QImage

from visualsearch.core.store import FileRecord
from visualsearch.qt.image_list_model import GridItem, ImageListModel, Role, describe_record
from visualsearch.qt.thumbnails import ImageLoader, StoreThumbnails

from .conftest import open_and_wait


def _items(n: int, scored: bool = False) -> list[GridItem]:
    return [
        GridItem(
            Path(f"/photos/img{i}.jpg"),
            f"img{i}.jpg",
            FileRecord(f"img{i}.jpg", 1000 + i, 0, f"hash{i % 3}", 640, 480, "JPEG"),
            score=1.0 - i / 100 if scored else None,
        )
        for i in range(n)
    ]


def _solid(key: str, size: QSize) -> QImage:
    image = QImage(size, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.darkCyan)
    return image


def test_model_passes_qtmodeltester_and_serves_thumbnails(qtmodeltester, qtbot):
    loader = ImageLoader(_solid, QThreadPool(), "test-solid")
    model = ImageListModel(loader, icon_size=64)
    qtmodeltester.check(model)
    model.set_items(_items(5))
    model.append_items(_items(3, scored=True))
    qtmodeltester.check(model)
    assert model.rowCount() == 8

    index = model.index(6)
    assert model.data(index, Role.Score) == 0.99
    assert model.data(index, Role.Path) == "/photos/img1.jpg"
    assert model.data(index, Role.Hash) == "hash1"
    assert "640 × 480" in model.data(index, Qt.ItemDataRole.ToolTipRole)
    assert b"score" in model.roleNames().values()

    # no pixmap yet: asking loads it, and its arrival is announced (batched) to the views
    arrived: set[str] = set()
    model.thumbnails_arrived.connect(arrived.update)
    decoration = Qt.ItemDataRole.DecorationRole
    qtbot.waitUntil(lambda: model.data(model.index(1), decoration) is not None, timeout=10_000)
    qtbot.waitUntil(lambda: "hash1" in arrived, timeout=10_000)
    pixmap = model.data(model.index(1), decoration)
    assert pixmap is not None and pixmap.size() == QSize(64, 64)
    assert model.data(model.index(4), Qt.ItemDataRole.DecorationRole) is not None  # hash1 too
    qtmodeltester.check(model)


def test_loader_serves_newest_requests_first_and_drops_old_ones(qtbot):
    order: list[str] = []
    pool = QThreadPool()
    pool.setMaxThreadCount(1)

    def load(key: str, size: QSize) -> QImage:
        order.append(key)
        return _solid(key, size)

    loader = ImageLoader(load, pool, "test-order", threads=1)
    pool.start(lambda: __import__("time").sleep(0.3))  # keep the only thread busy for a moment
    for i in range(600):
        loader.request(f"k{i}", QSize(8, 8))
    pool.waitForDone(10_000)
    assert order[0] == "k599"  # the last asked for is what is on screen now
    assert len(order) == 512 and "k0" not in order  # requests that scrolled away are dropped


def test_store_thumbnails_come_from_the_collection(qtbot, window, gallery):
    open_and_wait(qtbot, window, gallery)
    source = StoreThumbnails()
    source.store_dir = window.collection.target.store_dir
    record = window.collection.records["chelsea.png"]
    image = source(record.hash, QSize(100, 100))
    assert image is not None and max(image.width(), image.height()) == 100
    assert source("0" * 32, QSize(100, 100)) is None


def test_describe_record():
    r = FileRecord("a.jpg", 2_500_000, 0, "h", 4000, 3000, "JPEG")
    assert describe_record(r) == "4000 × 3000 · JPEG · 2.5 MB"
