"""Applying a sort (copy, link, move into label folders) and undoing it, on real files and
real filesystems: taken names, a killed run, another filesystem, a full disk, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from visualsearch.core import sort_moves
from visualsearch.core.progress import CancelToken
from visualsearch.core.sort_moves import (
    PlannedStep,
    SortItem,
    SortJournalError,
    apply_sort,
    last_journal,
    plan_sort,
    sort_plan,
    undo_sort,
)

REPO = Path(__file__).resolve().parents[2]


def make_image(path: Path, seed: int, side: int = 24, noise: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if noise:  # incompressible: a large file
        image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    else:
        image = Image.new("RGB", (side, side), ((seed * 37) % 256, (seed * 91) % 256, seed % 256))
        image.putpixel((seed % side, 0), (255 - seed % 256, 0, 0))
    image.save(path, "JPEG", quality=95)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, str]:
    """Every file under `root` (hidden ones included) and its content hash."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            p = Path(folder) / name
            out[p.relative_to(root).as_posix()] = "link" if p.is_symlink() else sha(p)
    return out


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            st = os.lstat(Path(folder) / name)
            out[str(Path(folder, name).relative_to(root))] = (
                st.st_mode,
                st.st_size,
                st.st_mtime_ns,
            )
    return out


def hidden_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.is_file()]


@pytest.fixture
def photos(tmp_path) -> tuple[Path, list[SortItem]]:
    """Five photos in two folders (two named a.jpg), labelled cats and dogs."""
    src = tmp_path / "src"
    paths = [
        make_image(src / "a.jpg", 1),
        make_image(src / "b.jpg", 2),
        make_image(src / "sub" / "a.jpg", 3),
        make_image(src / "sub" / "c.jpg", 4),
        make_image(src / "d.jpg", 5),
    ]
    labels = ["cats", "dogs", "cats", "dogs", "cats"]
    return src, [SortItem(p, label) for p, label in zip(paths, labels, strict=True)]


def journal_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- 1. move and undo --------------------------------------------------------------------


def test_move_into_label_folders_then_undo_restores_every_file(tmp_path, photos):
    src, items = photos
    before = tree(src)
    dest, journals = tmp_path / "sorted", tmp_path / "journals"
    make_image(dest / "cats" / "a.jpg", 99)  # already there: never touched
    theirs = sha(dest / "cats" / "a.jpg")
    reports = []
    progress = CancelToken(on_report=lambda *args: reports.append(args))

    report = apply_sort(items, dest, "move", journals, progress)

    assert not report.failed and not report.skipped and not report.stopped
    assert [d.relative_to(dest).as_posix() for _, d in report.done] == [
        "cats/a (2).jpg",
        "dogs/b.jpg",
        "cats/a (3).jpg",
        "dogs/c.jpg",
        "cats/d.jpg",
    ]
    assert sha(dest / "cats" / "a.jpg") == theirs
    assert tree(src) == {}  # every file moved
    for source, target in report.done:
        assert sha(target) == before[source.relative_to(src).as_posix()]
    assert [r[:2] for r in reports] == [(n, 5) for n in range(1, 6)]
    assert last_journal(journals) == report.journal

    lines = journal_lines(report.journal)
    assert lines[0]["type"] == "sort" and lines[0]["mode"] == "move"
    steps = [r for r in lines if r["type"] == "step"]
    assert [(Path(s["source"]), Path(s["dest"])) for s in steps] == report.done
    assert all(s["sha256"] == before[Path(s["source"]).relative_to(src).as_posix()] for s in steps)

    undo = undo_sort(report.journal)

    assert tree(src) == before
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == ["cats", "cats/a.jpg"]
    assert sha(dest / "cats" / "a.jpg") == theirs
    assert sorted(undo.restored) == sorted((s, s) for s, _ in report.done)
    assert undo.folders_removed == [dest / "dogs"]  # cats was there before
    assert undo.undone and undo.journal.name.endswith(".undone.jsonl")
    assert not report.journal.exists() and last_journal(journals) is None
    with pytest.raises(SortJournalError, match="already undone"):
        undo_sort(report.journal)
    with pytest.raises(SortJournalError, match="already undone"):
        undo_sort(undo.journal)


