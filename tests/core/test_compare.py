"""Copies compared fact by fact: what differs, which value is best, dates and their source."""

from __future__ import annotations

import os
from datetime import datetime

from PIL import Image

from tests.conftest import near_duplicate
from visualsearch.core.compare import FIELDS, compare, differing
from visualsearch.core.imageio import probe
from visualsearch.core.sample import skimage_photos
from visualsearch.core.store import FileRecord


def _ns(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1e9)


def _record(path: str, **facts) -> FileRecord:
    base = dict(size=1000, mtime_ns=_ns("2023-01-05 09:00"), width=600, height=400, format="PNG")
    return FileRecord(path=path, **(base | facts))


def test_only_the_differing_fields_are_flagged_and_the_best_value_marked():
    a = _record("a.png", size=5_000_000)
    b = _record("b.png", size=200_000)
    rows = compare([a, b])
    assert differing([a, b]) == {"size"}
    assert [rows[0]["size"].text, rows[1]["size"].text] == ["5.0 MB", "200.0 KB"]
    assert rows[0]["size"].best and not rows[1]["size"].best
    for field in set(FIELDS) - {"size"}:  # equal: neither flagged nor anyone's best
        assert [(r[field].differs, r[field].best) for r in rows] == [(False, False)] * 2


def test_best_of_each_field_highest_resolution_largest_oldest_lossless():
    big = _record("2019/big.png", width=1200, height=800, size=900, format="PNG")
    small = _record(
        "copies/small.jpg", width=600, height=400, size=2000, format="JPEG", taken="2018:03:04"
    )
    rows = compare([big, small], root_name="photos")
    best = {f: [r[f].best for r in rows] for f in FIELDS}
    assert best == {
        "resolution": [True, False],
        "size": [False, True],
        "format": [True, False],
        "date": [False, True],  # a date taken beats a file date, whatever their order
        "folder": [False, False],  # no folder is better than another
    }
    assert [r["folder"].text for r in rows] == ["photos/2019", "photos/copies"]
    assert all(r[f].differs for r in rows for f in FIELDS)


def test_the_oldest_of_two_dates_taken_wins_and_ties_mark_no_one():
    old = _record("a.jpg", taken="2015:06:01 10:00:00")
    new = _record("b.jpg", taken="2021:06:01 10:00:00")
    same = _record("c.jpg", taken="2021:06:01 10:00:00")
    rows = compare([new, old, same])
    assert [r["date"].best for r in rows] == [False, True, False]
    assert [r["date"].text for r in rows] == [
        "2021-06-01 10:00:00",
        "2015-06-01 10:00:00",
        "2021-06-01 10:00:00",
    ]
    rows = compare([new, same])
    assert [(r["date"].differs, r["date"].best) for r in rows] == [(False, False)] * 2


def test_same_rank_different_values_flag_a_difference_but_no_best():
    wide = _record("a.png", width=600, height=400)
    tall = _record("b.png", width=400, height=600)
    rows = compare([wide, tall])
    assert [(r["resolution"].differs, r["resolution"].best) for r in rows] == [(True, False)] * 2


def test_sizes_that_read_the_same_show_their_bytes():
    rows = compare([_record("a.png", size=269_612), _record("b.png", size=269_634)])
    assert [r["size"].text for r in rows] == [
        "269.6 KB (269,612 bytes)",
        "269.6 KB (269,634 bytes)",
    ]
    assert rows[1]["size"].best and not rows[0]["size"].best


def test_unknown_values_are_shown_as_unknown_and_never_best():
    known = _record("a.png", width=300, height=200)
    unknown = _record("b.png", width=None, height=None, format=None)
    rows = compare([known, unknown])
    assert [r["resolution"].text for r in rows] == ["300 × 200", "—"]
    assert [r["resolution"].best for r in rows] == [True, False]
    assert [r["format"].best for r in rows] == [True, False]


def test_dates_shown_with_their_source_and_an_unreadable_exif_date_falls_back():
    taken = _record("a.jpg", taken="2021:06:01 12:34:56")
    modified = _record("b.png", mtime_ns=_ns("2023-01-05 09:00"))
    broken = _record("c.jpg", taken="0000:00:00 00:00:00", mtime_ns=_ns("2019-02-03 04:05"))
    rows = compare([taken, modified, broken])
    assert [r["date"].text for r in rows] == [
        "2021-06-01 12:34:56",
        "2023-01-05 09:00:00 (file date)",
        "2019-02-03 04:05:00 (file date)",
    ]
    # the date taken is best though later: a file date says when a copy was made
    assert [r["date"].best for r in rows] == [True, False, False]
    assert [r["date"].best for r in compare([modified, broken])] == [False, True]


def test_real_near_duplicate_files_compare_by_their_read_facts(tmp_path):
    """A photo and its crop-resize-recompress copy, facts read from the files."""
    source = next(p for p in skimage_photos() if p.stem == "chelsea")
    original = tmp_path / "chelsea.png"
    with Image.open(source) as img:
        img.save(original)
        near_duplicate(img).save(tmp_path / "copy.jpg")
    copy = tmp_path / "copy.jpg"
    os.utime(original, ns=(_ns("2020-01-01 08:00"), _ns("2020-01-01 08:00")))
    records = []
    for p in (original, copy):
        info = probe(p.read_bytes())
        st = p.stat()
        records.append(
            FileRecord(
                p.name, st.st_size, st.st_mtime_ns, "h", info.width, info.height, info.format
            )
        )
    rows = compare(records)
    assert differing(records) == {"resolution", "size", "format", "date"}
    assert rows[0]["resolution"].best and rows[0]["size"].best and rows[0]["format"].best
    assert rows[0]["date"].best and rows[0]["date"].text == "2020-01-01 08:00:00 (file date)"
    assert [r["format"].text for r in rows] == ["PNG", "JPEG"]


def test_a_raw_file_ranks_with_the_lossless_formats():
    """A RAW file (the sensor's data) beside a PNG or JPEG made from it: the PNG was
    starred "lossless" and the RAW file not."""
    raw, png, jpeg = (
        _record(f"shot.{k}", format=f) for k, f in (("dng", "RAW"), ("png", "PNG"), ("jpg", "JPEG"))
    )
    assert [r["format"].best for r in compare([raw, jpeg])] == [True, False]
    assert [(r["format"].differs, r["format"].best) for r in compare([raw, png])] == [
        (True, False),
        (True, False),
    ]  # both lossless: a difference, no best
