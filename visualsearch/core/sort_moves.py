"""Apply a sort — each labelled image into `dest/<label folder>/` by copy, hard link or
move — and undo it.

Every run writes a journal (JSON Lines) whose lines are written and fsynced before the
operation they describe, so a run killed at any point can be undone. Undo trusts no
"done" marker: it looks at what is on disk (is the file at its destination, at its
origin, with the recorded content?). Nothing is ever overwritten, and nothing partial is
left under a real name: copies are written under a hidden temporary name (recorded in
the journal first) and linked into place only when complete and synced.

Journal lines, each a JSON object with a "type":
  sort          header: version, mode, dest, created (UTC, ISO 8601)
  mkdir         a folder the run is about to create; mkdir-existed: it was there after all
  step          i, source, dest, temp (hidden name a copy is written under), size, sha256
  result        i, status (done | failed | skipped), how or reason — for people, and so that
                undo leaves alone a destination that a failed step found taken
  end           done, cancelled, stopped
  undo-target   i, path, temp: where undo is about to put a moved file back
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from visualsearch.core.progress import NullProgress, Progress
from visualsearch.core.safe_files import (
    CHUNK,
    NAME_MAX,
    NO_HARD_LINKS,
    O_CLOEXEC,
    O_NOFOLLOW,
    STOP_ERRNOS,
    TEMP_ROOM,
    copy_content,
    fit_bytes,
    folder_name,
    fsync_dir,
    link_new,
    numbered_name,
    open_dir,
    rename_noreplace,
    renameat2_noreplace,
    unlink_quietly,
    why_failed,
    write_all,
)
from visualsearch.core.store import FileRecord

MODES = ("copy", "link", "move")
JOURNAL_VERSION = 1
_PREFIX = "sort-"
_SUFFIX = ".jsonl"
_UNDONE = ".undone.jsonl"
_READ_FLAGS = os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC | getattr(os, "O_NONBLOCK", 0)
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC


class SortJournalError(ValueError):
    """A journal that cannot be undone: not a sort journal, unreadable, or already undone."""


@dataclass(frozen=True)
class SortItem:
    source: Path  # absolute path of a user's image
    label: str  # label name -> folder name via safe_files.folder_name()


@dataclass(frozen=True)
class PlannedStep:
    source: Path
    dest: Path  # final path, already numbered if the name was taken


@dataclass(frozen=True)
class SortPlan:
    steps: list[PlannedStep]
    skipped: list[tuple[Path, str]]  # (source, why it is not in the plan)


@dataclass
class SortReport:
    journal: Path
    mode: str
    dest: Path
    done: list[tuple[Path, Path]] = field(default_factory=list)  # (source, dest)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    not_done: list[Path] = field(default_factory=list)  # never tried: cancelled or stopped
    cancelled: bool = False
    stopped: str | None = None  # why the run stopped early, e.g. a full disk


@dataclass
class UndoReport:
    journal: Path  # its new name (*.undone.jsonl) once marked undone
    restored: list[tuple[Path, Path]] = field(default_factory=list)  # (original, now at)
    removed: list[Path] = field(default_factory=list)  # copies and links removed
    kept: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    folders_removed: list[Path] = field(default_factory=list)
    cancelled: bool = False
    undone: bool = False  # marked undone; False leaves it to be undone again

    @property
    def restored_elsewhere(self) -> list[tuple[Path, Path]]:
        """Moved files put back next to their original path, which another file now takes."""
        return [(a, b) for a, b in self.restored if a != b]


class _Skip(Exception):
    """This file is left alone, for the reason given."""


class _JournalError(Exception):
    """The journal cannot be written: nothing more may be done."""


# -- planning ----------------------------------------------------------------------------


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown sort mode {mode!r}: use one of {', '.join(MODES)}")


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _source_problem(st: os.stat_result) -> str:
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link: not followed"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return ""


def _label_folder(dest: Path, label: str, used: set[Path]) -> Path:
    """dest/<folder_name(label)>, or "name (2)"… where a file or link takes the name or
    another label of the plan has it (folder_name gives "a/b" and "a b" one name)."""
    base = folder_name(label)
    for n in range(1, 1000):
        folder = dest / (base if n == 1 else f"{base} ({n})")
        if Path(str(folder).casefold()) in used:
            continue
        try:
            if stat.S_ISDIR(os.lstat(folder).st_mode):
                return folder
        except FileNotFoundError:
            return folder
    raise ValueError(f"no free folder name for {label!r} in {dest}")


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _plan(
    items: Iterable[SortItem], dest: Path, mode: str
) -> tuple[SortPlan, dict[Path, tuple[int, int, int, int]]]:
    _check_mode(mode)
    dest = Path(os.path.abspath(Path(dest).expanduser()))
    if os.path.lexists(dest) and not dest.is_dir():
        raise ValueError(f"the destination {dest} is not a folder")
    folders: dict[str, Path] = {}
    taken: set[tuple[Path, str]] = set()  # casefolded: some filesystems ignore case
    seen: set[tuple[Path, str | None]] = set()
    steps: list[PlannedStep] = []
    skipped: list[tuple[Path, str]] = []
    stats: dict[Path, tuple[int, int, int, int]] = {}
    for item in items:
        source = Path(item.source)
        if not source.is_absolute():
            raise ValueError(f"source paths must be absolute: {str(source)!r}")
        key = (source, None if mode == "move" else item.label)
        if key in seen:
            skipped.append((source, "listed twice"))
            continue
        seen.add(key)
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            skipped.append((source, "not found"))
            continue
        except OSError as exc:
            skipped.append((source, why_failed(exc)))
            continue
        if problem := _source_problem(st):
            skipped.append((source, problem))
            continue
        if item.label not in folders:
            used = {Path(str(f).casefold()) for f in folders.values()}
            folders[item.label] = _label_folder(dest, item.label, used)
        folder = folders[item.label]
        if _same_dir(source.parent, folder):
            skipped.append((source, "already in its folder"))
            continue
        for n in range(1, 10_000):
            target = folder / numbered_name(source.name, n)
            if (folder, target.name.casefold()) not in taken and not os.path.lexists(target):
                break
        else:
            skipped.append((source, f"no free name in {folder}"))
            continue
        taken.add((folder, target.name.casefold()))
        stats[source] = _identity(st)
        steps.append(PlannedStep(source, target))
    return SortPlan(steps, skipped), stats


def sort_plan(items: Iterable[SortItem], dest: Path, mode: str) -> SortPlan:
    """What `apply_sort` would do, and what it would leave out and why; reads, never writes.
    ValueError for an unknown mode, a relative source or a destination that is a file."""
    return _plan(items, dest, mode)[0]


def plan_sort(items: Iterable[SortItem], dest: Path, mode: str) -> list[PlannedStep]:
    """The steps `apply_sort` would take (for --dry-run); touches nothing on disk."""
    return sort_plan(items, dest, mode).steps


# -- one file, never overwriting ---------------------------------------------------------


def _temp_name(name: str) -> str:
    """A hidden name next to `name`, chosen before it is created so the journal can hold it."""
    return f".{fit_bytes(name, NAME_MAX - TEMP_ROOM)}.visualsearch-{secrets.token_hex(4)}.part"


def _open_file(dir_fd: int, name: str) -> tuple[int, os.stat_result]:
    """A regular file opened for reading, never through a link; _Skip otherwise."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        raise _Skip("no longer there") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Skip("a symbolic link: not followed") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _Skip("not a regular file")
    os.set_blocking(fd, True)
    return fd, st


