"""Pictures for the viewer, decoded in a pool thread: bounded reads and decodes through
`core/imageio`, at most MAX_VIEW_PIXELS, with halved copies for zoomed-out views."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage

from visualsearch.core import imageio

# Decoded pixels are capped at 24 MP (about 96 MB as 32-bit pixels): "100 %" is then
# true actual size for 12 MP phone photos and 24 MP (6000×4000) camera photos, the
# common sizes, while a 50 or 100 MP picture is decoded at a reduced scale (JPEG DCT
# scaling) and only its 100 % view is enlarged from that copy. A bound from the screen
# (e.g. twice its size) would have made 100 % blurry for the most common photos.
MAX_VIEW_PIXELS = 24_000_000
SMALLEST_LEVEL = 512  # halved copies are made down to this long side, for zoomed-out views


@dataclass(frozen=True)
class FullImage:
    """A decoded picture: `levels[0]` at up to MAX_VIEW_PIXELS, then halved copies;
    `width` × `height` is the original's upright size, which zoom percentages refer to."""

    levels: list[QImage]
    width: int
    height: int

    def size_in_bytes(self) -> int:
        return sum(level.sizeInBytes() for level in self.levels)


def load_full(
    path: Path,
    cancelled: Callable[[], bool] | None = None,
    max_pixels: int = MAX_VIEW_PIXELS,
) -> FullImage:
    """Read and decode `path` for the viewer (in a pool thread): bounded read, EXIF
    rotation, at most `max_pixels` pixels. Raises `imageio.ImageError` with a reason."""
    data = imageio.read_bytes(path, cancelled=cancelled)
    info = imageio.probe(data)
    w, h = info.width, info.height
    shrink = min(1.0, math.sqrt(max_pixels / (w * h)))
    min_side = max(1, int(min(w, h) * shrink)) if shrink < 1 else 0
    img = imageio.decode(data, min_side=min_side).image
    del data
    if shrink < 1:
        img.thumbnail((max(1, int(w * shrink)), max(1, int(h * shrink))))
    rgb = img.tobytes()
    full = QImage(rgb, img.width, img.height, 3 * img.width, QImage.Format.Format_RGB888)
    levels = [full.convertToFormat(QImage.Format.Format_RGB32)]  # an owning copy
    del rgb, full
    while max(levels[-1].width(), levels[-1].height()) // 2 >= SMALLEST_LEVEL:
        last = levels[-1]
        levels.append(
            last.scaled(
                last.width() // 2,
                last.height() // 2,
                Qt.AspectRatioMode.IgnoreAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )
    return FullImage(levels, w, h)


class FullImageLoader(QObject):
    """Decodes one file at a time in `pool`, the current one first, then its neighbours.
    A read whose path is no longer wanted is cancelled between chunks."""

    done = Signal(object, object)  # Path, FullImage or the reason (str) it failed
    _finished = Signal(object, object)  # from the pool thread

    def __init__(self, pool: QThreadPool, load: Callable[..., FullImage], parent: QObject) -> None:
        super().__init__(parent)
        self._pool = pool
        self._load = load
        self._queue: list[Path] = []
        self._wanted: frozenset[Path] = frozenset()  # read by the pool thread
        self._busy: Path | None = None
        self._finished.connect(self._on_finished)

    def want(self, paths: list[Path]) -> None:
        """Load `paths` in this order (dropping what was wanted before)."""
        self._wanted = frozenset(paths)
        self._queue = [p for p in dict.fromkeys(paths) if p != self._busy]
        self._start_next()

    def _start_next(self) -> None:
        if self._busy is not None or not self._queue:
            return
        self._busy = self._queue.pop(0)
        self._pool.start(_Job(self, self._busy))

    def _run(self, path: Path) -> None:
        def cancelled() -> bool:
            return path not in self._wanted

        result: FullImage | str | None
        try:
            result = self._load(path, cancelled)
        except imageio.ImageError as exc:
            result = None if cancelled() else (str(exc) or "cannot read this file")
        except Exception as exc:  # a decoder's bug must not end the pool thread
            result = imageio.describe(exc, with_type=True)
        with contextlib.suppress(RuntimeError):  # the viewer was deleted meanwhile
            self._finished.emit(path, result)

    def _on_finished(self, path: Path, result: object) -> None:
        self._busy = None
        if path in self._wanted:
            if result is None:  # cancelled, then wanted again: read it once more
                self._queue.insert(0, path)
            else:
                self.done.emit(path, result)
        self._start_next()


class _Job(QRunnable):
    def __init__(self, loader: FullImageLoader, path: Path) -> None:
        super().__init__()
        self.loader = loader
        self.path = path

    def run(self) -> None:
        self.loader._run(self.path)
