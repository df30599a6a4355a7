"""The window's small dialogs: skipped files, About, keyboard shortcuts, where to save."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from visualsearch import __version__
from visualsearch.core.settings import AppPaths
from visualsearch.qt.collection_controller import skipped_text
from visualsearch.qt.icons import app_icon

# Keys that belong to a widget rather than to a menu action (those are listed from the menus)
WIDGET_KEYS = (
    ("Images", "Enter", "Find similar (a multi-selection: more like these)"),
    ("Images", "Space / double-click", "Open the image large in the viewer"),
    ("Images", "Arrows, Page Up/Down, Home/End", "Move through the grid"),
    ("Images", "Ctrl+A, Shift/Ctrl+click", "Select several images"),
    ("Viewer", "← / → (Page Up/Down)", "Previous / next image in the results"),
    ("Viewer", "Home / End", "First / last image"),
    ("Viewer", "1 or Ctrl+0", "Actual size (100 %) / fit to the window"),
    ("Viewer", "+ / − or Ctrl+wheel", "Zoom in / out"),
    ("Viewer", "Esc", "Back to the grid"),
    ("Duplicates", "↑ / ↓", "Previous / next copy; the side-by-side view follows"),
    ("Duplicates", "Space", "Mark or unmark the current copy for the trash"),
    ("Map", "Shift+drag", "Lasso: select images on the map"),
    ("Map", "Wheel, drag", "Zoom, pan"),
    ("Search box", "+ words", "Steer the shown image query with words"),
    ("Search box", "-word", "Leave out images that match a word"),
)


def _dialog(parent: QWidget, title: str, *widgets: QWidget) -> QDialog:
    dialog = QDialog(parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.setWindowTitle(title)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    for widget in widgets:
        layout.addWidget(widget)
    layout.addWidget(buttons)
    return dialog


def ask_save_path(parent: QWidget, title: str, name: str, filters: str) -> Path | None:
    """Where to write a file: a save dialog that starts at `name` in the home folder;
    None when cancelled."""
    path, _ = QFileDialog.getSaveFileName(parent, title, str(Path.home() / name), filters)
    return Path(path) if path else None


def show_skipped(parent: QWidget, skipped: list[tuple[str, str]]) -> QDialog:
    text = QPlainTextEdit(readOnly=True)
    text.setPlainText("\n".join(f"{p}: {why}" for p, why in skipped) or "No file was skipped.")
    dialog = _dialog(parent, "Skipped files", QLabel(skipped_text(len(skipped))), text)
    dialog.resize(640, 400)
    dialog.open()
    return dialog


def show_shortcuts(parent: QWidget, rows: list[tuple[str, str, str]]) -> QDialog:
    """A table of (where, keys, what) rows: the menus' shortcuts and the widgets' keys."""
    table = QTableWidget(len(rows), 3)
    table.setObjectName("shortcuts")
    table.setHorizontalHeaderLabels(["Where", "Keys", "What it does"])
    for row, values in enumerate(rows):
        for column, value in enumerate(values):
            table.setItem(row, column, QTableWidgetItem(value))
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    # a list to read, not a spreadsheet: no grid, no cell cursor, rows striped
    table.setShowGrid(False)
    table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
    table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    table.setAlternatingRowColors(True)
    table.verticalHeader().hide()
    table.resizeColumnsToContents()
    table.horizontalHeader().setStretchLastSection(True)
    dialog = _dialog(parent, "Keyboard shortcuts", table)
    dialog.resize(720, 640)
    dialog.open()
    return dialog


def about_text(model: str, paths: AppPaths) -> str:
    """Versions of the app, its main libraries and the model in use."""
    from importlib.metadata import PackageNotFoundError, version

    from PySide6 import __version__ as pyside

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return (
        f"<b>visualsearch {__version__}</b><br>Search, browse and sort images by what they "
        "show. Images are read, never changed; nothing leaves this computer.<br><br>"
        f"Model: {model}<br>"
        f"torch {v('torch')} · open_clip {v('open_clip_torch')} · onnxruntime "
        f"{v('onnxruntime')} · PySide6 {pyside} · umap-learn {v('umap-learn')}<br>"
        f"Data: {paths.data_dir}<br>Cache: {paths.cache_dir}"
    )


def show_about(parent: QWidget, text: str) -> None:
    box = QMessageBox(QMessageBox.Icon.NoIcon, "About visualsearch", text, parent=parent)
    box.setIconPixmap(app_icon().pixmap(96, 96))
    box.setTextFormat(Qt.TextFormat.RichText)
    box.open()
