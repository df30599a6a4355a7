"""Small widgets of the main window: the message bar, the indexing status, the welcome page."""

from __future__ import annotations

import time

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from visualsearch.core.progress import RateMeter, format_duration

_STYLES = {
    "error": "background:#fde2e1; color:#5c1a16; border:1px solid #e8a09a;",
    "info": "background:#e3effd; color:#123a63; border:1px solid #9cc0ea;",
}


class ElidedLabel(QLabel):
    """One line that never widens its window: the middle of a long text gives way (the
    whole text is in the tooltip, and `text()` returns it)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setTextFormat(Qt.TextFormat.PlainText)

    def setText(self, text: str) -> None:
        self._full = text
        self._elide()

    def text(self) -> str:
        return self._full

    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = max(self.contentsRect().width(), 24)
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideMiddle, width)
        super().setText(shown)
        self.setToolTip(self._full if shown != self._full else "")


class MessageBar(QFrame):
    """A message inside the window (never only on the console), closable by the user."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.label = QLabel(wordWrap=True)
        # selectable, and its links ("Show them") clickable: linkActivated carries their href
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        close = QToolButton(text="✕", autoRaise=True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.kind = ""
        self.hide()

    def show_message(self, text: str, kind: str = "error") -> None:
        self.kind = kind
        self.setStyleSheet(f"MessageBar {{{_STYLES[kind]} border-radius:4px;}}")
        self.label.setText(text)
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""


class JobStatus(QWidget):
    """Status-bar part for an indexing run: count, rate, time left, and Cancel."""

    cancel_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(220)
        self.bar.setTextVisible(False)
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("Stop indexing; what is done is kept and the next open resumes")
        self.cancel.clicked.connect(self._cancel_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel)
        self._meter = RateMeter()
        self._started = 0.0
        self.verb, self.unit = "Indexing", "images"
        self.hide()

    def start(self, verb: str = "Indexing", unit: str = "images") -> None:
        self.verb, self.unit = verb, unit
        self._meter = RateMeter()
        self._started = time.monotonic()
        self.cancel.setEnabled(True)
        self.bar.setRange(0, 0)
        self.label.setText("Opening…")
        self.show()

    def update_progress(self, done: int, total: int, message: str) -> None:
        if total <= 0:
            self.bar.setRange(0, 0)  # busy: scanning, loading the model
            self.label.setText(message)
            return
        self._meter.update(done)
        self.bar.setRange(0, total)
        self.bar.setValue(done)
        if self.unit == "MB":  # done and total are bytes
            text = f"{self.verb} {done / 1e6:,.0f} / {total / 1e6:,.0f} MB"
        else:
            text = f"{self.verb} {done:,} / {total:,} {self.unit}"
        rate = self._meter.rate
        if rate:
            text += f" · {rate / 1e6:.1f} MB/s" if self.unit == "MB" else f" · {rate:.1f}/s"
            left = self._meter.seconds_left(total)
            if left is not None and done < total:
                text += f" · about {format_duration(left)} left"
        if message.startswith("Building"):
            text = message
        self.label.setText(text)

    def _cancel_clicked(self) -> None:
        self.cancel.setEnabled(False)
        self.label.setText("Cancelling after the current batch…")
        self.cancel_requested.emit()

    def finish(self) -> None:
        self.hide()


class WelcomePage(QWidget):
    """Shown when no folder is open."""

    open_folder = Signal()
    open_sample = Signal()
    open_recent = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        title = QLabel("<h1>visualsearch</h1>")
        text = QLabel(
            "Find your way through a folder of images by what they show: "
            "search with words, find similar images, drop an image to search with it.<br>"
            "Images are read, never changed; everything stays on this computer."
        )
        text.setWordWrap(True)
        open_button = QPushButton("Open a folder…")
        open_button.setDefault(True)
        sample_button = QPushButton("Try the sample collection")
        sample_button.setToolTip("About 60 photos that ship with the program's libraries")
        open_button.clicked.connect(self.open_folder)
        sample_button.clicked.connect(self.open_sample)
        self.sample_button = sample_button
        self.recent = QListWidget()
        self.recent.itemActivated.connect(lambda it: self.open_recent.emit(it.text()))
        self.recent_label = QLabel("Recent folders:")
        drop = QLabel("…or drop a folder anywhere on this window.")
        drop.setEnabled(False)

        buttons = QHBoxLayout()
        buttons.addWidget(open_button)
        buttons.addWidget(sample_button)
        buttons.addStretch(1)
        box = QVBoxLayout()
        box.addStretch(1)
        box.addWidget(title)
        box.addWidget(text)
        box.addSpacing(12)
        box.addLayout(buttons)
        box.addWidget(drop)
        box.addSpacing(12)
        box.addWidget(self.recent_label)
        box.addWidget(self.recent)
        box.addStretch(2)
        inner = QWidget()
        inner.setLayout(box)
        inner.setMaximumWidth(640)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        outer.addWidget(inner, 4)
        outer.addStretch(1)

    def set_recent(self, folders: list[str]) -> None:
        self.recent.clear()
        self.recent.addItems(folders)
        self.recent.setVisible(bool(folders))
        self.recent_label.setVisible(bool(folders))


class ExportDialog(QDialog):
    """Where to export, and copy or link. Nothing is overwritten either way."""

    def __init__(self, images: int, folders: int, start: str, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export to folders")
        self.dest = QLineEdit(start)
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        self.copy = QRadioButton("Copy the images", checked=True)
        self.link = QRadioButton(
            "Make links to them (saves space; they break if the originals move)"
        )
        info = QLabel(
            f"{images:,} images go into {folders} folder(s) named after their clusters, with a "
            "CSV manifest beside them. Existing files are never overwritten: a taken name "
            "gets a suffix."
        )
        info.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.dest, 1)
        row.addWidget(browse)
        layout = QVBoxLayout(self)
        layout.addWidget(info)
        layout.addWidget(QLabel("Destination folder:"))
        layout.addLayout(row)
        layout.addWidget(self.copy)
        layout.addWidget(self.link)
        layout.addWidget(buttons)
        # tall enough for the wrapped text at this width: a height of 0 clipped its first line
        self.resize(560, self.heightForWidth(560))

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into", self.dest.text())
        if folder:
            self.dest.setText(folder)