def _sha256_fd(fd: int) -> str:
    digest, offset = hashlib.sha256(), 0
    while chunk := os.pread(fd, CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def _sha256_at(dir_fd: int | None, name: str | Path) -> str | None:
    """The content hash of a regular file (links not followed); None for anything else."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        return _sha256_fd(fd) if stat.S_ISREG(os.fstat(fd).st_mode) else None
    finally:
        os.close(fd)


def _lstat(path: Path | str, dir_fd: int | None = None) -> os.stat_result | None:
    try:
        return os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _check_same(dir_fd: int, name: str, st: os.stat_result) -> None:
    there = _lstat(name, dir_fd)
    if there is None or _identity(there) != _identity(st):
        raise _Skip("changed while being sorted")


def _rename_between(src_dir: int, src: str, dst_dir: int, dst: str) -> None:
    """Rename across two folders of one filesystem without replacing anything:
    FileExistsError if `dst` is taken, OSError(EXDEV) across filesystems."""
    if renameat2_noreplace(src_dir, src, dst_dir, dst):
        return
    # a hard link never replaces: link, then drop the old name
    try:
        os.link(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise
        # last resort (no hard links, no atomic no-replace rename): check, then rename
        if _lstat(dst, dst_dir) is not None:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst) from None
        os.rename(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
        return
    os.unlink(src, dir_fd=src_dir)


def _copy_into(src_fd: int, st: os.stat_result, dir_fd: int, tmp: str, name: str, sha: str) -> None:
    """Copy into the hidden `tmp`, sync, check the content is `sha`, link it to `name`
    (FileExistsError if taken) and read it back."""
    out = os.open(tmp, _NEW_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        digest = hashlib.sha256()
        try:
            copy_content(src_fd, st, out, digest.update)
        finally:
            os.close(out)
        if digest.hexdigest() != sha:
            raise _Skip("changed while being copied")
        link_new(dir_fd, tmp, name)
    finally:
        unlink_quietly(tmp, dir_fd)
    fsync_dir(dir_fd)
    if _sha256_at(dir_fd, name) != sha:
        unlink_quietly(name, dir_fd)
        raise OSError(errno.EIO, "the copy did not read back the same", name)


def _move_file(
    src_dir: int,
    src_name: str,
    src_fd: int,
    src_st: os.stat_result,
    dst_dir: int,
    dst_name: str,
    tmp: str,
    sha: str,
) -> str:
    """Move one file without overwriting: a rename on one filesystem, else copy, verify,
    then remove the original. Returns how."""
    _check_same(src_dir, src_name, src_st)
    try:
        _rename_between(src_dir, src_name, dst_dir, dst_name)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    else:
        fsync_dir(dst_dir)
        fsync_dir(src_dir)
        return "moved"
    _copy_into(src_fd, src_st, dst_dir, tmp, dst_name, sha)
    try:
        _check_same(src_dir, src_name, src_st)
        os.unlink(src_name, dir_fd=src_dir)
    except (_Skip, OSError):  # changed while copied, or cannot be removed: it stays, ours goes
        unlink_quietly(dst_name, dst_dir)
        fsync_dir(dst_dir)
        raise
    fsync_dir(src_dir)
    return "copied to the other filesystem, then the original removed"


# -- the journal -------------------------------------------------------------------------


class _Journal:
    """Append-only JSON Lines, each line synced before what it announces is done."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    @classmethod
    def create(cls, folder: Path, header: dict[str, Any]) -> _Journal:
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        for _ in range(100):
            path = folder / f"{_PREFIX}{stamp}-{secrets.token_hex(4)}{_SUFFIX}"
            try:
                fd = os.open(path, _NEW_FLAGS | os.O_APPEND, 0o600)
            except FileExistsError:
                continue
            journal = cls(path, fd)
            try:
                journal.write(header)
            except _JournalError as exc:
                journal.close()
                with contextlib.suppress(OSError):
                    path.unlink()
                raise OSError(errno.EIO, f"cannot write the sort journal {path}: {exc}") from exc
            dir_fd = open_dir(folder)
            fsync_dir(dir_fd)
            os.close(dir_fd)
            return journal
        raise FileExistsError(f"no free journal name in {folder}")

    @classmethod
    def reopen(cls, path: Path) -> _Journal:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | O_NOFOLLOW | O_CLOEXEC)
        journal = cls(path, fd)
        size = os.fstat(fd).st_size
        with open(path, "rb") as f:
            f.seek(max(0, size - 1))
            cut_short = size > 0 and f.read(1) != b"\n"
        if cut_short:  # a line cut short by a crash must not swallow the next one
            with contextlib.suppress(OSError):
                write_all(fd, b"\n")
        return journal

    def write(self, record: dict[str, Any], sync: bool = True) -> None:
        line = (json.dumps(record, ensure_ascii=True) + "\n").encode("ascii")
        try:
            write_all(self.fd, line)
            if sync:
                os.fsync(self.fd)
        except OSError as exc:
            raise _JournalError(why_failed(exc)) from exc

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.fsync(self.fd)
        os.close(self.fd)


