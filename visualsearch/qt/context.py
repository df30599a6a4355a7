"""What the window depends on, passed in (tests build their own)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices

from visualsearch.core.pipeline import IndexOptions
from visualsearch.core.settings import AppPaths
from visualsearch.qt.settings import SettingsStore
from visualsearch.qt.workers import EncoderProvider


@dataclass
class AppContext:
    paths: AppPaths
    settings: SettingsStore
    encoders: EncoderProvider
    index_options: IndexOptions = field(default_factory=IndexOptions)
    open_url: Callable[[QUrl], bool] = QDesktopServices.openUrl  # files, folders, links
