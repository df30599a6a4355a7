"""The window words a failure as the CLI does: both take it from core.errors."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from visualsearch.cli import main as cli_main
from visualsearch.core.errors import user_message
from visualsearch.core.indexing import ensure_dir_exists
from visualsearch.qt.workers import WorkerJob


class FailingJob(WorkerJob):
    def __init__(self, work) -> None:
        super().__init__()
        self._work = work

    def work(self) -> object:
        return self._work()


def failure(work) -> str:
    """What the window shows when a background job runs `work` and it fails."""
    job = FailingJob(work)
    shown: list[str] = []
    job.failed.connect(shown.append)
    job.run()
    return shown[0]


def test_a_missing_folder_reads_the_same_in_the_window_and_the_cli(tmp_path, app_paths, capsys):
    missing = tmp_path / "unplugged"
    shown = failure(lambda: ensure_dir_exists(missing))
    assert cli_main(["index", str(missing)], paths=app_paths) == 1
    assert capsys.readouterr().err == f"visualsearch: error: {shown}\n"
    assert shown == f"folder not found: {missing}"


def test_a_damaged_catalog_is_advice_in_the_window_not_an_unexpected_error(tmp_path):
    catalog = tmp_path / "catalog.sqlite"
    catalog.write_bytes(os.urandom(64 * 1024))

    def read() -> None:
        db = sqlite3.connect(catalog)
        try:
            db.execute("SELECT * FROM sqlite_master").fetchall()
        finally:
            db.close()

    shown = failure(read)
    assert not shown.startswith("Unexpected error")  # was: "Unexpected error: DatabaseError"
    assert "damaged" in shown and "index again" in shown


def test_an_os_error_is_worded_for_people(tmp_path):
    gone = tmp_path / "gone.jpg"
    shown = failure(lambda: Path(gone).read_bytes())
    assert shown == f"no such file or directory: {gone}"  # was: "[Errno 2] No such file…"
    with pytest.raises(OSError) as caught:
        gone.read_bytes()
    assert shown == user_message(caught.value)
