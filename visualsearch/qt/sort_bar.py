"""The grid's sort order: a "Sort:" combo box and an ascending/descending toggle."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QToolButton, QWidget

from visualsearch.core.sorting import RELEVANCE, SORT_KEYS

LABELS = {
    RELEVANCE: "Relevance",
    "date": "Date taken",
    "name": "Name",
    "folder": "Folder",
    "size": "Size",
}
# what each direction means, for the toggle's tooltip: (ascending, descending)
_DIRECTIONS = {
    "date": ("oldest first", "newest first"),
    "name": ("A to Z", "Z to A"),
    "folder": ("folders A to Z", "folders Z to A"),
    "size": ("smallest first", "largest first"),
}


class SortBar(QWidget):
    """Sort: [Relevance | Date taken | Name | Folder | Size] [↑/↓].

    "Relevance" (a query's ranking) can be chosen only while the results are a query's
    (`set_relevance_available`); without it the bar shows `fallback` and goes back to
    relevance when a query's results come again. `sort_changed(key, descending)` fires when
    the user changes either, and when the shown key changes because relevance came or went;
    `set_sort` never fires it. Dates where EXIF has none are the files' dates.
    """

    sort_changed = Signal(str, bool)

    def __init__(self, fallback: str = "folder", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if fallback not in SORT_KEYS or fallback == RELEVANCE:
            raise ValueError(f"the fallback must be one of {SORT_KEYS[1:]}, not {fallback!r}")
        self._fallback = fallback
        self._wanted = RELEVANCE  # the user's choice; shown whenever it can be
        self._relevance = False
        self.combo = QComboBox()
        for key in SORT_KEYS:
            self.combo.addItem(LABELS[key], key)
        self.combo.setAccessibleName("Sort by")
        self.combo.setToolTip("Order of the images in the grid")
        self.combo.activated.connect(self._chosen)
        self.direction = QToolButton(checkable=True, autoRaise=True)
        self.direction.setAccessibleName("Descending")
        self.direction.clicked.connect(self._direction_clicked)
        label = QLabel("&Sort:")
        label.setBuddy(self.combo)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(label)
        layout.addWidget(self.combo)
        layout.addWidget(self.direction)
        self._show()

    # -- what the window calls --------------------------------------------------------------

    def key(self) -> str:
        """The order the grid should show: one of core.sorting.SORT_KEYS."""
        return self._wanted if self._wanted != RELEVANCE or self._relevance else self._fallback

    def wanted(self) -> str:
        """The user's choice (shown whenever it can be): what to remember."""
        return self._wanted

    def descending(self) -> bool:
        return self.direction.isChecked()

    def set_sort(self, key: str, descending: bool = False) -> None:
        """Choose an order as the user could (e.g. restored from settings), without
        `sort_changed`."""
        if key not in SORT_KEYS:
            raise ValueError(f"unknown sort key {key!r}")
        self._wanted = key
        self.direction.setChecked(descending)
        self._show()

    def set_relevance_available(self, available: bool) -> None:
        """Whether the results are a query's (ranked), so that "Relevance" means something."""
        before = self.key()
        self._relevance = available
        self._show()
        if self.key() != before:
            self.sort_changed.emit(self.key(), self.descending())

    # -- inside -------------------------------------------------------------------------------

    def _show(self) -> None:
        model = self.combo.model()
        assert isinstance(model, QStandardItemModel)
        relevance = model.item(SORT_KEYS.index(RELEVANCE))
        relevance.setEnabled(self._relevance)
        relevance.setToolTip(
            "The order of the query's answers, best first"
            if self._relevance
            else "Only for search results: there is no query now"
        )
        key = self.key()
        self.combo.setCurrentIndex(SORT_KEYS.index(key))
        down = self.descending()
        self.direction.setEnabled(key != RELEVANCE)
        # words, not a bare 8 px arrow (read as a scroll or collapse arrow)
        if key == RELEVANCE:
            self.direction.setText("best first")
            self.direction.setToolTip("Search results are in order of relevance, best first")
        else:
            now, other = _DIRECTIONS[key][::-1] if down else _DIRECTIONS[key]
            self.direction.setText(f"{'↓' if down else '↑'} {now}")
            self.direction.setToolTip(f"Sorted {now}; click for {other}")

    def _chosen(self, row: int) -> None:
        key = self.combo.itemData(row)
        if key == self.key():
            return
        self._wanted = key
        self._show()
        self.sort_changed.emit(key, self.descending())

    def _direction_clicked(self) -> None:
        self._show()
        self.sort_changed.emit(self.key(), self.descending())
