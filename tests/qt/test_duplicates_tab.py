"""Duplicates tab with the trash, odd ones out, tags, mixed queries and the minimum score."""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt, QThreadPool
from PySide6.QtGui import QPalette

from tests.conftest import near_duplicate
from tests.qt.conftest import open_and_wait, wait_results
from visualsearch.core.duplicates import DuplicateGroup
from visualsearch.core.imageio import probe
from visualsearch.core.names import human_size
from visualsearch.core.query import MixQuery, TextQuery
from visualsearch.core.sample import VARIANTS, skimage_photos
from visualsearch.core.store import FileRecord
from visualsearch.qt.duplicates_page import DuplicatesPage
from visualsearch.qt.thumbnails import ImageLoader, StoreThumbnails, load_preview


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
    with qtbot.waitSignal(window.cleanup.duplicates_ready, timeout=60_000) as blocker:
        qtbot.mouseClick(page.find, Qt.MouseButton.LeftButton)
    groups = blocker.args[0]
    found = sorted(sorted(r.path for r in g.members) for g in groups)
    assert found == [["chelsea copy.png", "chelsea.png"], ["coffee-small.jpg", "coffee.png"]]
    chelsea = next(g for g in groups if g.exact)
    assert chelsea.members[0].path == "chelsea.png" and chelsea.keep_reason

    copy = next(it for it in page.image_items() if it.text(0).startswith("chelsea copy.png"))
    _click_row(qtbot, page.tree, copy.parent())  # compared side by side: nothing differs
    cells = page.comparison.cells
    assert [c.name.text() for c in cells] == ["chelsea.png", "chelsea copy.png"]
    assert not any(v.font().bold() or "★" in v.text() for c in cells for v in c.values.values())
    copy.setCheckState(0, Qt.CheckState.Checked)
    assert page.marked() == [folder / "chelsea copy.png"]
    assert [c.trash_box.isChecked() for c in cells] == [False, True]

    asked = []
    window.cleanup.confirm = lambda parent, title, text, details: asked.append(details) or False
    page.trash.click()  # cancelled: nothing is touched
    assert asked == [str(folder / "chelsea copy.png")]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before

    window.cleanup.confirm = lambda *args: True
    with qtbot.waitSignal(window.cleanup.trash_finished, timeout=30_000) as blocker:
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
    qtbot.waitUntil(lambda: "chelsea copy.png" not in window.collection.records, timeout=60_000)

    csv1 = window.cleanup.save_csv(tmp_path / "dups.csv")
    csv2 = window.cleanup.save_csv(tmp_path / "dups.csv")
    assert csv1.name == "dups.csv" and csv2.name == "dups (2).csv"
    assert "coffee-small.jpg" in csv1.read_text()


def test_odd_ones_out_tags_mixed_queries_and_minimum_score(qtbot, window, gallery):
    open_and_wait(qtbot, window, gallery)
    result = wait_results(qtbot, window, window.cleanup.show_outliers)
    assert result is None and "Odd ones out" in window.results_area.query_label.text()
    scores = [window.model.item(r).score for r in range(window.model.rowCount())]
    assert len(scores) == len(window.collection.records) and scores == sorted(scores, reverse=True)

    window.results.show_all()
    row = next(
        r for r in range(window.model.rowCount()) if window.model.item(r).path.name == "chelsea.png"
    )
    with qtbot.waitSignal(window.results.tags_shown, timeout=60_000) as blocker:
        window.grid.setCurrentIndex(window.model.index(row))
    tags = blocker.args[0]
    assert "cat" in tags[0][0]
    assert "cat" in window.details.tags.text()
    result = wait_results(qtbot, window, lambda: window._tag_clicked(tags[0][0]))
    assert result.query == TextQuery(tags[0][0])

    wait_results(qtbot, window, lambda: window.results.find_similar(gallery / "chelsea.png"))
    window.search_box.setText("+ a cup of coffee")
    result = wait_results(qtbot, window, window.results.search_entered)
    assert isinstance(result.query, MixQuery) and result.query.text == "a cup of coffee"
    names = [h.path.name for h in result.hits[:12]]
    assert any(n.startswith("chelsea") for n in names) and any(
        n.startswith("coffee") for n in names
    )

    window.search_box.setText("a photo of a cat")
    wait_results(qtbot, window, window.results.search_entered)
    result = wait_results(qtbot, window, lambda: window.results_area.min_score_box.setValue(1.0))
    assert result.hits == [] and "reaches a match of 1.00" in window.results_area.query_label.text()
    window.results_area.min_score_box.setValue(0)


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
    with qtbot.waitSignal(window.results.tags_shown, timeout=60_000) as tags:
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
    with qtbot.waitSignal(window.cleanup.duplicates_ready, timeout=120_000) as blocker:
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
    window.cleanup.confirm = lambda parent, title, text, details: asked.append(details) or False
    page.trash.click()
    assert sorted(asked[0].splitlines()) == [
        os.path.realpath(folder / "chelsea-2x.png"),
        os.path.realpath(folder / "coffee-small.jpg"),
    ]
    window.cleanup.confirm = lambda *args: True
    with qtbot.waitSignal(window.cleanup.trash_finished, timeout=30_000) as blocker:
        page.trash.click()
    moved, failed = blocker.args[0]
    assert sorted(moved) == [folder / "chelsea-2x.png", folder / "coffee-small.jpg"]
    assert failed == []
    assert (folder / "best" / "a.png").is_symlink() and (outside / "coffee.png").exists()
    assert (folder / "2019" / "IMG_0001.png").exists() and (folder / "coffee.png").exists()


