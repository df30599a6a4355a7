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


def test_the_library_is_searched_as_one_in_the_window_unplugged_roots_included(
    qtbot, make_window, tmp_path, app_paths
):
    """Searching several roots as one was in the command line only."""
    library_file = app_paths.data_dir / LIBRARY_FILE
    library_file.unlink(missing_ok=True)
    try:
        window = make_window(encoder=FakeEncoder())
        a, b = tmp_path / "a", tmp_path / "b"
        distinct_images(a, 3, size=64)
        distinct_images(b, 4, size=80)
        library = Library(app_paths.data_dir, window.collection.store_base)
        library.add(a)
        library.add(b)
        library.index(FakeEncoder(), ModelChoice("builtin"))
        unplugged = tmp_path / "unplugged"
        b.rename(unplugged)

        window.menus.library_action.trigger()
        dialog = window.library_dialog
        dialog.search_box.setText("anything at all")
        qtbot.keyClick(dialog.search_box, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: dialog.hits.count() == 7, timeout=10_000)
        hits = [dialog.hits.item(i) for i in range(dialog.hits.count())]
        roots = [h.data(Qt.ItemDataRole.UserRole)[0] for h in hits]
        assert sorted(roots) == sorted([str(a)] * 3 + [str(b)] * 4)
        scores = [float(h.text().split("\n")[1].split(" ")[0]) for h in hits]
        assert scores == sorted(scores, reverse=True)  # merged by score, best first
        offline = [h for h in hits if h.data(Qt.ItemDataRole.UserRole)[2]]
        assert len(offline) == 4 and all("offline" in h.text() for h in offline)
        assert all(not h.icon().isNull() for h in hits)  # from the stores, offline too
        assert "from 2 folders, 4 offline" in dialog.message.text()

        dialog._hit_activated(offline[0])
        assert "offline" in dialog.message.text() and dialog.isVisible()
        online = next(h for h in hits if not h.data(Qt.ItemDataRole.UserRole)[2])
        wanted = online.data(Qt.ItemDataRole.UserRole)[1]
        dialog.hits.setCurrentItem(online)
        qtbot.keyClick(dialog.hits, Qt.Key.Key_Return)
        assert not dialog.isVisible()
        model = window.results.model
        qtbot.waitUntil(lambda: window.results._shown is not None, timeout=10_000)
        assert window.collection.target.folder == a
        assert str(model.item(0).path) == wanted and model.item(0).score > 0.99
        assert window.grid.currentIndex().row() == 0  # the hit is current, details shown
    finally:
        library_file.unlink(missing_ok=True)
