"""Images for the grid and the details panel, loaded in a QThreadPool and kept in
QPixmapCache. Only what a view asks for is loaded (the visible items), newest
request first, so scrolling through 50,000 images never queues 50,000 loads."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, Signal, Slot
from PySide6.QtGui import QImage, QPixmap, QPixmapCache

from visualsearch.core import imageio
from visualsearch.core.store import Store

MAX_PENDING = 512  # older requests than this are dropped: their items scrolled away


class ImageLoader(QObject):
    """Loads images by key with `load(key) -> QImage | None` in pool threads."""

    loaded = Signal(str)  # key; the pixmap is now in the cache
    _image_ready = Signal(str, QSize, QImage)

    def __init__(
        self,
        load: Callable[[str, QSize], QImage | None],
        pool: QThreadPool,
        prefix: str,
        threads: int = 2,
    ) -> None:
        super().__init__()
        self._load = load
        self._pool = pool
        self._prefix = prefix
        self._threads = threads
        self._lock = threading.Lock()
        self._wanted: OrderedDict[str, QSize] = OrderedDict()
        self._in_flight: set[str] = set()
        self._running = 0
        self._failed: set[str] = set()
        self._image_ready.connect(self._store_pixmap)

    def cache_key(self, key: str, size: QSize) -> str:
        return f"{self._prefix}:{size.width()}x{size.height()}:{key}"

    def pixmap(self, key: str, size: QSize) -> QPixmap | None:
        """The cached pixmap, or None after asking for it to be loaded."""
        found = QPixmapCache.find(self.cache_key(key, size))
        if found is not None and not found.isNull():
            return found
        if key not in self._failed:
            self.request(key, size)
        return None

    def request(self, key: str, size: QSize) -> None:
        with self._lock:
            if key in self._in_flight:
                return
            self._wanted[key] = size
            self._wanted.move_to_end(key)
            while len(self._wanted) > MAX_PENDING:
                self._wanted.popitem(last=False)
            start = self._running < self._threads
            if start:
                self._running += 1
        if start:
            self._pool.start(_Drain(self))

    def failed(self, key: str) -> bool:
        """Whether loading `key` failed (it is not asked for again until `reset`)."""
        return key in self._failed

    def forget_pending(self) -> None:
        with self._lock:
            self._wanted.clear()

    def reset(self) -> None:
        """After the source changed (another folder): drop what is queued and known-bad."""
        self.forget_pending()
        self._failed.clear()

    def _next(self) -> tuple[str, QSize] | None:
        with self._lock:
            if not self._wanted:
                self._running -= 1
                return None
            key, size = self._wanted.popitem(last=True)  # newest first: what is on screen now
            self._in_flight.add(key)
            return key, size

    def _work(self) -> None:
        while (item := self._next()) is not None:
            key, size = item
            try:
                image = self._load(key, size)
            except Exception:
                image = None
            with self._lock:
                self._in_flight.discard(key)
            self._image_ready.emit(key, size, image if image is not None else QImage())

    @Slot(str, QSize, QImage)
    def _store_pixmap(self, key: str, size: QSize, image: QImage) -> None:
        if image.isNull():
            self._failed.add(key)
        else:
            QPixmapCache.insert(self.cache_key(key, size), QPixmap.fromImage(image))
        self.loaded.emit(key)


class _Drain(QRunnable):
    def __init__(self, loader: ImageLoader) -> None:
        super().__init__()
        self.loader = loader

    def run(self) -> None:
        self.loader._work()


def scaled_to(image: QImage, size: QSize) -> QImage:
    if image.width() <= size.width() and image.height() <= size.height():
        return image
    return image.scaled(
        size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )


def pil_to_qimage(img) -> QImage:
    rgb = img.convert("RGB")
    data = rgb.tobytes()
    return QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format.Format_RGB888).copy()


class StoreThumbnails:
    """Loads a thumbnail (by content hash) from a collection's store; one SQLite
    connection per pool thread, since a connection must stay in its thread."""

    def __init__(self) -> None:
        self.store_dir: Path | None = None
        self._local = threading.local()

    def __call__(self, digest: str, size: QSize) -> QImage | None:
        store_dir = self.store_dir
        if store_dir is None:
            return None
        stores = getattr(self._local, "stores", None)
        if stores is None:
            stores = self._local.stores = {}
        store = stores.get(store_dir)
        if store is None:
            store = stores[store_dir] = Store(store_dir)
        data = store.thumbnail_by_hash(digest)
        if data is None:
            return None
        image = QImage.fromData(data)
        return None if image.isNull() else scaled_to(image, size)


def load_preview(path: str, size: QSize) -> QImage | None:
    """A larger view of the original file, decoded (EXIF-rotated) in a pool thread."""
    data = imageio.read_bytes(Path(path))
    decoded = imageio.decode(data, min_side=max(size.width(), size.height()))
    img = decoded.image
    img.thumbnail((size.width(), size.height()))
    return pil_to_qimage(img)
