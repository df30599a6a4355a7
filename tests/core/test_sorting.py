"""Sort orders for the grid and the folder tree (core/sorting.py)."""

import os
from datetime import datetime

import pytest
from PIL import Image

from tests.fakes import FakeEncoder
from visualsearch.core.indexing import index_folder
from visualsearch.core.sorting import (
    SORT_KEYS,
    FolderNode,
    date_text,
    folder_tree,
    in_folder,
    natural_key,
    parse_exif_date,
    record_date,
    sort_items,
)
from visualsearch.core.store import FileRecord, Store

DAY = 86_400 * 10**9


def rec(path: str, size: int = 1, mtime_ns: int = DAY, taken: str | None = None) -> FileRecord:
    return FileRecord(path, size, mtime_ns, taken=taken)


def paths(records) -> list[str]:
    return [r.path if r is not None else None for r in records]


# -- dates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021:07:04 10:11:12", datetime(2021, 7, 4, 10, 11, 12)),
        ("2021-07-04T10:11:12", datetime(2021, 7, 4, 10, 11, 12)),
        ("2021:07:04 10:11:12.345+02:00", datetime(2021, 7, 4, 10, 11, 12)),
        ("2021:07:04 10:11", datetime(2021, 7, 4, 10, 11)),
        ("2021:07:04", datetime(2021, 7, 4)),
        (" 2021:7:4 9:05:00", datetime(2021, 7, 4, 9, 5)),
        ("0000:00:00 00:00:00", None),
        ("    :  :     :  :  ", None),
        ("2021:00:00 00:00:00", None),
        ("2021:02:30 10:00:00", None),
        ("2021:07:04 25:00:00", None),
        ("\ufffd\ufffd\ufffd", None),
        ("", None),
        (None, None),
    ],
)
def test_exif_dates_parse_or_are_no_date(text, expected):
    assert parse_exif_date(text) == expected


def test_a_bad_exif_date_falls_back_to_the_file_date():
    r = rec("a.jpg", mtime_ns=1_600_000_000 * 10**9, taken="0000:00:00 00:00:00")
    assert record_date(r) == (datetime.fromtimestamp(1_600_000_000), "file")
    assert date_text(r).endswith(" (file date)")
    good = rec("b.jpg", taken="2021:07:04 10:11:12")
    assert record_date(good) == (datetime(2021, 7, 4, 10, 11, 12), "taken")
    assert date_text(good) == "2021-07-04 10:11:12"
    assert record_date(rec("c.jpg", mtime_ns=0)) is None and date_text(None) == ""


def _jpeg(path, taken: str | None, mtime: datetime) -> None:
    exif = Image.Exif()
    if taken is not None:
        exif.get_ifd(0x8769)[0x9003] = taken
    Image.new("RGB", (32, 24), (len(path.name) * 20 % 256, 90, 30)).save(path, exif=exif)
    os.utime(path, (mtime.timestamp(), mtime.timestamp()))


def test_date_order_over_indexed_files_uses_exif_else_the_file_time(tmp_path):
    """Real files through the real indexer: the stored `taken` strings parse, and files
    without a usable EXIF date take their modification time, marked as such."""
    pics = tmp_path / "pics"
    pics.mkdir()
    _jpeg(pics / "exif-2019.jpg", "2019:05:01 08:00:00", datetime(2024, 1, 1))
    _jpeg(pics / "plain-2020.jpg", None, datetime(2020, 3, 1, 12, 0))
    _jpeg(pics / "zeros-2018.jpg", "0000:00:00 00:00:00", datetime(2018, 6, 1, 9, 30))
    _jpeg(pics / "exif-2022.jpg", "2022:12:24 18:00:00", datetime(2010, 1, 1))
    with Store(tmp_path / "store", root=pics) as store:
        index_folder(pics, store, FakeEncoder())
        records = store.image_records()
    assert records[0].taken == "2019:05:01 08:00:00"  # as the indexer stores it
    newest_first = sort_items(records, "date", descending=True)
    assert paths(newest_first) == [
        "exif-2022.jpg",
        "plain-2020.jpg",
        "exif-2019.jpg",
        "zeros-2018.jpg",
    ]
    assert paths(sort_items(records, "date")) == paths(reversed(newest_first))
    shown = {r.path: date_text(r) for r in records}
    assert shown["exif-2019.jpg"] == "2019-05-01 08:00:00"
    assert shown["plain-2020.jpg"] == "2020-03-01 12:00:00 (file date)"
    assert shown["zeros-2018.jpg"] == "2018-06-01 09:30:00 (file date)"


def test_records_without_a_date_come_last_either_way():
    dated = [rec("b.jpg", taken="2020:01:01 00:00:00"), rec("a.jpg", taken="2021:01:01 00:00:00")]
    undated = [rec("x.jpg", mtime_ns=0), rec("w.jpg", mtime_ns=0, taken="0000:00:00 00:00:00")]
    records = [undated[0], dated[0], None, undated[1], dated[1]]
    assert paths(sort_items(records, "date")) == ["b.jpg", "a.jpg", "w.jpg", "x.jpg", None]
    assert paths(sort_items(records, "date", True)) == ["a.jpg", "b.jpg", "w.jpg", "x.jpg", None]


# -- names, folders, sizes -----------------------------------------------------------------