# -- the side-by-side comparison, on the page itself with groups of real files ----------


def _record(folder: Path, path: Path) -> FileRecord:
    info = probe(path.read_bytes())
    st = path.stat()
    rel = path.relative_to(folder).as_posix()
    return FileRecord(rel, st.st_size, st.st_mtime_ns, rel, info.width, info.height, info.format)


def _set_mtime(path: Path, when: str) -> None:
    ns = int(datetime.fromisoformat(when).timestamp() * 1e9)
    os.utime(path, ns=(ns, ns))


@pytest.fixture
def copies(tmp_path) -> tuple[Path, list[DuplicateGroup]]:
    """photos/chelsea.png with a cropped, smaller JPEG copy under copies/ (everything
    differs), and coffee.png with an exact copy under backup/ and a link to it (only the
    folder differs)."""
    folder = tmp_path / "photos"
    (folder / "copies").mkdir(parents=True)
    (folder / "backup").mkdir()
    photos = {p.stem: p for p in skimage_photos()}
    with Image.open(photos["chelsea"]) as img:
        img.save(folder / "chelsea.png")
        near_duplicate(img).save(folder / "copies" / "chelsea-copy.jpg")
    _set_mtime(folder / "chelsea.png", "2020-01-01 08:00")
    _set_mtime(folder / "copies" / "chelsea-copy.jpg", "2024-05-06 07:08")
    shutil.copy2(photos["coffee"], folder / "coffee.png")
    shutil.copy2(photos["coffee"], folder / "backup" / "coffee.png")
    (folder / "link.png").symlink_to(folder / "coffee.png")
    chelsea = [folder / "chelsea.png", folder / "copies" / "chelsea-copy.jpg"]
    coffee = [folder / "coffee.png", folder / "backup" / "coffee.png", folder / "link.png"]
    groups = [
        DuplicateGroup(
            rows=[0, 1],
            similarity=0.83,
            exact=False,
            keep_reason="most detail (451 × 300), oldest (modified first)",
            members=[_record(folder, p) for p in chelsea],
            protected=["", ""],
        ),
        DuplicateGroup(
            rows=[2, 3, 4],
            similarity=1.0,
            exact=True,
            keep_reason="the real file, not a link, shortest path",
            members=[_record(folder, p) for p in coffee],
            protected=["", "", "a link to coffee.png"],
        ),
    ]
    return folder, groups


@pytest.fixture
def page(qtbot):
    pool = QThreadPool()
    thumbnails = ImageLoader(StoreThumbnails(), pool, "thumb")
    previews = ImageLoader(load_preview, pool, "preview", threads=1)
    page = DuplicatesPage(thumbnails, previews)
    qtbot.addWidget(page)
    page.resize(1100, 800)
    page.show()
    qtbot.waitExposed(page)
    yield page
    pool.waitForDone()


def _click_row(qtbot, tree, item) -> None:
    tree.scrollToItem(item)
    qtbot.mouseClick(
        tree.viewport(), Qt.MouseButton.LeftButton, pos=tree.visualItemRect(item).center()
    )


def _shown(label) -> str:
    return label.text().replace("\u200b", "")


