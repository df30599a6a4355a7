"""What the window shows follows what happened: one skipped count everywhere, and no
header, banner, details panel or search box left over from an earlier state."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QLabel, QPlainTextEdit

from tests.conftest import distinct_images
from tests.qt.conftest import INDEX_TIMEOUT_MS, open_and_wait, wait_results
from visualsearch.cli import main as cli
from visualsearch.core.query import ImageQuery, TextQuery
from visualsearch.core.sample import skimage_photos

HIDDEN = "hidden folder (names starting with a dot are skipped)"


def test_skipped_count_is_one_number_in_the_window_and_the_cli(
    qtbot, window, tmp_path, app_paths, capsys
):
    """An unreadable file, a link loop and a hidden folder of images: three things skipped,
    said as 3 by the banner, the status bar, the dialog, `info` and `index`."""
    folder = tmp_path / "photos"
    good = distinct_images(folder, 2, size=96)
    (folder / "broken.jpg").write_text("not an image")
    os.symlink(".", folder / "loop")
    (folder / ".thumbnails").mkdir()
    for p in good:
        shutil.copy2(p, folder / ".thumbnails" / p.name)
    open_and_wait(qtbot, window, folder)

    assert window.message.text().startswith("3 skipped")
    assert "3 skipped" in window.summary.text()
    window.show_skipped()
    dialog = window.findChildren(QDialog)[-1]
    assert dialog.findChild(QLabel).text().startswith("3 skipped")
    lines = dialog.findChild(QPlainTextEdit).toPlainText().splitlines()
    assert len(lines) == 3 and f".thumbnails: {HIDDEN}" in lines
    dialog.close()

    capsys.readouterr()
    assert cli(["info", str(folder)], paths=app_paths) == 0
    out = capsys.readouterr().out
    assert "Skipped 3:" in out and f".thumbnails: {HIDDEN}" in out
    assert cli(["index", str(folder)], paths=app_paths) == 0  # nothing new, still 3 left out
    assert ", 3 skipped in" in capsys.readouterr().out


def test_the_cancelled_banner_goes_once_f5_has_finished_the_run(qtbot, make_window, tmp_path):
    folder = tmp_path / "many"
    distinct_images(folder, 6, size=96)
    window = make_window(batch_size=1)
    with qtbot.waitSignal(window.collection.indexing_finished, timeout=INDEX_TIMEOUT_MS) as blocker:
        window.open_folder(folder)
        window.cancel_jobs()
    assert blocker.args[0].cancelled and "Indexing cancelled" in window.message.text()
    with qtbot.waitSignal(window.collection.indexing_finished, timeout=INDEX_TIMEOUT_MS) as blocker:
        window.menus.reindex_action.trigger()  # F5
    assert not blocker.args[0].cancelled
    assert "cancelled" not in window.message.text()


def test_details_and_search_box_follow_what_the_grid_shows(qtbot, window, gallery):
    open_and_wait(qtbot, window, gallery)
    qtbot.keyClicks(window.search_box, "a cat")
    result = wait_results(qtbot, window, lambda: qtbot.keyClick(window.search_box, Qt.Key_Return))
    assert result.query == TextQuery("a cat")
    result = wait_results(
        qtbot, window, lambda: window.results.find_similar(gallery / "chelsea.png")
    )
    assert isinstance(result.query, ImageQuery)
    assert window.search_box.text() == ""  # the grid shows an image's neighbours, not "a cat"
    assert window.details.item is not None and window.details.fields["Score"].text() != "—"

    qtbot.keyClick(window.grid, Qt.Key.Key_Escape)  # all images, none chosen
    assert window.model.rowCount() == len(window.collection.records)
    assert window.details.item is None and window.details.fields["Score"].text() == ""

    wait_results(qtbot, window, lambda: window.results.find_similar(gallery / "chelsea.png"))
    assert window.details.item is not None
    result = wait_results(qtbot, window, lambda: window.results_area.min_score_box.setValue(0.999))
    assert result.hits == [] and window.details.item is None
    window.results_area.min_score_box.setValue(0)


def _copies(folder: Path) -> Path:
    """chelsea three times (exact copies), coffee twice (a smaller re-encode), a rocket."""
    from PIL import Image

    folder.mkdir()
    photos = {p.stem: p for p in skimage_photos()}
    for stem in ("chelsea", "coffee", "rocket"):
        shutil.copy2(photos[stem], folder / photos[stem].name)
    for copy in ("chelsea copy.png", "chelsea copy 2.png"):
        shutil.copy2(photos["chelsea"], folder / copy)
    with Image.open(photos["coffee"]) as img:
        img.convert("RGB").resize((300, 200)).save(folder / "coffee-small.jpg", quality=90)
    return folder


def test_duplicates_header_follows_the_trash_and_a_click_shows_details(qtbot, window, tmp_path):
    folder = _copies(tmp_path / "photos")
    open_and_wait(qtbot, window, folder)
    window.tabs.setCurrentWidget(window.duplicates_page)
    page = window.duplicates_page
    with qtbot.waitSignal(window.cleanup.duplicates_ready, timeout=60_000):
        page.find.click()
    heads = [page.tree.topLevelItem(i).text(0) for i in range(page.tree.topLevelItemCount())]
    assert heads[0].startswith("Group 1 · 3 images") and heads[1].startswith("Group 2 · 2 images")
    assert page.summary.text().startswith("2 groups; 3 images beyond one per group")

    row = next(it for it in page.image_items() if it.text(0).startswith("coffee-small.jpg"))
    page.tree.scrollToItem(row)
    rect = page.tree.visualItemRect(row)
    qtbot.mouseClick(page.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.details.item is not None
    assert window.details.item.path == folder / "coffee-small.jpg"

    copy = next(it for it in page.image_items() if it.text(0).startswith("chelsea copy.png"))
    copy.setCheckState(0, Qt.CheckState.Checked)
    window.ctx.confirm.answer = True
    with qtbot.waitSignal(window.cleanup.trash_finished, timeout=30_000):
        page.trash.click()
    assert page.tree.topLevelItem(0).text(0).startswith("Group 1 · 2 images")
    assert page.summary.text().startswith("2 groups; 2 images beyond one per group")
    assert [len(g.members) for g in page.groups] == [2, 2]  # what the CSV export writes
    qtbot.waitUntil(lambda: not window.collection.jobs.busy(), timeout=INDEX_TIMEOUT_MS)


def test_faster_clip_is_an_opt_in_kept_in_the_settings(qtbot, make_window):
    window = make_window()
    action = window.menus.fast_clip_action
    assert not action.isChecked() and not window.ctx.encoders.fast_clip  # off by default
    action.trigger()
    assert window.settings.fast_clip and window.ctx.encoders.fast_clip
    window.close()
    again = make_window()  # the next start, with the same settings file
    assert again.menus.fast_clip_action.isChecked() and again.ctx.encoders.fast_clip


def test_the_status_bar_says_where_the_model_runs(qtbot, make_window, tmp_path):
    """A model on "auto" settles on the GPU as it loads, during the first run: the status
    bar says so once the run has ended, and its tooltip names the device."""
    from tests.fakes import FakeEncoder

    class SettlesOnGpu(FakeEncoder):
        device_settled = None  # "auto" before the image network loads

        def embed_images(self, batch):
            self.device_settled = "cuda:0"
            return super().embed_images(batch)

    window = make_window(encoder=SettlesOnGpu())
    (tmp_path / "none").mkdir()
    open_and_wait(qtbot, window, tmp_path / "none")  # nothing to encode: not settled
    assert "on the GPU" not in window.summary.text()
    assert "runs on" not in window.summary.toolTip()  # not "the CPU" on a GPU computer
    distinct_images(tmp_path / "a", 2, size=64)
    open_and_wait(qtbot, window, tmp_path / "a")
    assert window.summary.text() == "2 images · fake-v1 on the GPU"
    assert "The model runs on the GPU (cuda:0)." in window.summary.toolTip()


def test_a_threshold_the_user_set_stays_through_indexing_runs(qtbot, make_window, tmp_path):
    """Every run tells the window its model; the duplicates slider went back to the
    preset each time, under a user who had moved it (a watcher's run, say)."""
    from tests.fakes import FakeEncoder

    window = make_window(encoder=FakeEncoder())
    page = window.duplicates_page
    distinct_images(tmp_path / "a", 2, size=64)
    distinct_images(tmp_path / "b", 2, size=72)
    open_and_wait(qtbot, window, tmp_path / "a")
    assert page.threshold() == 0.9  # the fake model's near-identical
    page.slider.setValue(72)
    open_and_wait(qtbot, window, tmp_path / "b")
    assert page.threshold() == 0.72
    page.set_model_threshold(0.8)  # another model: its presets
    assert page.threshold() == 0.8
