"""Labels in the store (core/labels.py): made, renamed, coloured, deleted; kept per
content so that a moved file keeps its label; read off subfolders; exported as CSV,
JSON and XMP sidecars without ever overwriting a file."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import xml.etree.ElementTree as ET

import pytest

from tests.fakes import FakeEncoder
from visualsearch.core.indexing import index_folder
from visualsearch.core.labels import LabelBook, LabelError, keyword_sidecars
from visualsearch.core.store import Store


@pytest.fixture
def sorted_folder(tmp_path, photos_dir):
    """Real photos in two subfolders and one at the top, indexed."""
    folder = tmp_path / "photos"
    names = sorted(p.name for p in photos_dir.iterdir())
    for i, name in enumerate(names[:9]):
        sub = folder / ("cats" if i < 4 else "dogs") if i < 8 else folder
        sub.mkdir(parents=True, exist_ok=True)
        shutil.copy2(photos_dir / name, sub / name)
    store = Store(tmp_path / "store", root=folder)
    index_folder(folder, store, FakeEncoder())
    yield folder, store
    store.close()


def test_labels_are_made_renamed_recoloured_and_deleted(sorted_folder):
    _, store = sorted_folder
    book = LabelBook(store)
    cats = book.create("  Cats ")
    assert cats.name == "Cats" and cats.colour.startswith("#")
    dogs = book.create("dogs", "#00FF00")
    assert dogs.colour == "#00ff00"
    with pytest.raises(LabelError, match="exists already"):
        book.create("Cats")
    with pytest.raises(LabelError, match="exists already"):
        book.rename(dogs.id, "Cats")
    with pytest.raises(LabelError, match="needs a name"):
        book.create("   ")
    with pytest.raises(LabelError, match="#rrggbb"):
        book.recolour(cats.id, "red")
    assert book.rename(cats.id, "Kittens").name == "Kittens"
    assert book.recolour(cats.id, "#123456").colour == "#123456"
    assert book.set_normal(dogs.id).normal
    hashes = [r.hash for r in store.image_records()][:3]
    book.assign(hashes, cats.id)
    assert book.counts() == {cats.id: 3}
    assert book.delete(cats.id) == 3
    assert [label.name for label in book.all()] == ["dogs"] and book.labelled() == {}
    with pytest.raises(LabelError, match="no label"):
        book.get(cats.id)


def test_subfolders_become_labels_and_a_moved_file_keeps_its_label(sorted_folder):
    folder, store = sorted_folder
    book = LabelBook(store)
    assert book.from_subfolders().labelled == {"cats": 4, "dogs": 4}  # the top one: none
    by_path = book.paths_by_label()
    moved = next(p for p, label in by_path.items() if label.name == "cats")
    (folder / "elsewhere").mkdir()
    shutil.move(folder / moved, folder / "elsewhere" / "renamed.png")
    index_folder(folder, store, FakeEncoder())
    assert book.paths_by_label()["elsewhere/renamed.png"].name == "cats"
    assert moved not in book.paths_by_label()


def test_assign_returns_what_restore_puts_back(sorted_folder):
    _, store = sorted_folder
    book = LabelBook(store)
    a, b = book.create("a"), book.create("b")
    first, second = [r.hash for r in store.image_records()][:2]
    book.assign([first], a.id)
    before = book.assign([first, second], b.id, "accepted")
    assert before == {first: (a.id, "user"), second: None}
    book.restore(before)
    assert book.labelled() == {first: a.id}
    book.reject(second, b.id)
    assert book.rejected() == {(second, b.id)}
    book.assign([second], b.id)  # given after all: no longer rejected
    assert book.rejected() == set()
    with pytest.raises(LabelError, match="source"):
        book.assign([first], a.id, "guessed")


def test_export_writes_csv_and_json_and_never_overwrites(sorted_folder, tmp_path):
    folder, store = sorted_folder
    book = LabelBook(store)
    book.from_subfolders()
    first = book.export(tmp_path / "labels.csv", folder)
    second = book.export(tmp_path / "labels.csv", folder)
    assert first.name == "labels.csv" and second.name == "labels (2).csv"
    rows = list(csv.DictReader(first.read_text("utf-8").splitlines()))
    assert len(rows) == 8 and {r["label"] for r in rows} == {"cats", "dogs"}
    assert all((folder / r["path"]).is_file() and r["source"] == "folder" for r in rows)
    as_json = json.loads(book.export(tmp_path / "labels.json", folder).read_text("utf-8"))
    assert as_json == rows


def test_xmp_sidecars_are_new_files_only_and_say_the_keyword(sorted_folder):
    folder, store = sorted_folder
    book = LabelBook(store)
    book.from_subfolders()
    by_path = book.paths_by_label()
    images = {p: hashlib.sha256((folder / p).read_bytes()).hexdigest() for p in by_path}
    taken = folder / f"{next(iter(sorted(by_path)))}.xmp"
    taken.write_text("the user's own sidecar")
    written, skipped = keyword_sidecars(folder, by_path)
    assert len(written) == 7 and skipped == [(taken, skipped[0][1])]
    assert taken.read_text() == "the user's own sidecar"
    ns = {
        "dc": "http://purl.org/dc/elements/1.1/",
        "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    }
    for sidecar in written:
        image = sidecar.relative_to(folder).as_posix()[: -len(".xmp")]
        root = ET.parse(sidecar).getroot()
        words = [li.text for li in root.iterfind(".//dc:subject/rdf:Bag/rdf:li", ns)]
        assert words == [by_path[image].name]
    # the images themselves are untouched
    assert {p: hashlib.sha256((folder / p).read_bytes()).hexdigest() for p in by_path} == images