def test_natural_name_order_is_case_insensitive_and_by_number():
    names = ["img10.jpg", "IMG2.jpg", "img1.jpg", "Img02.jpg", "b.jpg", "A.jpg", "img2.png"]
    ordered = sorted(names, key=natural_key)
    assert ordered == [
        "A.jpg",
        "b.jpg",
        "img1.jpg",
        "IMG2.jpg",  # equal to "Img02" but for case and zeros: the name itself decides
        "Img02.jpg",
        "img2.png",
        "img10.jpg",
    ]
    records = [rec(f"f{i}/{n}") for i, n in enumerate(names)]
    by_name = sort_items(records, "name")
    assert [r.path.split("/")[1] for r in by_name] == ordered
    assert sort_items(records, "name", descending=True) == by_name[::-1]


def test_natural_key_orders_exactly_like_the_tuple_of_text_and_number_runs():
    """The one-string key (fast to compare) against the plain definition: casefolded runs
    of text and of digits by value, the name breaking ties."""
    import random
    import re

    def reference(name: str) -> tuple:
        parts = re.split(r"([0-9]+)", name.casefold())
        parts[1::2] = [int(p) for p in parts[1::2]]
        return (tuple(parts), name)

    rng = random.Random(7)
    alphabet = "aAbB_ -.!~\x01é0123456789"
    names = ["".join(rng.choices(alphabet, k=rng.randint(0, 8))) for _ in range(4000)]
    names += ["img2", "img02", "img10", "a", "a1", "a!", "a_", "a\x01", "007", "7", "0", ""]
    assert sorted(names, key=natural_key) == sorted(names, key=reference)


def test_folder_order_puts_a_folders_files_before_its_subfolders():
    records = [
        rec("trip10/a.jpg"),
        rec("trip2/sub/a.jpg"),
        rec("trip2/img10.jpg"),
        rec("top.jpg"),
        rec("trip2/img9.jpg"),
        rec("Trip2 b/a.jpg"),
    ]
    expected = [
        "top.jpg",
        "trip2/img9.jpg",
        "trip2/img10.jpg",
        "trip2/sub/a.jpg",
        "Trip2 b/a.jpg",
        "trip10/a.jpg",
    ]
    assert paths(sort_items(records, "folder")) == expected
    # descending reverses the folders; inside one, names stay A to Z
    assert paths(sort_items(records, "folder", True)) == [
        "trip10/a.jpg",
        "Trip2 b/a.jpg",
        "trip2/sub/a.jpg",
        "trip2/img9.jpg",
        "trip2/img10.jpg",
        "top.jpg",
    ]


def test_size_order_with_ties_by_name():
    records = [rec("c.jpg", 500), rec("b10.jpg", 100), rec("b9.jpg", 100), rec("a.jpg", 900)]
    assert paths(sort_items(records, "size")) == ["b9.jpg", "b10.jpg", "c.jpg", "a.jpg"]
    assert paths(sort_items(records, "size", True)) == ["a.jpg", "c.jpg", "b9.jpg", "b10.jpg"]


def test_sorting_items_through_their_records_and_relevance_keeps_the_ranking():
    items = [("hit1", rec("z.jpg", 1)), ("hit2", rec("a.jpg", 2)), ("outside", None)]
    assert sort_items(items, "relevance", record=lambda it: it[1]) == items
    by_name = sort_items(items, "name", record=lambda it: it[1])
    assert [it[0] for it in by_name] == ["hit2", "hit1", "outside"]
    assert set(SORT_KEYS) == {"relevance", "date", "name", "folder", "size"}
    with pytest.raises(ValueError, match="unknown sort key"):
        sort_items(items, "colour", record=lambda it: it[1])


# -- folder tree ----------------------------------------------------------------------------


def test_folder_tree_counts_images_under_each_folder():
    tree = folder_tree(
        [
            "top.jpg",
            "2021/a.jpg",
            "2021/summer/b.jpg",
            "2021/summer/c.jpg",
            "2021/winter/deep/d.jpg",
            "2020/e.jpg",
            "2100/f.jpg",
            "Album 10/g.jpg",
            "album 9/h.jpg",
        ]
    )
    assert (tree.path, tree.count) == ("", 9)
    assert [(c.name, c.count) for c in tree.children] == [
        ("2020", 1),
        ("2021", 4),
        ("2100", 1),
        ("album 9", 1),
        ("Album 10", 1),
    ]
    y2021 = tree.find("2021")
    assert [(c.path, c.count) for c in y2021.children] == [("2021/summer", 2), ("2021/winter", 1)]
    assert tree.find("2021/winter/deep") == FolderNode("deep", "2021/winter/deep", 1, [])
    assert tree.find("2021/autumn") is None and tree.find("") is tree
    assert [n.path for n in tree.walk()][:4] == ["", "2020", "2021", "2021/summer"]


def test_folder_tree_of_nothing_and_of_root_files_only():
    assert folder_tree([]) == FolderNode("", "", 0, [])
    assert folder_tree(["a.jpg", "b.jpg"]) == FolderNode("", "", 2, [])


def test_in_folder_includes_subfolders_and_only_whole_names():
    assert in_folder("a/b/c.jpg", "") and in_folder("top.jpg", "")
    assert in_folder("a/b/c.jpg", "a") and in_folder("a/b/c.jpg", "a/b")
    assert in_folder("a/b/c.jpg", "a/b/")
    assert not in_folder("ab/c.jpg", "a")  # a prefix of the name is not the folder
    assert not in_folder("a/b", "a/b")  # a file named like the folder is not in it
    assert not in_folder("top.jpg", "a")
