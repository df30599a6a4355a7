"""QSettings as the place where core's UserSettings are kept."""

from __future__ import annotations

import json
from dataclasses import asdict, fields

from PySide6.QtCore import QByteArray, QSettings

from visualsearch.core.settings import UserSettings


class SettingsStore:
    """Reads and writes `UserSettings` (and the window's geometry) in a QSettings."""

    def __init__(self, qsettings: QSettings) -> None:
        self.q = qsettings

    def load(self) -> UserSettings:
        raw = self.q.value("settings/json", "")
        try:
            data = json.loads(raw) if raw else {}
        except (TypeError, ValueError):
            data = {}  # an unreadable settings file must not stop the program
        names = {f.name for f in fields(UserSettings)}
        defaults = UserSettings()
        kept = {}
        for k, v in data.items():
            if k in names and isinstance(v, type(getattr(defaults, k))):
                kept[k] = v
        return UserSettings(**kept)

    def save(self, settings: UserSettings) -> None:
        self.q.setValue("settings/json", json.dumps(asdict(settings)))
        self.q.sync()

    def geometry(self) -> QByteArray | None:
        value = self.q.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def save_geometry(self, geometry: QByteArray, state: QByteArray) -> None:
        self.q.setValue("window/geometry", geometry)
        self.q.setValue("window/splitter", state)

    def splitter_state(self) -> QByteArray | None:
        value = self.q.value("window/splitter")
        return value if isinstance(value, QByteArray) else None
