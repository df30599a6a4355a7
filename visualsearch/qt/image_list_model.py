"""The grid's list model: one row per image (all of them, or a query's ranked hits)."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from enum import IntEnum
from pathlib import Path
from typing import overload

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QPixmap

from visualsearch.core.names import human_size, printable
from visualsearch.core.sorting import date_text, record_date
from visualsearch.core.store import FileRecord
from visualsearch.qt.thumbnails import ImageLoader

Index = QModelIndex | QPersistentModelIndex
FREEZE_ABOVE = 5000


def freeze_long_lived_objects() -> None:
    """Move every object alive now out of the cyclic GC's reach.

    With torch loaded and 50,000 items, a full collection took 240-540 ms, a visible
    freeze in the middle of scrolling (bench/gui.py). Frozen objects are still freed
    by reference counting; only cycles among them would outlive their use.
    """
    gc.freeze()


class Role(IntEnum):
    Path = Qt.ItemDataRole.UserRole + 1  # absolute path (str)
    RelPath = Qt.ItemDataRole.UserRole + 2  # path inside the collection (str) or None
    Score = Qt.ItemDataRole.UserRole + 3  # similarity (float) or None when browsing
    Record = Qt.ItemDataRole.UserRole + 4  # FileRecord or None
    Hash = Qt.ItemDataRole.UserRole + 5  # content hash (str) or None


class GridItem:
    """One image in the grid: its absolute `path`, its path `rel` inside the open folder
    (None for an image from elsewhere), its FileRecord and its similarity `score`.

    `GridItem.under(root, rel, record)` joins the absolute path only when it is first
    asked for: "all images" makes an item for every image, and 1,000,000 `Path` joins
    took 7.1 s. Items are equal only to themselves (the grid finds rows by identity).
    """

    __slots__ = ("_path", "_root", "record", "rel", "score")

    def __init__(
        self,
        path: Path,
        rel: str | None,
        record: FileRecord | None,
        score: float | None = None,
    ) -> None:
        self._path: Path | None = path
        self._root: Path | None = None
        self.rel = rel
        self.record = record
        self.score = score

    @classmethod
    def under(
        cls, root: Path, rel: str, record: FileRecord | None, score: float | None = None
    ) -> GridItem:
        """The item of `rel` in the folder `root`, its path joined when needed."""
        item = cls.__new__(cls)
        item._path, item._root, item.rel, item.record, item.score = None, root, rel, record, score
        return item

    @property
    def path(self) -> Path:
        if self._path is None:
            self._path = self._root / self.rel  # type: ignore[operator]
        return self._path

    def __repr__(self) -> str:
        return f"GridItem({self.rel or self.path!s}, score={self.score})"


def describe_record(record: FileRecord | None) -> str:
    if record is None:
        return ""
    parts = []
    if record.width and record.height:
        parts.append(f"{record.width} × {record.height}")
    if record.format:
        parts.append(record.format)
    parts.append(human_size(record.size))
    if when := date_text(record):  # the date taken, else the file's, marked as such
        parts.append(when)
    return " · ".join(parts)


class ImageListModel(QAbstractListModel):
    """Rows of GridItem; thumbnails come from the loader as the view asks for them.

    DecorationRole is lazy: None until the thumbnail is loaded, then
    `thumbnails_arrived` (content hashes) tells views to repaint.
    """

    thumbnails_arrived = Signal(set)

    def __init__(self, thumbnails: ImageLoader, icon_size: int = 160, parent=None) -> None:
        super().__init__(parent)
        self._items: list[GridItem] = []
        self._thumbnails = thumbnails
        self.badge_key = "score"  # what the corner badge shows: "score", "date" or "size"
        self.icon_size = QSize(icon_size, icon_size)
        # Thumbnails arrive one by one. They are announced in one signal per ~frame, not
        # as dataChanged per row: a QListView does Python round trips for every changed
        # row, which made fast scrolling stutter (bench/gui.py: worst frame 0.3-1.8 s).
        self._arrived: set[str] = set()
        self._flush_timer = QTimer(self, singleShot=True, interval=30)
        self._flush_timer.timeout.connect(self._flush_arrived)
        thumbnails.loaded.connect(self._thumbnail_loaded)

    # -- Qt model API ---------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._items)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        item = self._items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return printable(item.path.name)  # Qt would silently drop undecodable bytes
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnail(item)
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [printable(item.rel or str(item.path)), describe_record(item.record)]
            if item.score is not None:
                lines.append(f"score {item.score:.3f}")
            return "\n".join(line for line in lines if line)
        if role == Role.Path:
            return str(item.path)
        if role == Role.RelPath:
            return item.rel
        if role == Role.Score:
            return item.score
        if role == Role.Record:
            return item.record
        if role == Role.Hash:
            return item.record.hash if item.record else None
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (
            Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled
        )

    def roleNames(self) -> dict[int, bytes]:
        names = super().roleNames()
        names.update({int(r): r.name.lower().encode() for r in Role})
        return names

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list"]

    def mimeData(self, indexes):
        from PySide6.QtCore import QMimeData, QUrl

        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(self._items[i.row()].path)) for i in indexes])
        return mime

    # -- content --------------------------------------------------------------------------

    def item(self, row: int) -> GridItem:
        return self._items[row]

    def thumbnail(self, item: GridItem) -> QPixmap | None:
        """The item's cached thumbnail, or None after asking for it to be loaded."""
        digest = item.record.hash if item.record else None
        return self._thumbnails.pixmap(digest, self.icon_size) if digest else None

    def badge(self, item: GridItem) -> tuple[str, bool] | None:
        """The corner badge: the similarity, or the date or size the grid is sorted by
        (so the order can be seen); True when the value is an estimate (a file date)."""
        if self.badge_key == "date":
            date = record_date(item.record)
            return (f"{date.when:%Y-%m-%d}", date.source == "file") if date else None
        if self.badge_key == "size":
            return (human_size(item.record.size), False) if item.record else None
        return (f"{item.score:.2f}", False) if item.score is not None else None

    def items(self) -> list[GridItem]:
        return list(self._items)

    def set_items(self, items: list[GridItem]) -> list[GridItem]:
        """Show `items`; the list of those shown before (for the caller to let go of)."""
        self._thumbnails.forget_pending()
        self.beginResetModel()
        before, self._items = self._items, list(items)
        self.endResetModel()
        if len(items) > FREEZE_ABOVE:
            freeze_long_lived_objects()
        return before

    def append_items(self, items: list[GridItem]) -> None:
        if not items:
            return
        first = len(self._items)
        self.beginInsertRows(QModelIndex(), first, first + len(items) - 1)
        self._items.extend(items)
        self.endInsertRows()

    def replace_item(self, row: int, item: GridItem) -> None:
        self._items[row] = item
        idx = self.index(row)
        self.dataChanged.emit(idx, idx)

    def row_of_rel(self, rel: str) -> int | None:
        """The first row showing the folder's image `rel` (no paths are joined)."""
        return next((row for row, it in enumerate(self._items) if it.rel == rel), None)

    def set_icon_size(self, size: int) -> None:
        self.icon_size = QSize(size, size)
        if self._items:
            self.dataChanged.emit(self.index(0), self.index(len(self._items) - 1))

    def _thumbnail_loaded(self, digest: str) -> None:
        self._arrived.add(digest)
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _flush_arrived(self) -> None:
        arrived, self._arrived = self._arrived, set()
        self.thumbnails_arrived.emit(arrived)


class ItemPaths(Sequence[Path]):
    """The paths of `items`, each made when it is asked for: the viewer's list for ←/→
    without joining a million paths when Space is pressed on "all images"."""

    def __init__(self, items: list[GridItem]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, row: int) -> Path: ...
    @overload
    def __getitem__(self, row: slice) -> list[Path]: ...
    def __getitem__(self, row: int | slice) -> Path | list[Path]:
        if isinstance(row, slice):
            return [it.path for it in self.items[row]]
        return self.items[row].path
