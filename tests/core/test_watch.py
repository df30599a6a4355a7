"""Watching a folder on a real filesystem (inotify here): what counts, and bursts."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import distinct_images
from visualsearch.core.watch import FolderWatcher


class Calls:
    def __init__(self) -> None:
        self.calls: list[set[Path]] = []
        self.event = threading.Event()

    def __call__(self, paths: set[Path]) -> None:
        self.calls.append(paths)
        self.event.set()

    def wait(self, seconds: float = 10) -> bool:
        ok = self.event.wait(seconds)
        self.event.clear()
        return ok


@pytest.fixture
def watched(tmp_path):
    root = tmp_path / "photos"
    (root / "store").mkdir(parents=True)
    calls = Calls()
    watcher = FolderWatcher(root, calls, ignore=(root / "store",), quiet_s=0.3)
    assert watcher.start()
    yield root, calls
    watcher.stop()


def test_a_burst_of_new_images_is_one_call(watched, tmp_path):
    root, calls = watched
    for shot in distinct_images(tmp_path / "src", 5, size=48):
        shutil.copy(shot, root / shot.name)
    assert calls.wait()
    time.sleep(0.6)
    assert len(calls.calls) == 1 and {p.name for p in calls.calls[0]} == {
        f"img_{i:03d}.jpg" for i in range(5)
    }


def test_deleted_moved_and_folders_count(watched, tmp_path):
    root, calls = watched
    (shot,) = distinct_images(tmp_path / "src", 1, size=48)
    (root / "album").mkdir()
    shutil.copy(shot, root / "album" / "a.jpg")
    assert calls.wait()
    (root / "album" / "a.jpg").rename(root / "album" / "b.jpg")
    assert calls.wait() and {p.name for p in calls.calls[-1]} == {"a.jpg", "b.jpg"}
    shutil.rmtree(root / "album")
    assert calls.wait() and any(p.name == "album" for p in calls.calls[-1])


def test_what_does_not_count(watched, tmp_path):
    root, calls = watched
    (shot,) = distinct_images(tmp_path / "src", 1, size=48)
    (root / "notes.txt").write_text("not an image")
    (root / ".partial.jpg").write_bytes(shot.read_bytes())  # hidden: a download in progress
    (root / ".thumbs").mkdir()
    shutil.copy(shot, root / ".thumbs" / "t.jpg")
    shutil.copy(shot, root / "store" / "thumb.jpg")  # the collection's own store
    assert not calls.wait(1.5)


def test_reading_the_images_is_not_a_change(tmp_path):
    """The indexer reads every file: a watcher that counted reads would index forever."""
    root = tmp_path / "photos"
    shots = distinct_images(root, 2, size=48)
    calls = Calls()
    watcher = FolderWatcher(root, calls, quiet_s=0.3)
    assert watcher.start()
    try:
        for shot in shots:
            shot.read_bytes()
            shutil.copy(shot, tmp_path / shot.name)  # read, and copied out
        assert not calls.wait(1.5)
    finally:
        watcher.stop()
