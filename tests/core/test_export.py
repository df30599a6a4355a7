"""Export on real files and real filesystems: a full tmpfs, Ctrl+C, re-runs, long names, links."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import distinct_images
from visualsearch.core import analysis
from visualsearch.core.collection_map import CollectionMap
from visualsearch.core.export import (
    MANIFEST,
    ExportItem,
    cluster_items,
    cluster_rows,
    export_groups,
)
from visualsearch.core.progress import CancelToken
from visualsearch.core.safe_files import (
    NAME_MAX,
    folder_name,
    rename_noreplace,
    write_new_text,
)

MB = 1 << 20


def make_files(folder: Path, sizes: dict[str, int]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, size in sizes.items():
        (folder / name).write_bytes(os.urandom(size))
        paths.append(folder / name)
    return paths


def manifest_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def assert_nothing_partial(dest: Path, sources: list[Path]) -> list[Path]:
    """No temporary file is left, and every file under a real name is a whole source."""
    contents = {p.read_bytes() for p in sources}
    real = []
    for path in dest.rglob("*"):
        assert not path.name.endswith(".part"), f"temporary file left: {path}"
        if path.is_file() and not path.name.startswith("visualsearch-export"):
            assert path.read_bytes() in contents, f"partial file under a real name: {path}"
            real.append(path)
    return real


def test_export_copies_never_overwrites_and_writes_a_matching_manifest(tmp_path, photos_dir):
    sources = sorted(photos_dir.iterdir())[:5]
    before = {p: p.read_bytes() for p in sources}
    items = [
        ExportItem(p, "cats/and: dogs" if i < 2 else "coffee", i // 2, 0.5)
        for i, p in enumerate(sources)
    ]
    dest = tmp_path / "out"
    first = export_groups(items, dest)
    assert len(first.written) == 5 and not first.failed and first.renamed == 0
    assert sorted(p.name for p in dest.iterdir()) == sorted(["cats and dogs", "coffee", MANIFEST])
    for src, target in first.written:
        assert target.read_bytes() == before[src] and not target.is_symlink()
        assert target.stat().st_mtime_ns == src.stat().st_mtime_ns

    rows = manifest_rows(first.manifest)
    assert [r["path"] for r in rows] == [t.relative_to(dest).as_posix() for _, t in first.written]
    assert all((dest / r["path"]).exists() for r in rows)
    assert {r["name"] for r in rows} == {"cats/and: dogs", "coffee"}
    assert {r["status"] for r in rows} == {"copied"}

    linked = export_groups(items[:1], tmp_path / "links", link=True)
    target = linked.written[0][1]
    assert target.is_symlink() and os.readlink(target) == str(sources[0])
    assert folder_name("../..") == "unnamed" and folder_name("a/b") == "a b"


def test_export_twice_skips_identical_files_and_never_overwrites_different_ones(
    tmp_path, photos_dir
):
    sources = sorted(photos_dir.iterdir())[:4]
    items = [ExportItem(p, "group") for p in sources]
    dest = tmp_path / "out"
    export_groups(items, dest)
    again = export_groups(items, dest)
    assert not again.written and again.renamed == 0 and len(again.already) == 4
    assert sorted(p.name for p in (dest / "group").iterdir()) == sorted(p.name for p in sources)
    assert again.manifest.name == "visualsearch-export (2).csv"
    assert {r["status"] for r in manifest_rows(again.manifest)} == {"already there"}

    # the same name with other content: a suffix, never an overwrite; then that is "there" too
    other = tmp_path / "other" / sources[0].name
    other.parent.mkdir()
    other.write_bytes(sources[1].read_bytes())
    third = export_groups([ExportItem(other, "group")], dest)
    assert third.renamed == 1 and third.written[0][1].name.endswith(f" (2){other.suffix}")
    assert (dest / "group" / sources[0].name).read_bytes() == sources[0].read_bytes()
    fourth = export_groups([ExportItem(other, "group"), ExportItem(sources[0], "group")], dest)
    assert not fourth.written and [t for _, t in fourth.already] == [
        third.written[0][1],
        dest / "group" / sources[0].name,
    ]

    links = export_groups(items[:2], tmp_path / "links", link=True)
    links_again = export_groups(items[:2], tmp_path / "links", link=True)
    assert not links_again.written and len(links_again.already) == 2
    assert [t for _, t in links_again.already] == [t for _, t in links.written]


def test_full_disk_leaves_no_partial_file_stops_early_and_writes_the_manifest(
    tmp_path, tmpfs_disks
):
    sizes = {f"photo_{i:02d}.bin": 300_000 for i in range(12)}  # 3.6 MB onto 2 MB
    sources = make_files(tmp_path / "src", sizes)
    dest = tmpfs_disks("2m")
    report = export_groups([ExportItem(p, "all") for p in sources], dest)

    real = assert_nothing_partial(dest, sources)
    assert sorted(real) == sorted(t for _, t in report.written)
    assert 0 < len(report.written) < len(sources)
    assert len(report.failed) == 1 and "No space left" in report.failed[0][1]
    assert report.stopped and "No space left" in report.stopped
    done = len(report.written) + len(report.failed)
    assert report.not_exported == sources[done:]  # stopped early, not 12 failures
    assert report.manifest == dest / MANIFEST and not report.manifest_error
    rows = manifest_rows(report.manifest)
    assert [r["path"] for r in rows] == [t.relative_to(dest).as_posix() for _, t in report.written]

    # room again: a re-run fills in the rest and copies nothing twice
    subprocess.run(["mount", "-o", "remount,size=8m", dest], check=True)
    rest = export_groups([ExportItem(p, "all") for p in sources], dest)
    assert len(rest.already) == len(real) and len(rest.written) == len(sources) - len(real)
    assert sorted(p.name for p in (dest / "all").iterdir()) == sorted(sizes)
    assert len(assert_nothing_partial(dest, sources)) == len(sources)


def test_a_disk_too_full_even_for_the_manifest_is_reported_not_a_traceback(tmp_path, tmpfs_disks):
    sources = make_files(tmp_path / "src", {"a.bin": 50_000, "b.bin": 50_000})
    dest = tmpfs_disks("1m")
    (dest / "all").mkdir()
    with open(dest / "filler", "wb", buffering=0) as f, pytest.raises(OSError):
        while True:  # fill every last block
            f.write(os.urandom(4096))
    report = export_groups([ExportItem(p, "all") for p in sources], dest)
    assert report.manifest is None and "No space left" in report.manifest_error
    assert sorted(p.name for p in dest.iterdir()) == ["all", "filler"]  # no empty manifest
    assert not list((dest / "all").iterdir())
    assert len(report.failed) == 1 and report.not_exported == sources[1:]

    with pytest.raises(OSError, match="No space left"):
        write_new_text(dest / "list.csv", lambda f: f.write("x" * 100_000))
    assert sorted(p.name for p in dest.iterdir()) == ["all", "filler"]

    (dest / "filler").unlink()
    first = write_new_text(dest / "list.csv", lambda f: f.write("one"))
    second = write_new_text(dest / "list.csv", lambda f: f.write("caf\udce9"))  # raw byte kept
    assert (first.name, second.name) == ("list.csv", "list (2).csv")
    assert first.read_text() == "one" and second.read_bytes() == b"caf\xe9"
    assert sorted(p.name for p in dest.iterdir()) == ["all", "list (2).csv", "list.csv"]


class InterruptOnCall:
    """A Progress that raises KeyboardInterrupt (as Ctrl+C would) on its nth report."""

    def __init__(self, n: int) -> None:
        self.n, self.calls, self.messages = n, 0, []

    def report(self, done: int, total: int, message: str = "") -> None:
        self.calls += 1
        self.messages.append(message)
        if self.calls == self.n:
            raise KeyboardInterrupt

    def cancelled(self) -> bool:
        return False


def test_ctrl_c_mid_copy_leaves_no_partial_file_and_a_manifest_then_a_rerun_completes(
    tmp_path,
):
    sizes = {"a.bin": 1000, "b.bin": 2000, "c.bin": 3000, "noise_05.bmp": 22 * MB, "d.bin": 10}
    sources = make_files(tmp_path / "src", sizes)
    items = [ExportItem(p, "noise") for p in sources]
    dest = tmp_path / "out"
    progress = InterruptOnCall(5)  # a, b, c, then 4 MB and 8 MB into noise_05.bmp
    with pytest.raises(KeyboardInterrupt) as caught:
        export_groups(items, dest, progress=progress)
    assert "noise_05.bmp" in progress.messages[-1]  # it really was mid-copy

    assert not (dest / "noise" / "noise_05.bmp").exists()
    assert_nothing_partial(dest, sources)
    rows = manifest_rows(dest / MANIFEST)
    assert [r["path"] for r in rows] == ["noise/a.bin", "noise/b.bin", "noise/c.bin"]
    report = caught.value.report
    assert report.interrupted and report.not_exported == sources[3:]

    rerun = export_groups(items, dest)
    assert len(rerun.already) == 3 and [s for s, _ in rerun.written] == sources[3:]
    assert sorted(p.name for p in (dest / "noise").iterdir()) == sorted(sizes)
    assert assert_nothing_partial(dest, sources)


def test_cancel_mid_copy_removes_the_partial_file(tmp_path):
    sources = make_files(tmp_path / "src", {"big.bin": 9 * MB, "small.bin": 10})
    token = CancelToken(on_report=lambda done, total, message: token.cancel())
    report = export_groups([ExportItem(p, "g") for p in sources], tmp_path / "out", False, token)
    assert report.cancelled and not report.written and report.not_exported == sources
    assert not list((tmp_path / "out" / "g").iterdir())
    assert manifest_rows(report.manifest) == []


def test_sigint_to_a_running_export_leaves_no_partial_file_and_a_manifest(tmp_path):
    sources = make_files(tmp_path / "src", {"a.bin": 100, "big.bin": 64 * MB, "z.bin": 100})
    dest = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from visualsearch.core.export import ExportItem, export_groups

        class Slow:  # a slow disk: about 20 ms a megabyte
            def report(self, done, total, message=""):
                pass
            def cancelled(self):
                time.sleep(0.02)
                return False

        sources = [Path(p) for p in {[str(p) for p in sources]!r}]
        export_groups([ExportItem(p, "g") for p in sources], Path({str(dest)!r}), False, Slow())
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (dest / "g").is_dir() or not any(  # the big copy has begun, under any name
            "big" in p.name for p in (dest / "g").iterdir()
        ):
            assert child.poll() is None and time.monotonic() < deadline, "the copy never began"
            time.sleep(0.01)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode != 0 and b"KeyboardInterrupt" in err
    assert sorted(p.name for p in (dest / "g").iterdir()) == ["a.bin"]
    assert [r["path"] for r in manifest_rows(dest / MANIFEST)] == ["g/a.bin"]


def test_long_cluster_and_file_names_are_cut_by_bytes(tmp_path):
    cat = "\U0001f431"  # 4 bytes in UTF-8
    group = cat * 75  # 300 bytes, 75 characters
    stem = "é" * 123  # 246 bytes: with ".jpg" 250, with " (2)" it would be 254 + …
    first = tmp_path / "a" / f"{stem}x.jpg"  # 251 bytes
    second = tmp_path / "b" / first.name
    for i, path in enumerate((first, second)):
        path.parent.mkdir()
        path.write_bytes(bytes([i]) * 100)
    report = export_groups([ExportItem(first, group), ExportItem(second, group)], tmp_path / "o")
    assert not report.failed and len(report.written) == 2
    folder = report.folders[group]
    assert len(os.fsencode(folder.name)) <= NAME_MAX - len(" (9999)")
    assert folder.name == cat * len(folder.name)  # cut between characters
    renamed = report.written[1][1]
    assert renamed.name.endswith(" (2).jpg") and len(os.fsencode(renamed.name)) <= NAME_MAX
    assert renamed.name.startswith("é" * 100) and renamed.read_bytes() == bytes([1]) * 100
    assert len(os.fsencode(folder_name("猫" * 200))) <= NAME_MAX
    assert manifest_rows(report.manifest)[0]["name"] == group


def test_links_inside_the_destination_are_not_followed(tmp_path, photos_dir):
    sources = sorted(photos_dir.iterdir())[:2]
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "coffee").symlink_to(outside)  # a pre-existing symlinked subfolder
    report = export_groups([ExportItem(p, "coffee") for p in sources], dest)
    assert not list(outside.iterdir())
    assert report.folders["coffee"] == dest / "coffee (2)"
    assert report.avoided_links == [dest / "coffee"]
    assert sorted(p.name for p in (dest / "coffee (2)").iterdir()) == sorted(
        p.name for p in sources
    )

    # a link under a file's name, to a file outside: neither written through nor counted
    bait = outside / "bait.jpg"
    bait.write_bytes(sources[0].read_bytes())
    (dest / "coffee (2)" / "x.jpg").symlink_to(bait)
    x = tmp_path / "x.jpg"
    x.write_bytes(b"new")
    again = export_groups([ExportItem(x, "coffee")], dest)
    assert again.written[0][1] == dest / "coffee (2)" / "x (2).jpg"
    assert bait.read_bytes() == sources[0].read_bytes()


def test_a_failed_file_is_reported_and_the_run_goes_on(tmp_path):
    sources = make_files(tmp_path / "src", {"a.bin": 10, "b.bin": 20})
    missing = tmp_path / "src" / "gone.bin"
    fifo = tmp_path / "src" / "pipe.bin"
    os.mkfifo(fifo)  # must not hang the export
    items = [ExportItem(p, "g") for p in (missing, fifo, *sources)]
    result: list = []
    worker = threading.Thread(target=lambda: result.append(export_groups(items, tmp_path / "out")))
    worker.start()
    worker.join(60)
    if worker.is_alive():  # stuck opening the FIFO: a writer lets it go, then fail
        os.close(os.open(fifo, os.O_WRONLY))
        worker.join()
        pytest.fail("the export blocked on a FIFO")
    report = result[0]
    assert [s for s, _ in report.failed] == [missing, fifo] and not report.stopped
    assert [s for s, _ in report.written] == sources


def test_the_no_hard_link_fallback_never_replaces(tmp_path):
    """Where a filesystem has no hard links (FAT), a no-replace rename puts files in place."""
    (tmp_path / "tmp").write_bytes(b"new")
    (tmp_path / "taken").write_bytes(b"old")
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        with pytest.raises(FileExistsError):
            rename_noreplace(fd, "tmp", "taken")
        rename_noreplace(fd, "tmp", "free")
    finally:
        os.close(fd)
    assert (tmp_path / "taken").read_bytes() == b"old" and (
        tmp_path / "free"
    ).read_bytes() == b"new"
    assert not (tmp_path / "tmp").exists()


def test_cluster_items_name_folders_as_the_user_sees_the_clusters(tmp_path):
    """The CLI's `export` and the window's Export share what goes into which folder."""
    folder = tmp_path / "photos"
    paths = [p.name for p in distinct_images(folder, 12, size=64)]
    rng = np.random.default_rng(0)
    centres = np.eye(8, dtype=np.float32)[:3] * 4  # three clear groups of four
    vectors = centres[np.arange(12) % 3] + rng.standard_normal((12, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    clustering = analysis.cluster(vectors, k=3)
    names = [f"cluster {c}" for c in range(3)]
    scores = np.einsum("ij,ij->i", vectors, clustering.centres[clustering.labels])
    cmap = CollectionMap(
        paths, vectors, np.zeros((12, 2)), clustering, names, list(names), [[]] * 3, scores
    )
    cmap.names[1] = "Holiday: cars/yurts"  # renamed by the user, as the window does
    rows = cluster_rows(cmap, [1, 0, 1])
    assert rows == cmap.members(0) + cmap.members(1)  # each cluster once, in number order
    items = cluster_items(cmap, folder, rows)
    assert [i.source for i in items] == [folder / cmap.paths[r] for r in rows]
    assert [i.cluster for i in items] == [int(cmap.labels[r]) for r in rows]
    assert {i.group for i in items if i.cluster == 1} == {"Holiday: cars/yurts"}
    assert [i.score for i in items] == [pytest.approx(float(cmap.scores[r])) for r in rows]
    with pytest.raises(ValueError, match=r"no cluster \[3, 7\]: there are 3 \(0-2\)"):
        cluster_rows(cmap, [0, 7, 3])

    report = export_groups(items, tmp_path / "out")
    written = Counter(target.parent.name for _, target in report.written)
    assert written == {
        folder_name("Holiday: cars/yurts"): len(cmap.members(1)),
        folder_name(cmap.names[0]): len(cmap.members(0)),
    }
