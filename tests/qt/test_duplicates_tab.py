"""Duplicates tab with the trash, odd ones out, tags, mixed queries and the minimum score."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PIL import Image
from PySide6.QtCore import Qt

from tests.qt.conftest import open_and_wait, wait_results
from visualsearch.core.query import MixQuery, TextQuery
from visualsearch.core.sample import VARIANTS, skimage_photos


def _small_collection(folder: Path) -> Path:
    folder.mkdir()
    photos = {p.stem: p for p in skimage_photos()}
    for stem in ("chelsea", "coffee", "rocket", "astronaut"):
        shutil.copy2(photos[stem], folder / photos[stem].name)
    shutil.copy2(photos["chelsea"], folder / "chelsea copy.png")
    with Image.open(photos["coffee"]) as img:
        (folder / "coffee-small.jpg").write_bytes(VARIANTS["small"](img.convert("RGB")))
    return folder


def test_find_duplicates_mark_and_trash_only_after_confirming(qtbot, window, tmp_path):
    folder = _small_collection(tmp_path / "photos")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    open_and_wait(qtbot, window, folder)
    window.tabs.setCurrentWidget(window.duplicates_page)
    page = window.duplicates_page
    assert page.threshold() == 0.77  # the built-in model's near-identical preset
    with qtbot.waitSignal(window.duplicates_ready, timeout=60_000) as blocker:
        qtbot.mouseClick(page.find, Qt.MouseButton.LeftButton)
    groups = blocker.args[0]
    found = sorted(sorted(r.path for r in g.members) for g in groups)
    assert found == [["chelsea copy.png", "chelsea.png"], ["coffee-small.jpg", "coffee.png"]]
    chelsea = next(g for g in groups if g.exact)
    assert chelsea.members[0].path == "chelsea.png" and chelsea.keep_reason

    copy = next(it for it in page.image_items() if it.text(0).startswith("chelsea copy.png"))
    copy.setCheckState(0, Qt.CheckState.Checked)
    assert page.marked() == [folder / "chelsea copy.png"]

    asked = []
    window.ctx.confirm = lambda parent, title, text, details: asked.append(details) or False
    page.trash.click()  # cancelled: nothing is touched
    assert asked == [str(folder / "chelsea copy.png")]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before

    window.ctx.confirm = lambda *args: True
    with qtbot.waitSignal(window.trash_finished, timeout=30_000) as blocker:
        page.trash.click()
    moved, failed = blocker.args[0]
    assert moved == [folder / "chelsea copy.png"] and failed == []
    assert not (folder / "chelsea copy.png").exists()
    trash = Path(os.environ["XDG_DATA_HOME"]) / "Trash" / "files"
    assert (trash / "chelsea copy.png").read_bytes() == before["chelsea copy.png"]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {
        k: v for k, v in before.items() if k != "chelsea copy.png"
    }
    assert page.tree.topLevelItemCount() == 1  # the chelsea group has one image left: gone
    qtbot.waitUntil(lambda: "chelsea copy.png" not in window.records, timeout=60_000)

    csv1 = window.save_duplicates_csv(tmp_path / "dups.csv")
    csv2 = window.save_duplicates_csv(tmp_path / "dups.csv")
    assert csv1.name == "dups.csv" and csv2.name == "dups (2).csv"
    assert "coffee-small.jpg" in csv1.read_text()


def test_odd_ones_out_tags_mixed_queries_and_minimum_score(qtbot, window, gallery):
    open_and_wait(qtbot, window, gallery)
    result = wait_results(qtbot, window, window.show_outliers)
    assert result is None and "Odd ones out" in window.query_label.text()
    scores = [window.model.item(r).score for r in range(window.model.rowCount())]
    assert len(scores) == len(window.records) and scores == sorted(scores, reverse=True)

    window.show_all()
    row = next(
        r for r in range(window.model.rowCount()) if window.model.item(r).path.name == "chelsea.png"
    )
    with qtbot.waitSignal(window.tags_shown, timeout=60_000) as blocker:
        window.grid.setCurrentIndex(window.model.index(row))
    tags = blocker.args[0]
    assert "cat" in tags[0][0]
    assert "cat" in window.details.tags.text()
    result = wait_results(qtbot, window, lambda: window._tag_clicked(tags[0][0]))
    assert result.query == TextQuery(tags[0][0])

    wait_results(qtbot, window, lambda: window.find_similar(gallery / "chelsea.png"))
    window.search_box.setText("+ a cup of coffee")
    result = wait_results(qtbot, window, window._search_entered)
    assert isinstance(result.query, MixQuery) and result.query.text == "a cup of coffee"
    names = [h.path.name for h in result.hits[:12]]
    assert any(n.startswith("chelsea") for n in names) and any(
        n.startswith("coffee") for n in names
    )

    window.search_box.setText("a photo of a cat")
    wait_results(qtbot, window, window._search_entered)
    result = wait_results(qtbot, window, lambda: window.min_score_box.setValue(0.99))
    assert result.hits == [] and "reaches similarity 0.99" in window.query_label.text()
    window.min_score_box.setValue(0)


def test_enter_on_a_multi_selection_finds_more_like_these(qtbot, window, gallery):
    from PySide6.QtCore import QItemSelectionModel

    from visualsearch.core.query import SelectionQuery

    open_and_wait(qtbot, window, gallery)
    rows = [
        r
        for r in range(window.model.rowCount())
        if window.model.item(r).path.name.startswith("coffee")
    ]
    rows += [
        r for r in range(window.model.rowCount()) if window.model.item(r).path.name == "chelsea.png"
    ]
    selection = window.grid.selectionModel()
    window.grid.setCurrentIndex(window.model.index(rows[0]))
    for r in rows:
        selection.select(window.model.index(r), QItemSelectionModel.SelectionFlag.Select)
    with qtbot.waitSignal(window.tags_shown, timeout=60_000) as tags:
        selection.select(window.model.index(rows[-1]), QItemSelectionModel.SelectionFlag.Select)
    assert tags.args[0]  # tags for the selection as a whole
    result = wait_results(qtbot, window, lambda: qtbot.keyClick(window.grid, Qt.Key.Key_Return))
    assert isinstance(result.query, SelectionQuery) and len(result.query.paths) == len(rows)
    chosen = {window.model.item(0).path.name}
    assert not chosen & {p.name for p in result.query.paths}


def test_mark_all_but_the_suggested_copy_never_marks_originals_links_or_outside_files(
    qtbot, window, tmp_path
):
    """`best/a.png` links to `2019/IMG_0001.png`, `chelsea-2x.png` is an upscale of it, and
    `elsewhere/` is a linked folder outside the opened one. Only the real copies with less
    detail are marked, and the confirmation lists real paths."""
    folder, outside = tmp_path / "photos", tmp_path / "outside"
    for d in (folder / "2019", folder / "best", outside):
        d.mkdir(parents=True)
    photos = {p.stem: p for p in skimage_photos()}
    shutil.copy2(photos["chelsea"], folder / "2019" / "IMG_0001.png")
    (folder / "best" / "a.png").symlink_to(folder / "2019" / "IMG_0001.png")
    with Image.open(photos["chelsea"]) as img:
        img.convert("RGB").resize((902, 600), Image.Resampling.BICUBIC).save(
            folder / "chelsea-2x.png"
        )
    shutil.copy2(photos["coffee"], folder / "coffee.png")
    shutil.copy2(photos["coffee"], outside / "coffee.png")
    (folder / "elsewhere").symlink_to(outside, target_is_directory=True)
    with Image.open(photos["coffee"]) as img:
        (folder / "coffee-small.jpg").write_bytes(VARIANTS["small"](img.convert("RGB")))
    open_and_wait(qtbot, window, folder)
    window.tabs.setCurrentWidget(window.duplicates_page)
    page = window.duplicates_page
    with qtbot.waitSignal(window.duplicates_ready, timeout=120_000) as blocker:
        qtbot.mouseClick(page.find, Qt.MouseButton.LeftButton)
    keepers = {g.members[0].path: g.keep_reason for g in blocker.args[0]}
    assert set(keepers) == {"2019/IMG_0001.png", "coffee.png"}
    assert "chelsea-2x.png is 902 × 600 but upscaled" in keepers["2019/IMG_0001.png"]

    page.mark.click()
    assert sorted(page.marked()) == [folder / "chelsea-2x.png", folder / "coffee-small.jpg"]
    rows = {it.data(0, Qt.ItemDataRole.UserRole): it for it in page.image_items()}
    link = rows[str(folder / "best" / "a.png")]
    assert "never moved to the trash: a link to 2019/IMG_0001.png" in link.text(0)
    assert not link.flags() & Qt.ItemFlag.ItemIsUserCheckable
    assert "linked folder elsewhere" in rows[str(folder / "elsewhere" / "coffee.png")].text(0)

    asked = []
    window.ctx.confirm = lambda parent, title, text, details: asked.append(details) or False
    page.trash.click()
    assert sorted(asked[0].splitlines()) == [
        os.path.realpath(folder / "chelsea-2x.png"),
        os.path.realpath(folder / "coffee-small.jpg"),
    ]
    window.ctx.confirm = lambda *args: True
    with qtbot.waitSignal(window.trash_finished, timeout=30_000) as blocker:
        page.trash.click()
    moved, failed = blocker.args[0]
    assert sorted(moved) == [folder / "chelsea-2x.png", folder / "coffee-small.jpg"]
    assert failed == []
    assert (folder / "best" / "a.png").is_symlink() and (outside / "coffee.png").exists()
    assert (folder / "2019" / "IMG_0001.png").exists() and (folder / "coffee.png").exists()