@dataclass
class _Record:
    """A journal as read back."""

    mode: str
    dest: Path
    steps: list[dict[str, Any]]
    results: dict[int, str]
    folders: list[Path]  # created by the run, in creation order
    targets: dict[int, list[Path]]  # where earlier undo runs put moved files back
    undo_temps: list[Path]


def _read_journal(path: Path) -> _Record:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SortJournalError(f"cannot read the sort journal {path}: {why_failed(exc)}") from exc
    records = []
    for line in raw.split(b"\n"):
        try:
            record = json.loads(line)
        except ValueError:
            continue  # empty, or a write cut short: what it announced was never done
        if isinstance(record, dict):
            records.append(record)
    header = records[0] if records else {}
    if header.get("type") != "sort" or header.get("mode") not in MODES:
        raise SortJournalError(f"{path} is not a visualsearch sort journal")
    if header.get("version") != JOURNAL_VERSION:
        raise SortJournalError(f"{path}: unknown journal version {header.get('version')!r}")
    out = _Record(header["mode"], Path(header["dest"]), [], {}, [], {}, [])
    try:
        for r in records[1:]:
            kind = r.get("type")
            if kind == "step":
                if not all(isinstance(r.get(k), str) for k in ("source", "dest", "temp", "sha256")):
                    raise ValueError(f"step {r.get('i')!r} lacks a path or hash")
                out.steps.append({**r, "i": int(r["i"]), "size": int(r["size"])})
            elif kind == "result":
                out.results[int(r["i"])] = str(r["status"])
            elif kind == "mkdir":
                out.folders.append(Path(r["path"]))
            elif kind == "mkdir-existed":
                with contextlib.suppress(ValueError):
                    out.folders.remove(Path(r["path"]))
            elif kind == "undo-target":
                out.targets.setdefault(int(r["i"]), []).append(Path(r["path"]))
                out.undo_temps.append(Path(r["temp"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise SortJournalError(f"{path}: a damaged line ({exc!r})") from exc
    return out


def _undone_name(journal: Path) -> Path:
    return journal.with_name(journal.name.removesuffix(_SUFFIX) + _UNDONE)


def journal_folder(data_dir: Path) -> Path:
    """Where the window and the CLI keep their sort journals, one per applied sort."""
    return Path(data_dir) / "sort-journals"


def last_journal(journal_dir: Path) -> Path | None:
    """The newest sort journal in `journal_dir` not yet undone, or None."""
    try:
        names = os.listdir(journal_dir)
    except (FileNotFoundError, NotADirectoryError):
        return None
    live = sorted(
        n
        for n in names
        if n.startswith(_PREFIX) and n.endswith(_SUFFIX) and not n.endswith(_UNDONE)
    )
    return Path(journal_dir) / live[-1] if live else None


# -- apply -------------------------------------------------------------------------------


class _Run:
    """One apply run: the label folders are opened as descriptors, never through a link."""

    def __init__(
        self,
        report: SortReport,
        journal: _Journal,
        progress: Progress,
        stats: dict[Path, tuple[int, int, int, int]],
    ) -> None:
        self.report, self.journal, self.progress, self.stats = report, journal, progress, stats
        self.dest_fd: int | None = None
        self.folder_fds: dict[Path, int] = {}

    def close(self) -> None:
        for fd in self.folder_fds.values():
            os.close(fd)
        if self.dest_fd is not None:
            os.close(self.dest_fd)

    def mkdir(self, path: Path, dir_fd: int | None = None) -> None:
        """Create a folder, journaled first so that undo can remove it again."""
        if _lstat(path if dir_fd is None else path.name, dir_fd) is not None:
            return
        self.journal.write({"type": "mkdir", "path": str(path)})
        try:
            os.mkdir(path if dir_fd is None else path.name, dir_fd=dir_fd)
        except FileExistsError:
            self.journal.write({"type": "mkdir-existed", "path": str(path)})

    def folder_fd(self, folder: Path) -> int:
        if folder in self.folder_fds:
            return self.folder_fds[folder]
        if self.dest_fd is None:
            missing, p = [], self.report.dest
            while not os.path.lexists(p):
                missing.append(p)
                p = p.parent
            for d in reversed(missing):
                self.mkdir(d)
            self.dest_fd = open_dir(self.report.dest)
        self.mkdir(folder, self.dest_fd)
        fsync_dir(self.dest_fd)
        fd = open_dir(folder.name, self.dest_fd, follow=False)  # ELOOP for a link
        self.folder_fds[folder] = fd
        return fd

    def result(self, i: int, status: str, **extra: str) -> None:
        with contextlib.suppress(_JournalError):  # the next step line will stop the run
            self.journal.write({"type": "result", "i": i, "status": status, **extra}, sync=False)

    def apply(self, i: int, step: PlannedStep) -> str:
        mode = self.report.mode
        try:
            src_dir = open_dir(step.source.parent)
        except FileNotFoundError:
            raise _Skip("no longer there") from None
        try:
            fd, st = _open_file(src_dir, step.source.name)
            try:
                if _identity(st) != self.stats[step.source]:
                    raise _Skip("changed since the sort was planned")
                sha = _sha256_fd(fd)
                dir_fd = self.folder_fd(step.dest.parent)
                tmp = _temp_name(step.dest.name)
                self.journal.write(
                    {
                        "type": "step",
                        "i": i,
                        "source": str(step.source),
                        "dest": str(step.dest),
                        "temp": str(step.dest.parent / tmp),
                        "size": st.st_size,
                        "sha256": sha,
                    }
                )
                name = step.dest.name
                if mode == "move":
                    return _move_file(src_dir, step.source.name, fd, st, dir_fd, name, tmp, sha)
                if mode == "link":
                    _check_same(src_dir, step.source.name, st)
                    try:
                        os.link(
                            step.source.name,
                            name,
                            src_dir_fd=src_dir,
                            dst_dir_fd=dir_fd,
                            follow_symlinks=False,
                        )
                    except OSError as exc:
                        if exc.errno not in NO_HARD_LINKS | {errno.EXDEV}:
                            raise
                    else:
                        fsync_dir(dir_fd)
                        return "linked"
                _copy_into(fd, st, dir_fd, tmp, name, sha)
                return "copied" if mode == "copy" else "copied (no hard links there)"
            finally:
                os.close(fd)
        finally:
            os.close(src_dir)

    def run(self, steps: list[PlannedStep]) -> None:
        report, total = self.report, len(steps)
        for i, step in enumerate(steps):
            if self.progress.cancelled():
                report.cancelled = True
                report.not_done = [s.source for s in steps[i:]]
                return
            try:
                how = self.apply(i, step)
            except _Skip as exc:
                report.skipped.append((step.source, str(exc)))
                self.result(i, "skipped", reason=str(exc))
            except _JournalError as exc:
                report.stopped = f"cannot write the journal {report.journal}: {exc}"
                report.not_done = [s.source for s in steps[i:]]
                return
            except OSError as exc:
                if isinstance(exc, FileExistsError):
                    reason = f"{step.dest.name} was taken meanwhile"
                else:
                    reason = why_failed(exc)
                report.failed.append((step.source, reason))
                self.result(i, "failed", reason=reason)
                if exc.errno in STOP_ERRNOS:
                    report.stopped = f"{step.dest.parent}: {reason}"
                    report.not_done = [s.source for s in steps[i + 1 :]]
                    return
            else:
                report.done.append((step.source, step.dest))
                self.result(i, "done", how=how)
            self.progress.report(i + 1, total, f"{i + 1}/{total} files")


def apply_sort(
    items: Iterable[SortItem],
    dest: Path,
    mode: str,
    journal_dir: Path,
    progress: Progress | None = None,
) -> SortReport:
    """Put each labelled image into `dest/<label folder>/` by "copy", "link" (a hard link;
    a copy where there can be none) or "move", journaling each step first.

    A file that fails is reported and the run goes on; a full or read-only destination
    stops it (the rest are in `not_done`). ValueError for bad input, before anything is
    written. `undo_sort(report.journal)` puts everything back."""
    progress = progress or NullProgress()
    plan, stats = _plan(items, dest, mode)
    dest = Path(os.path.abspath(Path(dest).expanduser()))
    header = {
        "type": "sort",
        "version": JOURNAL_VERSION,
        "mode": mode,
        "dest": str(dest),
        "created": datetime.now(UTC).isoformat(),
    }
    journal = _Journal.create(Path(journal_dir).expanduser(), header)
    report = SortReport(journal.path, mode, dest, skipped=list(plan.skipped))
    run = _Run(report, journal, progress, stats)
    try:
        run.run(plan.steps)
    finally:
        run.close()
        with contextlib.suppress(_JournalError):
            end = {"done": len(report.done), "cancelled": report.cancelled}
            journal.write({"type": "end", **end, "stopped": report.stopped})
        journal.close()
    if not plan.steps:  # nothing was tried: "Undo last sort" must reach the sort before
        with contextlib.suppress(OSError):
            _mark_undone(report.journal)
            report.journal = _undone_name(report.journal)
    return report


# -- undo --------------------------------------------------------------------------------


def _remove_temp(path: Path) -> None:
    """Our hidden temporary file, if a killed run left it."""
    st = _lstat(path)
    if st is not None and stat.S_ISREG(st.st_mode) and path.name.endswith(".part"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _holds(path: Path, size: int, sha: str, st: os.stat_result | None = None) -> bool:
    """Whether `path` is a regular file with exactly this content."""
    st = _lstat(path) if st is None else st
    return (
        st is not None
        and stat.S_ISREG(st.st_mode)
        and st.st_size == size
        and _sha256_at(None, path) == sha
    )


class _Undo:
    def __init__(self, record: _Record, journal: _Journal, report: UndoReport) -> None:
        self.record, self.journal, self.report = record, journal, report
        self.retry = False  # a failure that running undo again may get past

    def step(self, step: dict[str, Any]) -> None:
        if self.record.mode == "move":
            self.move_back(step)
        else:
            self.remove_copy(step)

    def remove_copy(self, step: dict[str, Any]) -> None:
        source, dest = Path(step["source"]), Path(step["dest"])
        size, sha = step["size"], step["sha256"]
        d_st = _lstat(dest)
        if d_st is None:
            return
        s_st = _lstat(source)
        if not stat.S_ISREG(d_st.st_mode):
            self.report.kept.append((dest, "no longer a regular file"))
            return
        same_file = s_st is not None and (s_st.st_dev, s_st.st_ino) == (d_st.st_dev, d_st.st_ino)
        if not same_file:  # a hard link to the original loses nothing when removed
            if not _holds(dest, size, sha, d_st):
                self.report.kept.append((dest, "changed since the sort"))
                return
            if not _holds(source, size, sha, s_st):
                reason = "the original was removed or changed since the sort: this copy is kept"
                self.report.kept.append((dest, reason))
                return
        dest.unlink()
        self.report.removed.append(dest)

    def move_back(self, step: dict[str, Any]) -> None:
        i, size, sha = step["i"], step["size"], step["sha256"]
        source, dest = Path(step["source"]), Path(step["dest"])
        origin = next(
            (p for p in [source, *self.record.targets.get(i, [])] if _holds(p, size, sha)), None
        )
        d_st = _lstat(dest)
        if _holds(dest, size, sha, d_st):
            if origin is not None:  # killed after copying, before removing the original
                dest.unlink()
                self.report.restored.append((source, origin))
            else:
                self.report.restored.append((source, self.restore(i, step)))
        elif origin is not None:
            if origin != source:  # put back next to it by an earlier undo run
                self.report.restored.append((source, origin))
        elif d_st is not None:
            self.report.kept.append((dest, "changed since the sort: left where it is"))
        else:
            self.report.failed.append((source, f"not found, neither here nor at {dest}"))
            # its whole folder gone may be a drive not plugged in: leave the journal to retry
            self.retry = self.retry or not dest.parent.exists()

    def restore(self, i: int, step: dict[str, Any]) -> Path:
        """Move the file at the step's dest back to its source path, or next to it as
        "name (2)" when another file took that path."""
        source, dest = Path(step["source"]), Path(step["dest"])
        source.parent.mkdir(parents=True, exist_ok=True)
        d_dir = open_dir(dest.parent)
        try:
            fd, st = _open_file(d_dir, dest.name)
            try:
                s_dir = open_dir(source.parent)
                try:
                    tmp = _temp_name(source.name)
                    for n in range(1, 10_000):
                        name = numbered_name(source.name, n)
                        if _lstat(name, s_dir) is not None:
                            continue
                        target = source.parent / name
                        self.journal.write(
                            {
                                "type": "undo-target",
                                "i": i,
                                "path": str(target),
                                "temp": str(source.parent / tmp),
                            }
                        )
                        try:
                            _move_file(d_dir, dest.name, fd, st, s_dir, name, tmp, step["sha256"])
                        except FileExistsError:
                            continue
                        return target
                    raise FileExistsError(errno.EEXIST, "no free name", str(source))
                finally:
                    os.close(s_dir)
            finally:
                os.close(fd)
        finally:
            os.close(d_dir)

    def remove_folders(self) -> None:
        """The folders the run created, if undo left them empty (deepest first)."""
        for folder in reversed(self.record.folders):
            st = _lstat(folder)
            if st is None or not stat.S_ISDIR(st.st_mode):
                continue
            try:
                folder.rmdir()
            except OSError:
                continue  # not empty: something else is in there
            self.report.folders_removed.append(folder)


def undo_sort(journal: Path, progress: Progress | None = None) -> UndoReport:
    """Undo the sort recorded in `journal`, whether it finished, stopped or was killed.

    Moved files go back to their paths byte-identical (next to them as "name (2)" if the
    path is taken now); copies and links are removed if still what was written (and the
    original is still there); empty folders the sort made are removed. The journal is
    then renamed *.undone.jsonl. SortJournalError when it was already undone or is not a
    journal. A failure that may pass (a full or read-only disk) leaves the journal to be
    undone again; a file found nowhere is reported in `failed` and does not."""
    progress = progress or NullProgress()
    journal = Path(journal)
    if journal.name.endswith(_UNDONE) or (not journal.exists() and _undone_name(journal).exists()):
        raise SortJournalError(f"this sort was already undone ({journal.name})")
    if not journal.exists():
        raise SortJournalError(f"no sort journal at {journal}")
    record = _read_journal(journal)
    report = UndoReport(journal)
    writer = _Journal.reopen(journal)
    undo = _Undo(record, writer, report)
    steps = sorted(record.steps, key=lambda s: s["i"], reverse=True)
    try:
        for n, step in enumerate(steps):
            if progress.cancelled():
                report.cancelled = True
                return report
            _remove_temp(Path(step["temp"]))
            if record.results.get(step["i"]) not in ("failed", "skipped"):
                try:
                    undo.step(step)
                except (OSError, _Skip, _JournalError) as exc:
                    reason = why_failed(exc) if isinstance(exc, OSError) else str(exc)
                    report.failed.append((Path(step["source"]), reason))
                    undo.retry = True
            progress.report(n + 1, len(steps), f"{n + 1}/{len(steps)} files")
        for temp in record.undo_temps:
            _remove_temp(temp)
        undo.remove_folders()
    finally:
        writer.close()
    if undo.retry:
        return report
    try:
        _mark_undone(journal)
    except OSError as exc:
        report.failed.append((journal, f"cannot mark the journal undone: {why_failed(exc)}"))
        return report
    report.journal, report.undone = _undone_name(journal), True
    return report


def _mark_undone(journal: Path) -> None:
    """Rename the journal to its undone name (never over another file)."""
    dir_fd = open_dir(journal.parent)
    try:
        rename_noreplace(dir_fd, journal.name, _undone_name(journal).name)
        fsync_dir(dir_fd)
    finally:
        os.close(dir_fd)


def labelled_items(
    labels: dict[str, str], records: dict[str, FileRecord], root: Path
) -> tuple[list[SortItem], list[tuple[Path, str]]]:
    """SortItems for labelled catalog paths (`labels`: path → label name), leaving out the
    files changed since they were indexed (their label belongs to the old content): those
    come back with the reason."""
    items, stale = [], []
    for path, label in labels.items():
        source, record = Path(root) / path, records.get(path)
        try:
            st = os.lstat(source)
        except OSError:
            items.append(SortItem(source, label))  # the plan says why it is left out
            continue
        if record is None or (st.st_size, st.st_mtime_ns) != (record.size, record.mtime_ns):
            stale.append((source, "changed since it was indexed: index the folder again"))
        else:
            items.append(SortItem(source, label))
    return items, stale
