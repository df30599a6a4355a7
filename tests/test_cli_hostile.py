"""The CLI against hostile names, damaged stores and odd requests (issue 10, item 5 and 8)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import distinct_images, fill_disk
from tests.fakes import FakeEncoder
from tests.test_cli import run_cli
from visualsearch.core.collection import Collection
from visualsearch.core.folder import system_folder_warning
from visualsearch.core.indexing import index_folder
from visualsearch.core.names import printable
from visualsearch.core.query import ImageQuery, TextQuery, run_query
from visualsearch.core.store import CATALOG, Store

LATIN1_NAME = os.fsdecode(b"caf\xe9.jpg")  # not valid UTF-8: a name from an old camera/Windows
ESCAPE_NAME = "evil\x1b[31mred\nsecond line.jpg"


@pytest.fixture(scope="module")
def hostile_names(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("names")
    a, b, c = distinct_images(folder / "src", 3)
    shutil.move(a, folder / "a.jpg")
    shutil.move(b, folder / LATIN1_NAME)
    shutil.move(c, folder / ESCAPE_NAME)
    (folder / "src").rmdir()
    return folder


def test_a_name_that_is_not_utf8_is_indexed_and_kept_losslessly(hostile_names, tmp_path):
    store = Store(tmp_path / "store", root=hostile_names)
    report = index_folder(hostile_names, store, FakeEncoder())  # was: every run aborted
    assert report.failed == 0 and report.encoded == 3
    assert LATIN1_NAME in store.file_records()
    assert os.fsencode(LATIN1_NAME) == b"caf\xe9.jpg"  # the very bytes, stored and read back
    col = Collection(hostile_names, store, FakeEncoder())
    query = ImageQuery(hostile_names / LATIN1_NAME, include_self=True)
    assert run_query(col, query, k=1).hits[0].path == hostile_names / LATIN1_NAME
    assert index_folder(hostile_names, store, FakeEncoder()).unchanged == 3  # and found again
    (hostile_names / LATIN1_NAME).rename(hostile_names / "moved.jpg")
    try:
        again = index_folder(hostile_names, store, FakeEncoder())
        assert again.removed == 1 and again.moved == 1
    finally:
        (hostile_names / "moved.jpg").rename(hostile_names / LATIN1_NAME)


def test_cli_prints_hostile_names_escaped_never_raw(hostile_names, app_paths, capsys, tmp_path):
    store = str(tmp_path / "store")
    code, out, err = run_cli(capsys, app_paths, "index", str(hostile_names), "--store", store)
    assert code == 0, err
    assert "3 encoded" in out
    code, out, err = run_cli(
        capsys, app_paths, "search", str(hostile_names), "a photo", "--store", store
    )
    assert code == 0, err
    assert "\x1b" not in out and "caf\\xe9.jpg" in out and "evil\\x1b[31mred\\nsecond" in out
    rows = [line for line in out.splitlines() if line.startswith("  ")]
    assert len(rows) == 3  # one line per image: a newline in a name cannot add one
    code, out, _ = run_cli(
        capsys, app_paths, "search", str(hostile_names), "a photo", "--store", store, "--json"
    )
    paths = {Path(h["path"]).name for h in json.loads(out)}
    assert LATIN1_NAME in paths and ESCAPE_NAME in paths  # JSON keeps the real name


def test_a_folder_whose_own_name_is_not_utf8_is_indexed_and_searched(app_paths, capsys, tmp_path):
    """Opening it failed at once: "'utf-8' codec can't encode character '\\udce9'" (the
    store keeps the folder's real path, and could not keep this one)."""
    folder = tmp_path / os.fsdecode(b"caf\xe9-photos")
    distinct_images(folder, 2, size=64)
    code, out, err = run_cli(capsys, app_paths, "index", str(folder))
    assert code == 0, err
    assert "2 encoded" in out
    code, out, err = run_cli(capsys, app_paths, "search", str(folder), "a photo")
    assert code == 0, err
    assert len([line for line in out.splitlines() if line.startswith("  ")]) == 2


def test_printable_shows_what_a_name_hides():
    assert printable("a\nb\tc\x1b[0m") == "a\\nb\\tc\\x1b[0m"
    assert printable(LATIN1_NAME) == "caf\\xe9.jpg"
    assert printable("café 東京.jpg") == "café 東京.jpg"


def test_info_on_a_folder_never_indexed_creates_nothing(tmp_path, app_paths, capsys):
    folder = tmp_path / "never"
    distinct_images(folder, 2, size=32)
    store = tmp_path / "store"
    code, out, _ = run_cli(capsys, app_paths, "info", str(folder), "--store", str(store))
    assert code == 0 and "not been indexed" in out
    assert not store.exists()
    code, out, _ = run_cli(capsys, app_paths, "info", str(folder), "--json")
    assert json.loads(out)["store"] is None


def test_a_system_root_gets_a_warning():
    assert "system folder" in system_folder_warning(Path("/"))
    assert "system folder" in system_folder_warning(Path("/usr"))
    assert system_folder_warning(Path.home() / "Pictures") == ""


def test_deleted_files_filling_the_top_results_are_replaced_by_the_next(tmp_path):
    """All of the top-k deleted since indexing: search said 'no match reaches None'."""
    folder = tmp_path / "photos"
    paths = distinct_images(folder, 30, size=64)
    store = Store(tmp_path / "store", root=folder)
    index_folder(folder, store, FakeEncoder())
    col = Collection(folder, store, FakeEncoder())
    top = run_query(col, TextQuery("x"), k=5).hits
    for hit in top:
        hit.path.unlink()
    result = run_query(col, TextQuery("x"), k=5)
    assert len(result.hits) == 5 and result.missing == 5
    assert not {h.path for h in result.hits} & {h.path for h in top}
    assert len(paths) == 30


def test_json_output_is_strict_even_with_a_damaged_vector(tmp_path, app_paths, capsys):
    folder = tmp_path / "photos"
    distinct_images(folder, 8, size=64)
    store_dir = tmp_path / "store"
    assert run_cli(capsys, app_paths, "index", str(folder), "--store", str(store_dir))[0] == 0
    with sqlite3.connect(store_dir / CATALOG) as db:
        (dim,) = db.execute("SELECT length(vector) / 2 FROM vectors LIMIT 1").fetchone()
        db.execute(
            "UPDATE vectors SET vector=? WHERE hash = (SELECT MIN(hash) FROM vectors)",
            (np.full(dim, np.nan, np.float16).tobytes(),),
        )
    code, out, err = run_cli(
        capsys, app_paths, "outliers", str(folder), "--store", str(store_dir), "--json"
    )
    assert code == 0, err

    def no_constants(name):
        raise AssertionError(f"{name} in JSON output")

    scores = [h["score"] for h in json.loads(out, parse_constant=no_constants)]
    assert len(scores) == 7 and all(np.isfinite(scores))


def test_a_damaged_catalog_is_one_line_not_a_traceback(tmp_path, app_paths, capsys):
    folder = tmp_path / "photos"
    distinct_images(folder, 3, size=64)
    store_dir = tmp_path / "store"
    assert run_cli(capsys, app_paths, "index", str(folder), "--store", str(store_dir))[0] == 0
    (store_dir / CATALOG).write_bytes(os.urandom(64 * 1024))
    for extra in ("-wal", "-shm"):
        (store_dir / (CATALOG + extra)).unlink(missing_ok=True)
    code, _out, err = run_cli(
        capsys, app_paths, "search", str(folder), "cat", "--store", str(store_dir)
    )
    assert code == 1 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "damaged" in err and "move" in err
    assert sorted(p.name for p in folder.iterdir()) == [f"img_{i:03d}.jpg" for i in range(3)]


def test_ctrl_c_during_index_exits_130_and_the_rerun_encodes_exactly_the_rest(tmp_path):
    """The process leaves at once after Ctrl+C (no slow teardown), with every finished
    batch committed: the rerun encodes exactly what is missing."""
    import signal
    import sys

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(160):
        noise = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
        Image.fromarray(noise).save(folder / f"n{i:03d}.jpg")
    store = tmp_path / "store"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    cmd = [
        sys.executable,
        "-m",
        "visualsearch",
        "index",
        str(folder),
        "--model",
        "builtin",
        "--store",
        str(store),
    ]
    with subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True) as proc:
        for line in proc.stderr:
            if "/160 images" in line:  # batches are being committed
                break
        proc.send_signal(signal.SIGINT)
        err = proc.stderr.read()
        assert proc.wait(timeout=30) == 130 and "Interrupted" in err
    with sqlite3.connect(store / CATALOG) as db:
        (committed,) = db.execute("SELECT COUNT(*) FROM vectors").fetchone()
    assert 0 < committed < 160
    rerun = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, check=True)
    assert json.loads(rerun.stdout)["encoded"] == 160 - committed


