"""Hand-offs to the desktop: show a file selected in the file manager."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QUrl


def show_in_file_manager(path: Path, open_url: Callable[[QUrl], bool]) -> bool:
    """Select `path` in the system file manager; where that cannot be asked for, open
    its folder instead."""
    path = Path(path)
    try:
        if sys.platform == "darwin":
            return subprocess.call(["open", "-R", str(path)]) == 0
        if sys.platform == "win32":
            subprocess.Popen(["explorer", "/select,", str(path)])
            return True
        if _freedesktop_show_items(path):
            return True
    except OSError:
        pass
    return open_url(QUrl.fromLocalFile(str(path.parent)))


def _freedesktop_show_items(path: Path) -> bool:
    """org.freedesktop.FileManager1.ShowItems (Nautilus, Dolphin, Nemo, Thunar…)."""
    from PySide6.QtDBus import QDBusConnection, QDBusInterface, QDBusMessage

    bus = QDBusConnection.sessionBus()
    if not bus.isConnected():
        return False
    iface = QDBusInterface(
        "org.freedesktop.FileManager1",
        "/org/freedesktop/FileManager1",
        "org.freedesktop.FileManager1",
        bus,
    )
    if not iface.isValid():
        return False
    reply = iface.call("ShowItems", [QUrl.fromLocalFile(str(path)).toString()], "")
    return reply.type() != QDBusMessage.MessageType.ErrorMessage