def _highlighted(label) -> bool:
    return label.font().bold() and label.palette().color(
        QPalette.ColorRole.WindowText
    ) == label.palette().color(QPalette.ColorRole.Link)


def test_a_click_on_a_group_shows_its_copies_side_by_side_with_their_facts(qtbot, page, copies):
    folder, groups = copies
    page.set_groups(groups, folder)
    strip = page.comparison
    assert strip.cells == [] and strip.hint.isVisible()

    _click_row(qtbot, page.tree, page.tree.topLevelItem(0))
    assert [c.name.text() for c in strip.cells] == ["chelsea.png", "chelsea-copy.jpg"]
    assert not strip.hint.isVisible() and strip.selected() is None
    keeper, copy = strip.cells
    facts = {f: [_shown(c.values[f]) for c in strip.cells] for f in keeper.values}
    original, smaller = groups[0].members
    assert (smaller.width, smaller.height) == (284, 189)
    assert facts == {
        "resolution": ["451 × 300  ★ highest", "284 × 189"],
        "size": [f"{human_size(original.size)}  ★ largest", human_size(smaller.size)],
        "format": ["PNG  ★ lossless", "JPEG"],
        "date": [
            "2020-01-01 08:00:00 (file date)  ★ oldest",
            "2024-05-06 07:08:00 (file date)",
        ],
        "folder": ["photos", "photos/copies"],
    }
    assert all(_highlighted(c.values[f]) for c in strip.cells for f in facts)
    assert keeper.badge.text().startswith("★ Suggested copy to keep\nkeep: most detail")
    assert copy.badge.text() == "" and copy.trash_box.isEnabled()

    # each image is loaded off the GUI thread and drawn as large as its cell allows
    qtbot.waitUntil(lambda: all(c.image.has_image() for c in strip.cells), timeout=30_000)
    for cell in strip.cells:
        view, drawn = cell.image, cell.image.image_rect()
        assert view.rect().contains(drawn) and not drawn.isEmpty()
        assert drawn.width() == view.width() or drawn.height() == view.height()
    ratio = keeper.image.image_rect().width() / keeper.image.image_rect().height()
    assert abs(ratio - 451 / 300) < 0.02

    _click_row(qtbot, page.tree, page.tree.topLevelItem(1))
    assert [_shown(c.values["folder"]) for c in strip.cells] == [
        "photos",
        "photos/backup",
        "photos",
    ]
    for cell in strip.cells:  # only the folder differs between exact copies
        assert _highlighted(cell.values["folder"]) and "★" not in cell.values["folder"].text()
        for field in ("resolution", "size", "format", "date"):
            assert not cell.values[field].font().bold() and "★" not in cell.values[field].text()
    link = strip.cells[2]
    assert link.badge.text() == "Never moved to the trash: a link to coffee.png"
    assert not link.trash_box.isEnabled()


def test_trash_boxes_in_the_comparison_and_the_tree_follow_each_other(qtbot, page, copies):
    folder, groups = copies
    page.set_groups(groups, folder)
    head = page.tree.topLevelItem(0)
    _click_row(qtbot, page.tree, head)
    copy = page.comparison.cells[1]

    qtbot.mouseClick(copy.trash_box, Qt.MouseButton.LeftButton, pos=QPoint(8, 8))
    assert head.child(1).checkState(0) == Qt.CheckState.Checked
    assert page.marked() == [folder / "copies" / "chelsea-copy.jpg"]

    head.child(1).setCheckState(0, Qt.CheckState.Unchecked)  # as a click on the row's box
    assert not copy.trash_box.isChecked() and page.marked() == []

    page.mark.click()
    assert [c.trash_box.isChecked() for c in page.comparison.cells] == [False, True]

    _click_row(qtbot, page.tree, page.tree.topLevelItem(1))  # shown again: as marked
    assert [c.trash_box.isChecked() for c in page.comparison.cells] == [False, True, False]
    qtbot.mouseClick(
        page.comparison.cells[0].trash_box, Qt.MouseButton.LeftButton, pos=QPoint(8, 8)
    )
    assert page.tree.topLevelItem(1).child(0).checkState(0) == Qt.CheckState.Checked
    assert sorted(page.marked()) == [
        folder / "backup" / "coffee.png",
        folder / "coffee.png",
        folder / "copies" / "chelsea-copy.jpg",
    ]


