"""The real window, offscreen, with the real built-in model on real photos."""

from __future__ import annotations

import shutil
import time

from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QApplication

from tests.conftest import distinct_images, near_duplicate
from tests.qt.conftest import INDEX_TIMEOUT_MS, open_and_wait, wait_results
from visualsearch.core.folder import ModelChoice
from visualsearch.core.query import ImageDataQuery, ImageQuery, TextQuery
from visualsearch.core.store import Store, default_store_dir
from visualsearch.qt.model_controller import CLIP_DEFAULT


def _row_of(window, name: str) -> int:
    for row in range(window.model.rowCount()):
        if window.model.item(row).path.name == name:
            return row
    raise AssertionError(f"{name} is not in the grid")


def _click(qtbot, window, row: int) -> None:
    index = window.model.index(row)
    window.grid.scrollTo(index)
    rect = window.grid.visualRect(index)
    qtbot.mouseClick(window.grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def _drop(window, mime: QMimeData) -> None:
    """What Qt does for a drag from a file manager: enter (accepted?), then drop."""
    pos = QPointF(window.grid.geometry().center())
    enter = QDragEnterEvent(
        pos.toPoint(),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        pos,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(drop)
    assert drop.isAccepted()


def test_open_browse_click_find_similar_and_search(qtbot, window, gallery):
    report = open_and_wait(qtbot, window, gallery)
    assert report.failed == 0 and report.indexed + report.unchanged == report.scanned
    assert window.model.rowCount() == report.scanned
    assert "All images" in window.results_area.query_label.text()
    assert not window.message.isVisible()

    # click a thumbnail: the details panel shows that image
    _click(qtbot, window, _row_of(window, "chelsea.png"))
    assert window.details.item is not None and window.details.item.path.name == "chelsea.png"
    assert window.details.fields["Dimensions"].text() == "451 × 300"

    # Enter = find similar: the nearest images are chelsea's own copies, the image itself left out
    result = wait_results(qtbot, window, lambda: qtbot.keyClick(window.grid, Qt.Key.Key_Return))
    assert isinstance(result.query, ImageQuery) and result.query.path.name == "chelsea.png"
    names = [window.model.item(r).path.name for r in range(3)]
    assert all(n.startswith("chelsea-") for n in names), names
    assert "chelsea.png" not in [h.path.name for h in result.hits]
    scores = [window.model.item(r).score for r in range(window.model.rowCount())]
    assert scores == sorted(scores, reverse=True)

    # text search from the search box
    window.search_box.setText("a photo of a cat")
    result = wait_results(
        qtbot, window, lambda: qtbot.keyClick(window.search_box, Qt.Key.Key_Return)
    )
    assert result.query == TextQuery("a photo of a cat")
    assert window.model.item(0).path.name.startswith("chelsea")
    assert (
        "CLIP model" in window.results_area.query_label.text()
    )  # the built-in model's limits are said

    # Back returns to the similar-images result, Forward to the text search, Esc to all images
    result = wait_results(
        qtbot,
        window,
        lambda: qtbot.keyClick(window, Qt.Key.Key_Left, Qt.KeyboardModifier.AltModifier),
    )
    assert isinstance(result.query, ImageQuery)
    result = wait_results(
        qtbot,
        window,
        lambda: qtbot.keyClick(window, Qt.Key.Key_Right, Qt.KeyboardModifier.AltModifier),
    )
    assert result.query == TextQuery("a photo of a cat")
    assert window.search_box.text() == "a photo of a cat"
    result = wait_results(qtbot, window, lambda: qtbot.keyClick(window.grid, Qt.Key.Key_Escape))
    assert result is None and window.model.rowCount() == report.scanned
    assert window.search_box.text() == ""


def test_drop_an_outside_image_and_paste_one(qtbot, window, gallery, tmp_path):
    open_and_wait(qtbot, window, gallery)
    coffee = next(p for p in gallery.iterdir() if p.name == "coffee.png")
    outside = tmp_path / "my coffee.jpg"
    with Image.open(coffee) as img:
        near_duplicate(img).save(outside)

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(outside))])
    result = wait_results(qtbot, window, lambda: _drop(window, mime))
    assert result.query == ImageQuery(outside)
    assert window.model.item(0).path.name.startswith("coffee")

    image = QImage(str(next(p for p in gallery.iterdir() if p.name == "rocket.jpg")))
    QGuiApplication.clipboard().setImage(image)
    result = wait_results(qtbot, window, window.files.paste)
    assert isinstance(result.query, ImageDataQuery)
    assert window.model.item(0).path.name.startswith("rocket")


