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


def test_attribute_changes_are_not_a_change(tmp_path):
    """A read that updates the access time (relatime) or a chmod is an attribute event;
    counting them made the library keeper look again at every file it had just read."""
    import os

    root = tmp_path / "photos"
    shots = distinct_images(root, 2, size=48)
    for shot in shots:  # accessed before modified: the next read updates the access time
        modified = shot.stat().st_mtime_ns
        os.utime(shot, ns=(modified - 10**12, modified))
    calls = Calls()
    watcher = FolderWatcher(root, calls, quiet_s=0.3)
    assert watcher.start()
    try:
        shots[0].read_bytes()
        shots[1].chmod(0o600)
        assert not calls.wait(1.5)
        shots[1].write_bytes(shots[0].read_bytes())  # a change of content still counts
        assert calls.wait() and {p.name for p in calls.calls[-1]} == {shots[1].name}
    finally:
        watcher.stop()


# -- indexing only what the watcher saw change ----------------------------------------


def _catalog(store) -> dict:
    return {p: (r.size, r.mtime_ns, r.hash) for p, r in store.file_records().items()}


def test_a_run_over_the_changed_paths_only_matches_a_whole_scan(tmp_path):
    """What a watcher reports (files added, changed, deleted, a folder moved away and
    one moved in) is indexed by looking at those paths only: the catalog ends as a
    whole scan leaves it, and a change the watcher did not report is not looked at."""
    from tests.fakes import FakeEncoder
    from visualsearch.core.indexing import IndexOptions, index_folder
    from visualsearch.core.store import Store

    root = tmp_path / "photos"
    shots = distinct_images(tmp_path / "src", 12, size=48)
    for folder, part in (("a", shots[:3]), ("ab", shots[3:5]), ("c", shots[5:7])):
        (root / folder).mkdir(parents=True)
        for shot in part:
            shutil.copy(shot, root / folder / shot.name)
    odd = b"caf\xe9.jpg".decode("utf-8", "surrogateescape")  # a name that is not UTF-8
    shutil.copy(shots[7], root / "a" / odd)
    enc = FakeEncoder()
    with Store(tmp_path / "store") as store:
        index_folder(root, store, enc)
        old_hash = store.record(f"c/{shots[5].name}").hash
        shutil.copy(shots[8], root / "c" / "new.jpg")  # added
        shutil.copy(shots[9], root / "c" / shots[5].name)  # changed
        (root / "c" / shots[6].name).unlink()  # deleted
        shutil.move(root / "a", tmp_path / "a-away")  # a folder moved out (prefix of "ab")
        (root / "d").mkdir()
        shutil.copy(shots[10], root / "d" / "in.jpg")  # a folder moved in
        (root / "ab" / shots[3].name).unlink()  # not reported: not looked at
        (root / "ab" / shots[4].name).rename(root / "moved.jpg")  # moved: nothing encoded
        changed = ("c/new.jpg", f"c/{shots[5].name}", f"c/{shots[6].name}", "a", "d")
        changed += (f"ab/{shots[4].name}", "moved.jpg")
        seen = enc.images_seen
        report = index_folder(root, store, enc, options=IndexOptions(only=changed))
        assert (report.new, report.changed, report.removed) == (3, 1, 6)
        assert report.scanned == 4 and report.reused == 1
        assert enc.images_seen - seen == 3  # the moved file's vector was found by its hash
        assert old_hash not in store.known_hashes(enc.id)  # the changed file's old vector
        targeted = _catalog(store)
        assert f"ab/{shots[3].name}" in targeted and "moved.jpg" in targeted
        assert not any(p.startswith("a/") for p in targeted)

    shutil.copy(shots[3], root / "ab" / shots[3].name)  # as it was: a whole scan agrees
    with Store(tmp_path / "whole") as whole:
        index_folder(root, whole, enc)
        assert _catalog(whole).keys() == targeted.keys()
        assert {p: v[2] for p, v in _catalog(whole).items()} == {
            p: v[2] for p, v in targeted.items()
        }


def test_a_run_over_changed_paths_keeps_the_whole_scans_problems(tmp_path):
    """The problems a whole scan found (hidden folders, unreadable files) stay listed
    after a run that looked at a few paths; a hidden path reported is never indexed."""
    from tests.fakes import FakeEncoder
    from visualsearch.core.folder import ModelChoice, index_and_record, scan_problems
    from visualsearch.core.indexing import IndexOptions
    from visualsearch.core.store import Store

    root = tmp_path / "photos"
    (root / ".hidden").mkdir(parents=True)
    shots = distinct_images(tmp_path / "src", 2, size=48)
    shutil.copy(shots[0], root / "x.jpg")
    shutil.copy(shots[1], root / ".hidden" / "y.jpg")
    enc, model = FakeEncoder(), ModelChoice("builtin")
    with Store(tmp_path / "store") as store:
        index_and_record(root, store, enc, model)
        problems = scan_problems(store)
        assert [p for p, _ in problems] == [".hidden"]
        (root / "x.jpg").unlink()
        only = IndexOptions(only=("x.jpg", ".hidden/y.jpg"))
        report = index_and_record(root, store, enc, model, options=only)
        assert report.removed == 1 and report.new == 0
        assert list(store.file_records()) == []
        assert scan_problems(store) == problems


def test_a_run_over_changed_paths_handles_odd_names_and_links_like_a_whole_scan(tmp_path):
    """A folder whose name is not UTF-8 (its paths are BLOB keys) raised
    UnicodeEncodeError; a link inside a new folder to a folder of the collection listed
    the whole collection again under the link (a whole scan lists it once, by its real
    path); paths outside the folder are ignored."""
    from tests.fakes import FakeEncoder
    from visualsearch.core.indexing import IndexOptions, index_folder
    from visualsearch.core.store import Store

    root = tmp_path / "photos"
    odd = b"caf\xe9".decode("utf-8", "surrogateescape")
    (root / odd).mkdir(parents=True)
    (root / "lib").mkdir()
    shots = distinct_images(tmp_path / "src", 5, size=48)
    for shot in shots[:3]:
        shutil.copy(shot, root / odd / shot.name)
    for shot in shots[3:]:
        shutil.copy(shot, root / "lib" / shot.name)
    enc = FakeEncoder()
    with Store(tmp_path / "store") as store:
        index_folder(root, store, enc)
        (root / odd / shots[0].name).unlink()
        (root / "album").mkdir()
        (root / "album" / "lib-link").symlink_to(root / "lib")
        (root / "album" / "up").symlink_to(root)
        only = (odd, "album", str(tmp_path / "src" / shots[0].name), "../src")
        report = index_folder(root, store, enc, options=IndexOptions(only=only))
        assert report.removed == 1 and report.new == 0
        targeted = sorted(store.file_records())
    with Store(tmp_path / "whole") as whole:
        index_folder(root, whole, enc)
        assert sorted(whole.file_records()) == targeted
    assert f"{odd}/{shots[1].name}" in targeted and not any("album" in p for p in targeted)
