"""File ▸ Library…: the roots with their state and counts; add, remove, open."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from tests.conftest import distinct_images
from tests.fakes import FakeEncoder, HeldEncoder
from visualsearch.core.folder import ModelChoice
from visualsearch.core.library import Library


def _rows(dialog):
    tree = dialog.tree
    return [
        [tree.topLevelItem(i).text(c) for c in range(3)] for i in range(tree.topLevelItemCount())
    ]


def _two_roots_one_unplugged(window, app_paths, tmp_path, images_in_b: int) -> tuple:
    """Roots a (3 images) and b, indexed, then b renamed away (a drive unplugged)."""
    a, b = tmp_path / "a", tmp_path / "b"
    distinct_images(a, 3, size=64)
    distinct_images(b, images_in_b, size=80)
    library = Library(app_paths.data_dir, window.collection.store_base)
    library.add(a)
    library.add(b)
    library.index(FakeEncoder(), ModelChoice("builtin"))
    b.rename(tmp_path / "unplugged")
    return a, b


def test_the_library_lists_its_roots_online_or_not_and_opens_one(
    qtbot, make_window, tmp_path, app_paths, empty_library
):
    window = make_window(encoder=FakeEncoder())
    a, b = _two_roots_one_unplugged(window, app_paths, tmp_path, 5)

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


def test_the_library_is_searched_as_one_in_the_window_unplugged_roots_included(
    qtbot, make_window, tmp_path, app_paths, empty_library
):
    """Searching several roots as one was in the command line only."""
    window = make_window(encoder=FakeEncoder())
    a, b = _two_roots_one_unplugged(window, app_paths, tmp_path, 4)

    window.menus.library_action.trigger()
    dialog = window.library_dialog
    dialog.search_box.setText("anything at all")
    qtbot.keyClick(dialog.search_box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.hits.count() == 7, timeout=10_000)
    hits = [dialog.hits.item(i) for i in range(dialog.hits.count())]
    found = dialog._found  # the hit each row shows
    assert sorted(str(h.root) for h in found) == sorted([str(a)] * 3 + [str(b)] * 4)
    scores = [float(h.text().split("\n")[1].split(" ")[0]) for h in hits]
    assert scores == sorted(scores, reverse=True)  # merged by score, best first
    offline = [item for item, h in zip(hits, found, strict=True) if h.offline]
    assert len(offline) == 4 and all("offline" in h.text() for h in offline)
    assert all(not h.icon().isNull() for h in hits)  # from the stores, offline too
    assert "from 2 folders, 4 offline" in dialog.message.text()

    dialog._hit_activated(offline[0])
    assert "offline" in dialog.message.text() and dialog.isVisible()
    row = next(i for i, h in enumerate(found) if not h.offline)
    wanted = found[row].hit.path
    dialog.hits.setCurrentItem(hits[row])
    qtbot.keyClick(dialog.hits, Qt.Key.Key_Return)
    assert not dialog.isVisible()
    model = window.results.model
    qtbot.waitUntil(lambda: window.results._shown is not None, timeout=10_000)
    assert window.collection.target.folder == a
    assert model.item(0).path == wanted and model.item(0).score > 0.99
    assert window.grid.currentIndex().row() == 0  # the hit is current, details shown


def test_a_root_whose_name_is_not_utf8_is_listed_searched_opened_and_removed(
    qtbot, make_window, tmp_path, app_paths, empty_library
):
    """Its path went through Qt as a str, which drops a name's undecodable bytes: its
    state stayed "…", Remove raised, and a hit opened a folder that does not exist."""
    import os

    window = make_window(encoder=FakeEncoder())
    odd = tmp_path / os.fsdecode(b"Sch\xf6nbrunn")
    photos = distinct_images(odd, 3, size=64)
    library = Library(app_paths.data_dir, window.collection.store_base)
    library.add(odd)
    library.index(FakeEncoder(), ModelChoice("builtin"))
    window.menus.library_action.trigger()
    dialog = window.library_dialog
    qtbot.waitUntil(lambda: _rows(dialog)[0][1:] == ["Online", "3"], timeout=10_000)
    assert _rows(dialog)[0][0] == f"{tmp_path}/Sch\\xf6nbrunn"  # shown escaped

    dialog.search_box.setText("anything")
    qtbot.keyClick(dialog.search_box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.hits.count() == 3, timeout=10_000)
    first = dialog._found[0].hit.path
    assert first in photos
    dialog.hits.setCurrentItem(dialog.hits.item(0))
    qtbot.keyClick(dialog.hits, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.results._shown is not None, timeout=10_000)
    assert window.collection.target.folder == odd
    assert window.results.model.item(0).path == first
    assert odd in [Path(p) for p in window.settings.recent_folders]  # remembered exactly
    assert "Sch\\xf6nbrunn" in window.windowTitle()

    window.menus.library_action.trigger()
    dialog = window.library_dialog
    dialog.tree.setCurrentItem(dialog.tree.topLevelItem(0))
    dialog.remove_selected()
    assert Library(app_paths.data_dir).roots == []


def test_a_hit_chosen_while_the_open_folder_is_indexed_is_shown_once_its_root_opens(
    qtbot, make_window, tmp_path
):
    """The query was asked at once, then cleared with the history when the root opened
    after the run: the window showed all images instead of the hit."""
    encoder = HeldEncoder("embed_images", after=1)  # b's batch goes by, a's is held
    window = make_window(encoder=encoder)
    a, b = tmp_path / "a", tmp_path / "b"
    hit = distinct_images(b, 3, size=64)[1]
    distinct_images(a, 4, size=80)
    with qtbot.waitSignal(window.collection.indexing_finished, timeout=10_000):
        window.open_folder(b)
    window.open_folder(a)
    qtbot.waitUntil(encoder.holding.is_set, timeout=10_000)  # a is being indexed
    window._show_library_image(b, hit)  # what a double-click in the dialog does
    encoder.release.set()
    qtbot.waitUntil(lambda: window.results._shown is not None, timeout=10_000)
    assert window.collection.target.folder == b
    assert window.results.model.item(0).path == hit


def test_searching_with_a_model_no_root_is_indexed_with_says_so(qtbot, tmp_path):
    """It said "No images match", and left empty vector files of that model in every
    root's store."""
    from PySide6.QtCore import QThreadPool

    from visualsearch.qt.library_dialog import LibraryDialog

    class OtherEncoder(FakeEncoder):
        id = "other-v1"

    a = tmp_path / "a"
    distinct_images(a, 3, size=64)
    library = Library(tmp_path / "data", tmp_path / "stores")
    library.add(a)
    library.index(FakeEncoder(), ModelChoice("builtin"))
    pool = QThreadPool()
    dialog = LibraryDialog(library, pool, OtherEncoder)
    qtbot.addWidget(dialog)
    dialog.search_box.setText("a dog")
    qtbot.keyClick(dialog.search_box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "Searching" not in dialog.message.text(), timeout=10_000)
    pool.waitForDone(10_000)
    assert "no folder of the library is indexed with other-v1" in dialog.message.text()
    with library.store(a) as store:
        assert not [p for p in store.directory.iterdir() if "other" in p.name]
