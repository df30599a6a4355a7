"""What the window depends on, passed in (tests build their own)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox, QWidget

from visualsearch.core.indexing import IndexOptions
from visualsearch.core.settings import AppPaths
from visualsearch.qt.settings import SettingsStore
from visualsearch.qt.workers import EncoderProvider

Confirm = Callable[[QWidget, str, str, str], bool]  # parent, title, question, details → yes


@dataclass
class AppContext:
    paths: AppPaths
    settings: SettingsStore
    encoders: EncoderProvider
    index_options: IndexOptions = field(default_factory=IndexOptions)
    open_url: Callable[[QUrl], bool] = QDesktopServices.openUrl  # files, folders, links
    confirm: Confirm = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.confirm is None:
            self.confirm = ask_to_confirm


def ask_to_confirm(parent: QWidget, title: str, text: str, details: str) -> bool:
    """A question the user must answer yes to; `details` lists what it is about."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, parent=parent)
    box.setDetailedText(details)
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    return box.exec() == QMessageBox.StandardButton.Yes