def test_a_full_disk_under_the_store_is_named_not_called_damage(
    tmp_path, app_paths, capsys, small_disk
):
    """Was: 'the catalog … is damaged … move that folder aside', for a disk that was full."""
    folder = tmp_path / "photos"
    distinct_images(folder, 2, size=64)
    fill_disk(small_disk)
    code, out, err = run_cli(
        capsys, app_paths, "index", str(folder), "--store", str(small_disk / "store")
    )
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "is full" in err and "damaged" not in err and str(small_disk / "store") in err


def test_each_command_closes_its_stores(tmp_path, app_paths, capsys, monkeypatch):
    """A command's store stayed open until Python collected it, and closing it then
    checkpointed its WAL into the catalog file: a catalog damaged (or replaced) after
    the command had ended came back whole, and the damaged-catalog test above passed or
    failed with the collector's timing. Each store is closed when its command ends."""
    import sqlite3

    import visualsearch.cli as cli

    opened = []
    real = cli._open_store

    def keep(*args, **kwargs):  # a reference kept elsewhere (a traceback, a cache…)
        opened.append(real(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(cli, "_open_store", keep)
    folder = tmp_path / "photos"
    distinct_images(folder, 3, size=64)
    store_dir = tmp_path / "store"
    for argv in (("index",), ("search", "cat")):
        code, _out, err = run_cli(
            capsys, app_paths, argv[0], str(folder), *argv[1:], "--store", str(store_dir)
        )
        assert code == 0, err
    assert len(opened) == 2
    for store in opened:
        with pytest.raises(sqlite3.ProgrammingError):
            store.conn.execute("SELECT 1")
    (store_dir / CATALOG).write_bytes(os.urandom(64 * 1024))
    for extra in ("-wal", "-shm"):
        (store_dir / (CATALOG + extra)).unlink(missing_ok=True)
    for store in opened:
        store.close()  # what the collector did, late: the damage stays
    code, _out, err = run_cli(
        capsys, app_paths, "search", str(folder), "cat", "--store", str(store_dir)
    )
    assert code == 1 and "damaged" in err
