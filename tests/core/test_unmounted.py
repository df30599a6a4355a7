"""A drive that is not mounted looks like an empty folder: its catalog must survive.
Real tmpfs mounts (the tests run as root; skipped where mounting is not allowed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import distinct_images
from tests.fakes import FakeEncoder
from visualsearch.core.indexing import IndexOptions, index_folder
from visualsearch.core.store import Store, StoreError


def _mount(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(path)], check=True)


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], check=True)


@pytest.fixture
def mounts():
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"vs-mount-probe-{os.getpid()}"
    try:
        _mount(probe)
        _umount(probe)
    except (subprocess.CalledProcessError, OSError):
        pytest.skip("mounting a tmpfs is not allowed here")
    finally:
        probe.rmdir()
    mounted: list[Path] = []

    def mount(path: Path) -> None:
        _mount(path)
        mounted.append(path)

    def umount(path: Path) -> None:
        _umount(path)
        mounted.remove(path)

    yield mount, umount
    for path in reversed(mounted):
        subprocess.run(["umount", str(path)], check=False)


def _fill(drive: Path, originals: list[Path]) -> None:
    for p in originals:
        shutil.copy2(p, drive / p.name)  # same bytes, same mtime: a re-plugged drive


def test_an_unmounted_drive_keeps_its_catalog_and_replugging_encodes_nothing(tmp_path, mounts):
    mount, umount = mounts
    originals = distinct_images(tmp_path / "originals", 12, size=64)
    drive = tmp_path / "drive"
    mount(drive)
    _fill(drive, originals)
    store = Store(tmp_path / "store", root=drive)
    encoder = FakeEncoder()
    assert index_folder(drive, store, encoder).encoded == 12

    umount(drive)  # the empty mount point is left
    report = index_folder(drive, store, encoder)
    assert report.removed == 0 and report.missing_kept == 12
    assert "unmounted" in report.warning
    assert store.vector_counts() == {encoder.id: 12} and store.counts()["thumbnails"] == 12

    mount(drive)
    _fill(drive, originals)
    again = index_folder(drive, store, encoder)
    assert (again.encoded, again.unchanged, again.removed) == (0, 12, 0)


def test_a_folder_on_another_filesystem_than_before_forgets_nothing(tmp_path, mounts):
    """The mount point holds stray files of the disk below: not empty, but another drive."""
    mount, umount = mounts
    originals = distinct_images(tmp_path / "originals", 6, size=64)
    drive = tmp_path / "drive"
    drive.mkdir()
    shutil.copy2(originals[0], drive / "left-on-the-disk-below.jpg")
    mount(drive)
    _fill(drive, originals[1:])
    store = Store(tmp_path / "store", root=drive)
    index_folder(drive, store, FakeEncoder())
    umount(drive)
    report = index_folder(drive, store, FakeEncoder())
    assert report.removed == 0 and report.missing_kept == 5
    assert "another drive" in report.warning
    assert len(store.load_vectors(FakeEncoder.id)[0]) == 6


def test_a_subfolder_mount_point_keeps_its_files_while_real_deletions_go(tmp_path, mounts):
    mount, umount = mounts
    root = tmp_path / "library"
    distinct_images(root / "home-photos", 4, size=64)
    drive = root / "usb-drive"
    mount(drive)
    _fill(drive, distinct_images(tmp_path / "usb-src", 5, size=48))
    store = Store(tmp_path / "store", root=root)
    index_folder(root, store, FakeEncoder())
    umount(drive)
    (root / "home-photos" / "img_000.jpg").unlink()  # deleted for real
    report = index_folder(root, store, FakeEncoder())
    assert report.removed == 1 and report.missing_kept == 5
    assert "usb-drive" in report.warning

    forget = index_folder(root, store, FakeEncoder(), options=IndexOptions(forget_missing=True))
    assert forget.removed == 5 and store.counts()["files"] == 3


def test_an_emptied_folder_keeps_its_catalog_until_asked(tmp_path):
    """No mount needed: every file gone at once looks like an unplugged drive too."""
    folder = tmp_path / "photos"
    distinct_images(folder, 5, size=64)
    store = Store(tmp_path / "store", root=folder)
    index_folder(folder, store, FakeEncoder())
    for p in folder.iterdir():
        p.unlink()
    report = index_folder(folder, store, FakeEncoder())
    assert report.removed == 0 and report.missing_kept == 5
    forget = index_folder(folder, store, FakeEncoder(), options=IndexOptions(forget_missing=True))
    assert forget.removed == 5


def test_two_indexers_on_one_store_encode_each_image_once(tmp_path):
    """The second run waits for the first and then finds the work done."""
    folder = tmp_path / "photos"
    distinct_images(folder, 40, size=64)
    encoders = [FakeEncoder(), FakeEncoder()]
    reports = []

    def run(encoder):
        with Store(tmp_path / "store", root=folder) as store:
            reports.append(index_folder(folder, store, encoder, options=IndexOptions(batch_size=4)))

    threads = [threading.Thread(target=run, args=(e,)) for e in encoders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(e.images_seen for e in encoders) == 40
    assert sorted(r.encoded for r in reports) == [0, 40]


def test_a_new_store_opened_by_three_at_once_opens_for_each(tmp_path):
    """Making a new catalog WAL while another connection opened it failed at once
    ("database is locked", then "in use by another visualsearch"), without the wait a
    busy store gets: two indexers starting together on a new store (a CI run saw it;
    three at once failed 14 times in 200)."""
    failed = []
    for attempt in range(100):
        start = threading.Barrier(3)

        def open_store(where=tmp_path / f"store-{attempt}", start=start) -> None:
            start.wait()
            try:
                with Store(where) as store:
                    store.get_meta("schema_version")
            except StoreError as exc:
                failed.append(exc)

        threads = [threading.Thread(target=open_store) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not failed, failed[:1]
