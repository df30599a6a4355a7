"""The details panel: a larger preview and the facts of the selected image."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from visualsearch.core.calibration import CONFIDENT
from visualsearch.core.names import human_size, printable
from visualsearch.core.sorting import date_text
from visualsearch.qt.image_list_model import GridItem
from visualsearch.qt.thumbnails import ImageLoader
from visualsearch.qt.widgets import ElidedLabel

PREVIEW = QSize(360, 360)


class DetailsPanel(QWidget):
    find_similar = Signal(Path)
    open_file = Signal(Path)
    show_in_folder = Signal(Path)
    tag_clicked = Signal(str)
    tag_words_changed = Signal(list)

    def __init__(self, previews: ImageLoader, parent=None) -> None:
        super().__init__(parent)
        self._previews = previews
        self._item: GridItem | None = None
        previews.loaded.connect(self._preview_loaded)

        self.preview = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(200, 200)
        self.preview.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.name = ElidedLabel()  # a 120-character name must not widen the window
        self.name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.name.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.name.setFont(font)
        self.fields: dict[str, QLabel] = {}
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for key in ("Folder", "Size", "Dimensions", "Format", "Taken", "Score"):
            label = ElidedLabel() if key == "Folder" else QLabel(wordWrap=True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.fields[key] = label
            form.addRow(f"{key}:", label)
        self.tags = QLabel(wordWrap=True)
        self.tags.setTextFormat(Qt.TextFormat.RichText)
        self.tags.setToolTip("Suggested from the model's vocabulary; click one to search for it")
        self.tags.linkActivated.connect(self.tag_clicked)
        form.addRow("Tags:", self.tags)
        self.tag_words = QLineEdit(placeholderText="own tag words, comma-separated (CLIP)")
        self.tag_words.setToolTip(
            "Words to suggest as tags besides the model's vocabulary; CLIP models only "
            "(the built-in model's vocabulary is its 1,000 ImageNet categories)"
        )
        self.tag_words.editingFinished.connect(self._tag_words_edited)
        form.addRow("", self.tag_words)
        self.similar_button = QPushButton("Find similar")
        self.similar_button.setToolTip("Show the images most like this one (Enter)")
        self.open_button = QPushButton("Open")
        self.folder_button = QPushButton("Show in folder")
        self.similar_button.clicked.connect(self._emit(self.find_similar))
        self.open_button.clicked.connect(self._emit(self.open_file))
        self.folder_button.clicked.connect(self._emit(self.show_in_folder))
        buttons = QHBoxLayout()
        for b in (self.similar_button, self.open_button, self.folder_button):
            buttons.addWidget(b)

        layout = QVBoxLayout(self)
        layout.addWidget(self.preview, 1)
        layout.addWidget(self.name)
        layout.addLayout(form)
        layout.addLayout(buttons)
        self.show_item(None)

    def _emit(self, signal):
        def handler() -> None:
            if self._item is not None:
                signal.emit(self._item.path)

        return handler

    @property
    def item(self) -> GridItem | None:
        return self._item

    def show_item(self, item: GridItem | None) -> None:
        self._item = item
        for b in (self.similar_button, self.open_button, self.folder_button):
            b.setEnabled(item is not None)
        if item is None:
            self.preview.clear()
            self.preview.setText("Select an image to see it here.")
            self.name.setText("")
            for label in self.fields.values():
                label.setText("")
            self.tags.setText("")
            return
        self.name.setText(printable(item.path.name))
        r = item.record
        values = {
            "Folder": printable(str(item.path.parent)),
            "Size": human_size(r.size) if r else None,
            "Dimensions": f"{r.width} × {r.height}" if r and r.width else None,
            "Format": r.format if r else None,
            "Taken": date_text(r),  # EXIF's, else the file's date marked "(file date)"
            "Score": None if item.score is None else f"{item.score:.3f}",
        }
        for key, value in values.items():
            self.fields[key].setText(value or "—")
        self.tags.setText("…")
        self._show_preview()

    def _tag_words_edited(self) -> None:
        words = [w.strip() for w in self.tag_words.text().split(",") if w.strip()]
        self.tag_words_changed.emit(words)

    def set_tags(self, tags: list[tuple[str, float]]) -> None:
        """The confident tags (match CONFIDENT or more), best first; when none is, the
        best three as guesses, marked so."""
        from html import escape

        def links(words: list[tuple[str, float]]) -> str:
            return ", ".join(
                f"<a href='{escape(t, quote=True)}' title='match {m:.2f}'>{escape(t)}</a>"
                for t, m in words
            )

        confident = [(t, m) for t, m in tags if m >= CONFIDENT][:6]
        if confident:
            self.tags.setText(links(confident))
        elif tags:
            self.tags.setText(f"<i>none sure; guesses:</i> {links(tags[:3])}")
        else:
            self.tags.setText("—")

    def _show_preview(self) -> None:
        if self._item is None:
            return
        pixmap = self._previews.pixmap(str(self._item.path), PREVIEW)
        if pixmap is None:
            self.preview.setText("Loading…")
        else:
            self.preview.setPixmap(pixmap)

    def _preview_loaded(self, key: str) -> None:
        if self._item is not None and key == str(self._item.path):
            pixmap = self._previews.pixmap(key, PREVIEW)
            if pixmap is None:
                self.preview.setText("This image cannot be shown.")
            else:
                self.preview.setPixmap(pixmap)
