"""The user-facing messages of core.errors, from real failures: a full tmpfs, a held
lock, a damaged catalog, missing files (no exception is made up)."""

from __future__ import annotations

import os
import sqlite3

import pytest

from tests.conftest import distinct_images, fill_disk
from tests.fakes import FakeEncoder
from visualsearch.core.collection import Collection, NotIndexed
from visualsearch.core.errors import as_sentence, is_user_error, user_message
from visualsearch.core.indexing import ensure_dir_exists, index_folder
from visualsearch.core.store import CATALOG, Store, StoreError


def test_a_disk_filling_up_while_indexing_is_a_full_disk_not_damage(small_disk, tmp_path):
    """Was: 'the catalog is damaged … move that folder aside' (CLI) or 'Unexpected
    error' (window), for a disk that was only full."""
    folder = tmp_path / "photos"
    distinct_images(folder, 1)
    with Store(small_disk / "store", root=folder) as store:
        index_folder(folder, store, FakeEncoder())
        distinct_images(folder / "more", 12)
        fill_disk(small_disk)
        with pytest.raises(sqlite3.DatabaseError) as caught:
            index_folder(folder, store, FakeEncoder())
    message = user_message(caught.value, small_disk / "store")
    assert is_user_error(caught.value)
    assert "is full" in message and "damaged" not in message and str(small_disk) in message


def test_opening_a_store_on_a_full_disk_says_so(small_disk, tmp_path):
    folder = tmp_path / "photos"
    distinct_images(folder, 1)
    with Store(small_disk / "store", root=folder) as store:
        index_folder(folder, store, FakeEncoder())
    fill_disk(small_disk)
    with pytest.raises(StoreError) as caught:  # sqlite fails to map its shared memory
        Store(small_disk / "store", root=folder)
    assert "is full" in user_message(caught.value) and "damaged" not in str(caught.value)
    (small_disk / "filler").unlink()
    with Store(small_disk / "store", root=folder) as store:  # nothing was lost
        assert len(store.file_records()) == 1


def test_a_store_held_by_another_program_is_in_use_not_damaged(tmp_path):
    with Store(tmp_path / "store") as store:
        store.set_meta("x", "1")
    holder = sqlite3.connect(tmp_path / "store" / CATALOG)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        other = sqlite3.connect(tmp_path / "store" / CATALOG, timeout=0)
        with pytest.raises(sqlite3.OperationalError) as caught:
            other.execute("INSERT INTO meta VALUES ('y', '2')")
        other.close()
    finally:
        holder.rollback()
        holder.close()
    message = user_message(caught.value, tmp_path / "store")
    assert "in use" in message and "damaged" not in message


def test_a_damaged_catalog_says_move_it_aside(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / CATALOG).write_bytes(os.urandom(64 * 1024))
    db = sqlite3.connect(tmp_path / "store" / CATALOG)
    with pytest.raises(sqlite3.DatabaseError) as caught:
        db.execute("SELECT * FROM sqlite_master").fetchall()
    db.close()
    message = user_message(caught.value, tmp_path / "store")
    assert "damaged" in message and f"mv '{tmp_path / 'store'}'" in message
    with pytest.raises(StoreError) as opened:  # the same words when the store opens it
        Store(tmp_path / "store")
    assert "damaged" in user_message(opened.value) and "move" in user_message(opened.value)
    unknown = user_message(caught.value)  # no folder known: no made-up mv command
    assert "damaged" in unknown and "store folder aside" in unknown and "mv" not in unknown


def test_folder_and_file_messages_are_readable(tmp_path):
    with pytest.raises(OSError) as missing:
        ensure_dir_exists(tmp_path / "nope")
    assert user_message(missing.value) == f"folder not found: {tmp_path / 'nope'}"
    with pytest.raises(OSError) as raw:
        (tmp_path / "gone.jpg").read_bytes()
    assert user_message(raw.value) == f"no such file or directory: {tmp_path / 'gone.jpg'}"
    empty = tmp_path / "empty"
    empty.mkdir()
    with Store(tmp_path / "store", root=empty) as store, pytest.raises(NotIndexed) as caught:
        Collection(empty, store, FakeEncoder()).search_vector(FakeEncoder().embed_text(["x"]))
    assert user_message(caught.value).startswith("no images indexed with fake-v1")


def test_a_bug_is_not_dressed_up_as_advice():
    try:
        {}["missing"]
    except KeyError as exc:
        assert not is_user_error(exc)
        assert user_message(exc) == "unexpected error: KeyError('missing')"


def test_as_sentence_for_a_message_bar():
    assert as_sentence("folder not found: /x") == "Folder not found: /x."
    assert as_sentence("Done.") == "Done." and as_sentence("") == ""
