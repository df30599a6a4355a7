"""The window on folders an unlucky user has: an unplugged drive, names that are not UTF-8."""

from __future__ import annotations

import os
import shutil

from tests.conftest import distinct_images
from tests.qt.conftest import open_and_wait


def test_an_emptied_folder_keeps_its_images_and_says_why(qtbot, window, tmp_path):
    folder = tmp_path / "drive"
    originals = distinct_images(tmp_path / "originals", 4, size=96)
    folder.mkdir()
    for p in originals:
        shutil.copy2(p, folder / p.name)
    open_and_wait(qtbot, window, folder)
    for p in folder.iterdir():
        p.unlink()  # what an unmounted drive's mount point looks like
    report = open_and_wait(qtbot, window, folder)
    assert report.removed == 0 and report.missing_kept == 4
    assert "looks empty or unmounted" in window.message.text()
    assert "--forget-missing" in window.message.text()


def test_a_name_that_is_not_utf8_is_shown_with_its_byte_visible(qtbot, window, tmp_path):
    folder = tmp_path / "names"
    (src,) = distinct_images(tmp_path / "src", 1, size=96)
    name = os.fsdecode(b"caf\xe9.jpg")
    folder.mkdir()
    shutil.copy2(src, folder / name)
    report = open_and_wait(qtbot, window, folder)
    assert report.encoded == 1 and report.failed == 0
    index = window.model.index(0)
    assert window.model.data(index) == "caf\\xe9.jpg"  # Qt showed "caf.jpg"
    window.grid.setCurrentIndex(index)
    assert window.details.name.text() == "caf\\xe9.jpg"