def test_dropping_a_folder_opens_it(qtbot, window, tmp_path):
    folder = tmp_path / "dropped"
    distinct_images(folder, 3)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    with qtbot.waitSignal(window.collection.indexing_finished, timeout=INDEX_TIMEOUT_MS) as blocker:
        _drop(window, mime)
    assert blocker.args[0].indexed == 3
    assert window.collection.target.folder == folder.resolve()


def test_cancel_mid_run_keeps_batches_and_reopening_resumes(
    qtbot, make_window, app_paths, tmp_path
):
    folder = tmp_path / "many"
    distinct_images(folder, 40)
    window = make_window(batch_size=2)
    with qtbot.waitSignal(window.collection.indexing_finished, timeout=INDEX_TIMEOUT_MS) as blocker:
        window.open_folder(folder)
        qtbot.waitUntil(lambda: window.model.rowCount() >= 2, timeout=INDEX_TIMEOUT_MS)
        qtbot.mouseClick(window.indexing.cancel, Qt.MouseButton.LeftButton)
    report = blocker.args[0]
    assert report.cancelled
    assert 2 <= report.indexed < 40
    assert "cancelled" in window.message.text()
    with Store(default_store_dir(folder.resolve(), app_paths.data_dir)) as store:
        assert len(store.image_records()) == report.indexed  # every finished batch is kept

    report2 = open_and_wait(qtbot, window, folder)
    assert not report2.cancelled
    assert report2.unchanged == report.indexed and report2.encoded == 40 - report.indexed
    assert window.model.rowCount() == 40


def test_errors_are_shown_in_the_window(qtbot, window, tmp_path):
    window.open_folder(tmp_path / "does-not-exist")
    assert window.message.isVisible() and "not found" in window.message.text()

    empty = tmp_path / "empty"
    empty.mkdir()
    open_and_wait(qtbot, window, empty)
    assert "No images found" in window.message.text()

    window.results.run_query(TextQuery("a cat"))  # nothing indexed: a message, no traceback
    qtbot.waitUntil(lambda: "no images are indexed" in window.message.text(), timeout=30_000)


def test_clip_download_offered_and_fails_fast_without_network(qtbot, window, gallery):
    open_and_wait(qtbot, window, gallery)
    window.menus.clip_model_action.trigger()  # the test's dialog says no: nothing happens
    assert window.ctx.confirm.asked and window.ctx.confirm.asked[-1][0] == "Download CLIP"
    assert window.models.choice.spec == "builtin" and window.menus.builtin_model_action.isChecked()
    assert not window.collection.busy()

    window.ctx.confirm.answer = True  # yes, download: but there is no network here
    started = time.monotonic()
    with qtbot.waitSignal(window.models.download_failed, timeout=10_000) as blocker:
        window.menus.clip_model_action.trigger()
    assert time.monotonic() - started < 2.0
    assert "HF_HUB_OFFLINE" in blocker.args[0] or "no network" in blocker.args[0]
    assert "Still using the Built-in model" in window.message.text()
    assert window.models.choice.spec == "builtin" and window.menus.builtin_model_action.isChecked()


def test_a_bad_checkpoint_falls_back_to_the_previous_model(qtbot, window, gallery, tmp_path):
    open_and_wait(qtbot, window, gallery)
    bogus = tmp_path / "not-a-checkpoint.pt"
    bogus.write_bytes(b"definitely not weights")
    with qtbot.waitSignal(window.collection.indexing_failed, timeout=60_000):
        window.models.set_model(ModelChoice(CLIP_DEFAULT.spec, bogus))
    assert "Still using the Built-in model" in window.message.text()
    assert window.models.choice.spec == "builtin" and window.menus.builtin_model_action.isChecked()
    qtbot.waitUntil(lambda: not window.collection.busy(), timeout=INDEX_TIMEOUT_MS)


