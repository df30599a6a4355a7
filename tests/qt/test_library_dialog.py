"""File ▸ Library…: the roots with their state and counts; add, remove, open."""

from __future__ import annotations

from PySide6.QtCore import Qt

from tests.conftest import distinct_images
from tests.fakes import FakeEncoder
from visualsearch.core.folder import ModelChoice
from visualsearch.core.library import LIBRARY_FILE, Library


def _rows(dialog):
    tree = dialog.tree
    return [
        [tree.topLevelItem(i).text(c) for c in range(3)] for i in range(tree.topLevelItemCount())
    ]


def test_the_library_lists_its_roots_online_or_not_and_opens_one(
    qtbot, make_window, tmp_path, app_paths
):
    library_file = app_paths.data_dir / LIBRARY_FILE
    library_file.unlink(missing_ok=True)
    try:
        window = make_window(encoder=FakeEncoder())
        a, b = tmp_path / "a", tmp_path / "b"
        distinct_images(a, 3, size=64)
        distinct_images(b, 5, size=64)
        library = Library(app_paths.data_dir, window.collection.store_base)
        library.add(a)
        library.add(b)
        library.index(FakeEncoder(), ModelChoice("builtin"))
        b.rename(tmp_path / "unplugged")

        window.menus.library_action.trigger()
        dialog = window.library_dialog
        assert dialog.isVisible()
        qtbot.waitUntil(lambda: "…" not in [r[1] for r in _rows(dialog)], timeout=10_000)
        assert _rows(dialog) == [[str(a), "Online", "3"], [str(b), "Offline", "5"]]

        dialog.tree.setCurrentItem(dialog.tree.topLevelItem(1))
        assert not dialog.open_button.isEnabled() and dialog.remove_button.isEnabled()
        dialog.open_selected()
        assert "offline" in dialog.message.text()
        qtbot.mouseClick(dialog.remove_button, Qt.MouseButton.LeftButton)
        assert Library(app_paths.data_dir).roots == [a]  # off the list, on disk
        qtbot.waitUntil(lambda: _rows(dialog) == [[str(a), "Online", "3"]], timeout=10_000)

        (a / "sub").mkdir()
        dialog.add_folder(a / "sub")
        assert "overlaps" in dialog.message.text()

        dialog.tree.setCurrentItem(dialog.tree.topLevelItem(0))
        assert dialog.open_button.isEnabled()
        qtbot.mouseClick(dialog.open_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window.collection.target is not None, timeout=10_000)
        assert window.collection.target.folder == a and not dialog.isVisible()
    finally:
        library_file.unlink(missing_ok=True)