def test_a_click_on_a_row_or_an_image_selects_that_copy_and_shows_its_details(qtbot, page, copies):
    folder, groups = copies
    page.set_groups(groups, folder)
    strip = page.comparison
    coffee = page.tree.topLevelItem(1)
    with qtbot.waitSignal(page.image_clicked) as shown:
        _click_row(qtbot, page.tree, coffee.child(1))
    assert shown.args == [folder / "backup" / "coffee.png"]
    assert len(strip.cells) == 3 and strip.selected() == 1

    with qtbot.waitSignal(page.image_clicked) as shown:
        qtbot.keyClick(page.tree, Qt.Key.Key_Down)
    assert shown.args == [folder / "link.png"] and strip.selected() == 2

    with qtbot.waitSignal(page.image_clicked) as shown:  # another group's row
        _click_row(qtbot, page.tree, page.tree.topLevelItem(0).child(1))
    assert shown.args == [folder / "copies" / "chelsea-copy.jpg"]
    assert [c.name.text() for c in strip.cells] == ["chelsea.png", "chelsea-copy.jpg"]
    assert strip.selected() == 1

    with qtbot.waitSignal(page.image_clicked) as shown:  # a click on an image in the strip
        qtbot.mouseClick(strip.cells[0].image, Qt.MouseButton.LeftButton)
    assert shown.args == [folder / "chelsea.png"] and strip.selected() == 0
    assert page.tree.currentItem() is page.tree.topLevelItem(0).child(0)
    with qtbot.waitSignal(page.image_activated) as opened:
        qtbot.mouseDClick(strip.cells[1].image, Qt.MouseButton.LeftButton)
    assert opened.args == [folder / "copies" / "chelsea-copy.jpg"]


def test_trashed_copies_leave_the_comparison(qtbot, page, copies):
    folder, groups = copies
    page.set_groups(groups, folder)
    _click_row(qtbot, page.tree, page.tree.topLevelItem(1).child(0))
    page.remove_paths([folder / "backup" / "coffee.png"])
    strip = page.comparison
    assert [_shown(c.values["folder"]) for c in strip.cells] == ["photos", "photos"]
    assert strip.selected() == 0 and page.compared_group() is page.groups[1]
    assert not any(c.values["folder"].font().bold() for c in strip.cells)  # now all alike

    _click_row(qtbot, page.tree, page.tree.topLevelItem(0))
    page.remove_paths([folder / "copies" / "chelsea-copy.jpg"])  # its group is gone
    # the comparison follows the tree's current row, now the group that is left
    assert page.tree.currentItem() is page.tree.topLevelItem(0)
    assert page.compared_group() is page.groups[0]
    assert [c.name.text() for c in strip.cells] == ["coffee.png", "link.png"]

    page.set_groups([], folder)  # no duplicates: nothing to compare
    assert strip.cells == [] and strip.hint.isVisible()


def test_an_image_that_cannot_be_read_says_so(qtbot, page, copies):
    folder, groups = copies
    (folder / "coffee.png").unlink()  # vanished since it was indexed; link.png now dangles
    page.set_groups(groups, folder)
    _click_row(qtbot, page.tree, page.tree.topLevelItem(1))
    strip = page.comparison
    qtbot.waitUntil(lambda: strip.cells[1].image.has_image(), timeout=30_000)
    for i in (0, 2):
        qtbot.waitUntil(lambda i=i: strip.cells[i].image.text() == "Cannot show this image")


def test_the_keyboard_marks_copies_as_the_shortcuts_say(qtbot, page, copies):
    """Help ▸ Keyboard Shortcuts lists ↓ and Space for the Duplicates tab: they do that."""
    from visualsearch.qt.dialogs import WIDGET_KEYS

    assert ("Duplicates", "Space", "Mark or unmark the current copy for the trash") in WIDGET_KEYS
    folder, groups = copies
    page.set_groups(groups, folder)
    _click_row(qtbot, page.tree, page.tree.topLevelItem(0))
    page.tree.setFocus()
    qtbot.keyClick(page.tree, Qt.Key.Key_Down)
    qtbot.keyClick(page.tree, Qt.Key.Key_Down)
    assert page.tree.currentItem().data(0, Qt.ItemDataRole.UserRole).endswith("chelsea-copy.jpg")
    assert page.comparison.selected() == 1  # the side-by-side view follows
    qtbot.keyClick(page.tree, Qt.Key.Key_Space)
    assert page.marked() == [folder / "copies" / "chelsea-copy.jpg"]
    assert page.comparison.cells[1].trash_box.isChecked()