def test_undo_of_a_move_never_overwrites_what_took_the_original_path(tmp_path, photos):
    src, items = photos
    before = tree(src)
    dest = tmp_path / "sorted" / "deep"  # the sort makes sorted/ and deep/ too
    report = apply_sort(items, dest, "move", tmp_path / "journals")
    assert len(report.done) == 5
    make_image(src / "a.jpg", 50)  # a new file where a moved one was
    newcomer = sha(src / "a.jpg")
    (src / "sub").rmdir()  # the user removed the emptied folder
    edited = dest / "dogs" / "b.jpg"
    edited.write_bytes(edited.read_bytes() + b"edited")

    undo = undo_sort(report.journal)

    assert sha(src / "a.jpg") == newcomer
    assert sha(src / "a (2).jpg") == before["a.jpg"]
    assert undo.restored_elsewhere == [(src / "a.jpg", src / "a (2).jpg")]
    assert sha(src / "sub" / "a.jpg") == before["sub/a.jpg"]
    assert sha(src / "sub" / "c.jpg") == before["sub/c.jpg"]
    assert undo.kept == [(edited, "changed since the sort: left where it is")]
    assert not (src / "b.jpg").exists() and edited.exists()
    # only the folder still holding the edited file stays
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "sorted").rglob("*")) == [
        "sorted/deep",
        "sorted/deep/dogs",
        "sorted/deep/dogs/b.jpg",
    ]
    assert undo.undone  # a kept file is a decision, not a failure


# -- 2. copy and link --------------------------------------------------------------------


def test_copy_then_undo_keeps_a_copy_the_user_edited(tmp_path, photos):
    src, items = photos
    before = snapshot(src)
    dest = tmp_path / "sorted"
    report = apply_sort(items, dest, "copy", tmp_path / "journals")

    assert snapshot(src) == before  # sources only read
    assert len(report.done) == 5
    for source, target in report.done:
        assert sha(target) == sha(source)
        assert os.stat(target).st_ino != os.stat(source).st_ino
        assert os.stat(target).st_mtime_ns == os.stat(source).st_mtime_ns
    edited = dest / "dogs" / "c.jpg"
    make_image(edited.with_name("tmp.jpg"), 77).replace(edited)
    orphan_source, orphan_copy = report.done[1]  # its original is removed after the sort
    orphan_source.unlink()

    undo = undo_sort(report.journal)

    assert sorted(undo.removed) == sorted(d for s, d in report.done if d.parent.name == "cats")
    assert sorted(undo.kept) == sorted(
        [
            (edited, "changed since the sort"),
            (orphan_copy, "the original was removed or changed since the sort: this copy is kept"),
        ]
    )
    assert sorted(p.name for p in dest.rglob("*")) == ["b.jpg", "c.jpg", "dogs"]
    assert undo.folders_removed == [dest / "cats"]  # dogs still holds the kept copies
    assert undo.undone


def test_link_mode_makes_hard_links_and_undo_removes_only_them(tmp_path, photos):
    src, items = photos
    before = tree(src)
    dest = tmp_path / "sorted"
    report = apply_sort(items, dest, "link", tmp_path / "journals")

    assert len(report.done) == 5
    for source, target in report.done:
        assert os.stat(target).st_ino == os.stat(source).st_ino
    undo = undo_sort(report.journal)

    assert sorted(undo.removed) == sorted(d for _, d in report.done)
    assert tree(src) == before
    assert all(os.stat(s).st_nlink == 1 for s, _ in report.done)
    assert not dest.exists()  # the sort made it, undo left it empty


# -- 3. a run killed midway --------------------------------------------------------------


class Boom(BaseException):
    """Stands for the process dying: not an OSError, so nothing catches it."""


def test_a_run_that_dies_midway_is_undone_completely(tmp_path, photos, monkeypatch):
    src, items = photos
    before = tree(src)
    dest, journals = tmp_path / "sorted", tmp_path / "journals"
    real, calls = sort_moves._rename_between, []

    def dies_on_the_third(*args):
        calls.append(args)
        if len(calls) == 3:
            raise Boom
        return real(*args)

    monkeypatch.setattr(sort_moves, "_rename_between", dies_on_the_third)
    with pytest.raises(Boom):
        apply_sort(items, dest, "move", journals)
    monkeypatch.undo()
    assert len(tree(src)) == 3  # two moved, the third announced in the journal, not done

    undo = undo_sort(last_journal(journals))

    assert tree(src) == before
    assert len(undo.restored) == 2 and not undo.failed
    assert not dest.exists()


CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from visualsearch.core import sort_moves as sm

    args = json.loads(Path(sys.argv[1]).read_text())
    point, calls = args["kill_at"], []

    def die_on(n):
        calls.append(n)
        if len(calls) == args["nth"]:
            os.kill(os.getpid(), signal.SIGKILL)

    class Progress:
        def report(self, done, total, message=""):
            if point == "between files":
                die_on(done)
        def cancelled(self):
            return False

    if point == "linked into place":  # the complete copy has its name, the temp is still there
        real_link = sm.link_new
        def link_then_die(*a):
            real_link(*a)
            die_on(a)
        sm.link_new = link_then_die
    elif point == "copy written":  # the temp is complete, not linked yet
        real_fchmod = os.fchmod
        def fchmod_then_die(*a):
            real_fchmod(*a)
            die_on(a)
        os.fchmod = fchmod_then_die
    items = [sm.SortItem(Path(s), label) for s, label in args["items"]]
    sm.apply_sort(items, Path(args["dest"]), args["mode"], Path(args["journals"]), Progress())
    print("not killed")
    """
)


def run_killed(tmp_path: Path, items, dest: Path, mode: str, kill_at: str, nth: int) -> Path:
    """apply_sort in a child process SIGKILLed at `kill_at`, the nth time; its journal."""
    journals = tmp_path / "journals"
    args = tmp_path / "args.json"
    args.write_text(
        json.dumps(
            {
                "items": [(str(i.source), i.label) for i in items],
                "dest": str(dest),
                "mode": mode,
                "journals": str(journals),
                "kill_at": kill_at,
                "nth": nth,
            }
        )
    )
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, script, args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    journal = last_journal(journals)
    assert journal is not None
    return journal


@pytest.mark.parametrize(
    ("mode", "kill_at", "in_place"),
    [("move", "between files", 3), ("copy", "copy written", 2), ("copy", "linked into place", 3)],
)
def test_a_sigkilled_run_is_undone_completely(tmp_path, photos, mode, kill_at, in_place):
    src, items = photos
    before = tree(src)
    dest = tmp_path / "sorted"
    journal = run_killed(tmp_path, items, dest, mode, kill_at, nth=3)
    if kill_at != "between files":
        assert hidden_files(dest)  # the killed run left its temporary file

    undo = undo_sort(journal)

    assert tree(src) == before
    assert not dest.exists()  # copies, temporaries and the folders the run made: all gone
    assert not undo.failed and not undo.kept and undo.undone
    assert len(undo.restored if mode == "move" else undo.removed) == in_place


def test_an_interrupted_undo_is_finished_by_running_it_again(tmp_path, photos):
    src, items = photos
    before = tree(src)
    report = apply_sort(items, tmp_path / "sorted", "move", tmp_path / "journals")
    token = CancelToken(on_report=lambda done, total, _: done == 2 and token.cancel())

    first = undo_sort(report.journal, token)
    assert first.cancelled and not first.undone and len(first.restored) == 2
    assert last_journal(tmp_path / "journals") == report.journal

    with open(report.journal, "ab") as f:  # a line cut short by a crash
        f.write(b'{"type": "undo-target", "i": 1, "pa')
    second = undo_sort(report.journal)
    assert tree(src) == before and second.undone and len(second.restored) == 3


def test_an_undo_while_the_destination_is_away_leaves_the_journal_to_retry(tmp_path, photos):
    src, items = photos
    before = tree(src)
    dest, away = tmp_path / "sorted", tmp_path / "unplugged"
    report = apply_sort(items, dest, "move", tmp_path / "journals")
    dest.rename(away)  # as if its drive were unplugged

    first = undo_sort(report.journal)
    assert len(first.failed) == 5 and "not found" in first.failed[0][1] and not first.undone
    assert last_journal(tmp_path / "journals") == report.journal

    away.rename(dest)
    assert undo_sort(report.journal).undone and tree(src) == before


# -- 4. another filesystem, a full disk --------------------------------------------------


def test_a_move_to_another_filesystem_and_its_undo(tmp_path, photos, tmpfs_disks):
    src, items = photos
    before, times = tree(src), {s.source: os.stat(s.source).st_mtime_ns for s in items}
    dest = tmpfs_disks("8m") / "sorted"
    report = apply_sort(items, dest, "move", tmp_path / "journals")

    assert len(report.done) == 5 and tree(src) == {}
    for source, target in report.done:
        assert sha(target) == before[source.relative_to(src).as_posix()]
        assert os.stat(target).st_mtime_ns == times[source]
        assert os.stat(target).st_dev != os.stat(src).st_dev
    assert not hidden_files(dest)

    undo = undo_sort(report.journal)
    assert tree(src) == before and len(undo.restored) == 5
    assert all(os.stat(s).st_mtime_ns == t for s, t in times.items())
    assert not dest.exists()


def test_link_mode_copies_where_no_hard_link_can_be_made(tmp_path, photos, tmpfs_disks):
    src, items = photos
    before = tree(src)
    dest = tmpfs_disks("8m") / "sorted"
    report = apply_sort(items, dest, "link", tmp_path / "journals")
    assert len(report.done) == 5 and tree(src) == before
    assert all(os.stat(t).st_dev != os.stat(s).st_dev for s, t in report.done)

    undo = undo_sort(report.journal)
    assert sorted(undo.removed) == sorted(t for _, t in report.done) and not dest.exists()


def test_a_move_killed_between_the_copy_and_removing_the_original(tmp_path, photos, tmpfs_disks):
    src, items = photos
    before = tree(src)
    dest = tmpfs_disks("8m") / "sorted"
    journal = run_killed(tmp_path, items, dest, "move", "linked into place", nth=2)
    assert len(tree(src)) == 4  # one moved; the second is both here and there
    assert (dest / "dogs" / "b.jpg").exists() and (src / "b.jpg").exists()

    undo = undo_sort(journal)
    assert tree(src) == before and not dest.exists()
    assert sorted(undo.restored) == sorted((i.source, i.source) for i in items[:2])


def test_a_full_disk_stops_the_move_cleanly_and_undo_restores(tmp_path, tmpfs_disks):
    src = tmp_path / "src"
    sources = [make_image(src / f"big{n}.jpg", n, side=600, noise=True) for n in range(8)]
    before = tree(src)
    dest = tmpfs_disks("2m")
    items = [SortItem(p, "all") for p in sources]
    report = apply_sort(items, dest, "move", tmp_path / "journals")

    assert report.stopped and "No space left" in report.stopped
    assert 0 < len(report.done) < len(sources)
    assert len(report.failed) == 1 and "No space left" in report.failed[0][1]
    tried = len(report.done) + 1
    assert report.not_done == sources[tried:]
    assert not hidden_files(dest)  # nothing partial, not even under a hidden name
    assert sorted(dest.rglob("*.jpg")) == sorted(t for _, t in report.done)
    for source, target in report.done:
        assert sha(target) == before[source.name] and not source.exists()
    assert all(s.exists() for s in sources[len(report.done) :])

    undo = undo_sort(report.journal)
    assert tree(src) == before
    assert list(dest.iterdir()) == [] and undo.undone


# -- 5. the plan -------------------------------------------------------------------------


def test_plan_is_pure_numbers_names_and_is_what_apply_does(tmp_path, photos):
    src, items = photos
    dest = tmp_path / "sorted"
    make_image(dest / "dogs" / "b.jpg", 60)
    already = make_image(dest / "cats" / "e.jpg", 61)
    items = [*items, SortItem(already, "cats"), SortItem(src / "b.jpg", "dogs")]
    whole = snapshot(tmp_path)

    plan = sort_plan(items, dest, "move")
    steps = plan_sort(items, tmp_path / "nowhere" / "new", "copy")

    assert snapshot(tmp_path) == whole  # nothing touched, nothing created
    assert [s.dest.relative_to(dest).as_posix() for s in plan.steps] == [
        "cats/a.jpg",
        "dogs/b (2).jpg",
        "cats/a (2).jpg",
        "dogs/c.jpg",
        "cats/d.jpg",
    ]
    assert plan.skipped == [(already, "already in its folder"), (src / "b.jpg", "listed twice")]
    assert [s.dest.name for s in steps] == [
        "a.jpg",
        "b.jpg",
        "a (2).jpg",
        "c.jpg",
        "d.jpg",
        "e.jpg",
    ]
    assert all(isinstance(s, PlannedStep) for s in steps)

    report = apply_sort(items, dest, "move", tmp_path / "journals")
    assert report.done == [(s.source, s.dest) for s in plan.steps]
    assert report.skipped == plan.skipped


# -- 6. bad input ------------------------------------------------------------------------


def test_bad_input_gives_clear_errors_before_anything_is_written(tmp_path, photos):
    _, items = photos
    journals = tmp_path / "journals"
    with pytest.raises(ValueError, match="unknown sort mode 'rename': use one of copy, link, move"):
        apply_sort(items, tmp_path / "sorted", "rename", journals)
    with pytest.raises(ValueError, match="unknown sort mode"):
        plan_sort(items, tmp_path / "sorted", "")
    with pytest.raises(ValueError, match="must be absolute"):
        apply_sort([SortItem(Path("a.jpg"), "cats")], tmp_path / "sorted", "move", journals)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        apply_sort(items, tmp_path / "file", "copy", journals)
    assert not journals.exists() and not (tmp_path / "sorted").exists()

    (tmp_path / "notes.txt").write_text("not a journal")
    with pytest.raises(SortJournalError, match="not a visualsearch sort journal"):
        undo_sort(tmp_path / "notes.txt")
    with pytest.raises(SortJournalError, match="no sort journal"):
        undo_sort(tmp_path / "missing.jsonl")


def test_missing_linked_and_odd_sources_are_skipped_with_reasons(tmp_path, photos):
    src, items = photos
    link = src / "link.jpg"
    link.symlink_to(items[0].source)
    os.mkfifo(src / "pipe.jpg")
    (src / "folder.jpg").mkdir()
    odd = [
        SortItem(src / "gone.jpg", "cats"),
        SortItem(link, "cats"),
        SortItem(src / "pipe.jpg", "cats"),
        SortItem(src / "folder.jpg", "cats"),
    ]
    report = apply_sort([*odd, items[0]], tmp_path / "sorted", "move", tmp_path / "journals")

    assert report.skipped == [
        (src / "gone.jpg", "not found"),
        (link, "a symbolic link: not followed"),
        (src / "pipe.jpg", "not a regular file"),
        (src / "folder.jpg", "not a regular file"),
    ]
    assert report.done == [(items[0].source, tmp_path / "sorted" / "cats" / "a.jpg")]
    assert link.is_symlink()  # the link itself is left where it was


def test_a_source_changed_after_planning_is_skipped(tmp_path, photos):
    _, items = photos
    later = items[3].source

    def edit_later_file(done, total, message):
        if done == 1:
            later.write_bytes(later.read_bytes() + b"more")

    report = apply_sort(
        items, tmp_path / "sorted", "move", tmp_path / "journals", CancelToken(edit_later_file)
    )
    assert report.skipped == [(later, "changed since the sort was planned")]
    assert later.exists() and len(report.done) == 4


def test_cancel_stops_between_files_and_undo_restores(tmp_path, photos):
    src, items = photos
    before = tree(src)
    token = CancelToken(on_report=lambda done, total, _: done == 2 and token.cancel())
    report = apply_sort(items, tmp_path / "sorted", "move", tmp_path / "journals", token)

    assert report.cancelled and len(report.done) == 2
    assert report.not_done == [i.source for i in items[2:]]
    undo_sort(report.journal)
    assert tree(src) == before


def test_names_differing_only_in_case_are_numbered(tmp_path):
    a = make_image(tmp_path / "one" / "IMG.jpg", 1)
    b = make_image(tmp_path / "two" / "img.jpg", 2)
    steps = plan_sort([SortItem(a, "x"), SortItem(b, "x")], tmp_path / "sorted", "copy")
    assert [s.dest.name for s in steps] == ["IMG.jpg", "img (2).jpg"]


def test_a_read_only_destination_stops_the_run(tmp_path, photos, tmpfs_disks):
    _, items = photos
    dest = tmpfs_disks("1m")
    subprocess.run(["mount", "-o", "remount,ro", dest], check=True)
    report = apply_sort(items, dest, "copy", tmp_path / "journals")
    assert report.stopped and "Read-only" in report.stopped
    assert len(report.failed) == 1 and report.not_done == [i.source for i in items[1:]]
    assert undo_sort(report.journal).undone


def test_an_undo_into_a_full_disk_fails_cleanly_and_can_be_run_again(tmp_path, tmpfs_disks):
    src = tmpfs_disks("3m")
    sources = [make_image(src / f"big{n}.jpg", n, side=600, noise=True) for n in range(4)]
    before = tree(src)
    report = apply_sort(
        [SortItem(p, "all") for p in sources], tmp_path / "sorted", "move", tmp_path / "journals"
    )
    assert len(report.done) == 4 and tree(src) == {}
    filler = src / "filler"
    with open(filler, "wb", buffering=0) as f, pytest.raises(OSError):
        while True:  # the user filled the disk the photos came from
            f.write(os.urandom(64 * 1024))

    first = undo_sort(report.journal)
    assert first.failed and "No space left" in first.failed[0][1] and not first.undone
    assert sorted(p.name for p in src.iterdir()) == ["filler"]  # nothing partial
    filler.unlink()

    second = undo_sort(report.journal)
    assert tree(src) == before and second.undone and len(second.restored) == 4


def test_labels_whose_folder_names_clash_get_folders_of_their_own(tmp_path):
    """folder_name() gives "a/b" and "a b" (and "?" and "..") one name: their images
    were merged into one folder."""
    src = tmp_path / "src"
    images = [make_image(src / f"{i}.jpg", i) for i in range(4)]
    labels = ["a/b", "a b", "?", ".."]
    plan = plan_sort(
        [SortItem(p, label) for p, label in zip(images, labels, strict=True)],
        tmp_path / "out",
        "copy",
    )
    folders = [step.dest.parent.name for step in plan]
    assert folders == ["a b", "a b (2)", "unnamed", "unnamed (2)"]