def test_first_run_welcome_then_the_sample_collection(qtbot, make_window, app_paths):
    window = make_window()
    assert window.pages.currentWidget() is window.welcome
    with qtbot.waitSignal(window.collection.indexing_finished, timeout=INDEX_TIMEOUT_MS):
        qtbot.mouseClick(window.welcome.sample_button, Qt.MouseButton.LeftButton)
    assert window.collection.target.folder == app_paths.sample_dir.resolve()
    window.search_box.setText("a photo of a cat")
    result = wait_results(qtbot, window, window.results.search_entered)
    assert result.hits[0].path.name.startswith("chelsea")


def test_open_show_in_folder_copy_path(qtbot, window, gallery):
    open_and_wait(qtbot, window, gallery)
    _click(qtbot, window, _row_of(window, "coffee.png"))
    window.details.open_button.click()
    window.details.folder_button.click()
    urls = window.ctx.open_url.urls
    assert [u.toLocalFile() for u in urls] == [str(gallery / "coffee.png"), str(gallery)]
    qtbot.keyClick(
        window,
        Qt.Key.Key_C,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert QGuiApplication.clipboard().text() == str(gallery / "coffee.png")


def test_recent_folders_are_remembered_and_search_gets_focus(qtbot, make_window, gallery, tmp_path):
    first = make_window()
    open_and_wait(qtbot, first, gallery)
    first.close()
    second = make_window()
    assert second.settings.recent_folders[0] == str(gallery.resolve())
    assert second.menus.recent_menu.actions()[0].text() == str(gallery.resolve())
    second.activateWindow()
    qtbot.waitUntil(second.isActiveWindow)
    qtbot.keyClick(second, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is second.search_box


def test_thumbnails_are_loaded_for_visible_items(qtbot, window, gallery):
    open_and_wait(qtbot, window, gallery)
    index = window.model.index(0)
    qtbot.waitUntil(
        lambda: window.model.data(index, Qt.ItemDataRole.DecorationRole) is not None, timeout=30_000
    )
    pixmap = window.model.data(index, Qt.ItemDataRole.DecorationRole)
    assert max(pixmap.width(), pixmap.height()) == window.model.icon_size.width()


def test_a_changed_file_is_shown_after_reindex(qtbot, window, tmp_path):
    folder = tmp_path / "live"
    paths = distinct_images(folder, 4)
    open_and_wait(qtbot, window, folder)
    assert window.model.rowCount() == 4
    shutil.copy(paths[0], folder / "new.jpg")
    paths[1].unlink()
    report = open_and_wait(qtbot, window, folder)
    assert report.new == 1 and report.removed == 1 and report.encoded == 0  # copy: reused
    names = sorted(window.model.item(r).path.name for r in range(window.model.rowCount()))
    assert names == sorted(["img_000.jpg", "img_002.jpg", "img_003.jpg", "new.jpg"])


def test_icon_about_and_reset_settings(qtbot, window, gallery):
    assert not window.windowIcon().isNull()
    about = window.about_text()
    assert "visualsearch 0.1.0" in about and "torch" in about and "open_clip" in about
    open_and_wait(qtbot, window, gallery)
    window.zoom(+1)
    assert window.settings.recent_folders and window.settings.thumbnail_size != 160
    window.ctx.confirm.answer = True
    window.reset_settings()
    fresh = window.ctx.settings.load()
    assert fresh.recent_folders == [] and fresh.thumbnail_size == 160
    assert window.menus.recent_menu.actions() == [] and window.grid.delegate.icon_size == 160


def test_store_location_is_a_setting(qtbot, window, tmp_path):
    folder = tmp_path / "few"
    distinct_images(folder, 3)
    window.set_store_root(tmp_path / "stores")
    open_and_wait(qtbot, window, folder)
    assert window.collection.target.store_dir.parent == tmp_path / "stores" / "collections"
    assert (window.collection.target.store_dir / "catalog.sqlite").exists()
    assert window.ctx.settings.load().store_root == str(tmp_path / "stores")
    window.set_store_root(None)
    assert window.ctx.settings.load().store_root == ""
