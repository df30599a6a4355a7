"""The application icon, wherever visualsearch runs from: a PyInstaller bundle, a source
checkout (resources/ beside the package) or a wheel (installed under share/)."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QIcon


def icon_dirs() -> list[Path]:
    here = Path(__file__).resolve().parents[2]  # the checkout, for an editable install
    dirs = [here / "resources" / "icons", Path(sys.prefix) / "share" / "visualsearch" / "icons"]
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        dirs.insert(0, Path(bundle) / "resources" / "icons")
    return dirs


def app_icon() -> QIcon:
    for folder in icon_dirs():
        pngs = sorted(folder.glob("visualsearch-*.png"))
        if pngs:
            icon = QIcon()
            for png in pngs:
                icon.addFile(str(png))
            return icon
    return QIcon()  # no icon files: Qt shows its default
