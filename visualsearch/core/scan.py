"""Find the image files under a folder, safely: hidden folders, symlink loops,
unreadable folders and special files are skipped and reported, never fatal.

Folders are listed through directory descriptors, so files deeper than PATH_MAX are
found (and `reach` lets a reader open them) instead of vanishing with ENAMETOOLONG.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from visualsearch.core.raw import RAW_EXTENSIONS

HIDDEN_NOTE = "names starting with a dot are skipped"

# Formats we index. Extensions are a fast pre-filter only: content decides in imageio.
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".apng",
        ".webp",
        ".gif",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
        ".avif",
    }
    | RAW_EXTENSIONS
)


@dataclass(frozen=True, slots=True)
class FileStat:
    """One image file: its path relative to the scanned root (POSIX separators)."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class ScanResult:
    files: list[FileStat] = field(default_factory=list)
    # (relative path, reason) for things we could not look at
    problems: list[tuple[str, str]] = field(default_factory=list)
    # folders we could not list: their old catalog entries must not be treated as deleted
    unreadable_dirs: list[str] = field(default_factory=list)


_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
# Listing by descriptor (openat) works on POSIX; elsewhere folders are listed by path.
_BY_FD = os.scandir in os.supports_fd and os.open in os.supports_dir_fd
try:
    _PATH_MAX = os.pathconf("/", "PC_PATH_MAX")
except (AttributeError, OSError, ValueError):  # Windows
    _PATH_MAX = 260


def is_image_name(name: str) -> bool:
    """By extension; trailing spaces and dots ('a.jpg ', 'a.jpg.') do not hide one."""
    return os.path.splitext(name.rstrip(" ."))[1].lower() in IMAGE_EXTENSIONS


@contextmanager
def reach(path: str | os.PathLike) -> Iterator[tuple[int | None, str]]:
    """`(dir_fd, name)` that reach `path` with the *at() calls (`os.open(name, dir_fd=…)`).

    A path the OS takes whole gives `(None, path)`; a longer one than PATH_MAX is walked
    one folder at a time through directory descriptors, which the OS does not limit.
    """
    path = os.fspath(path)
    if not _BY_FD or len(os.fsencode(path)) < _PATH_MAX:
        yield None, path
        return
    head, name = os.path.split(path)
    fd = os.open(os.sep if os.path.isabs(path) else os.curdir, _DIR_FLAGS)
    try:
        for part in head.split(os.sep):
            if part:
                parent, fd = fd, -1
                try:
                    fd = os.open(part, _DIR_FLAGS, dir_fd=parent)
                finally:
                    os.close(parent)
        yield fd, name
    finally:
        if fd >= 0:
            os.close(fd)


@dataclass(frozen=True, slots=True)
class _Entry:
    """A folder entry, stat-ed (links followed) while its folder was open."""

    name: str
    is_link: bool
    st: os.stat_result | None
    error: OSError | None = None
    link_target: str = ""


def _entry(e: os.DirEntry, dir_fd: int | None) -> _Entry:
    is_link = e.is_symlink()
    try:
        return _Entry(e.name, is_link, e.stat(follow_symlinks=True))
    except OSError as exc:
        target = ""
        if is_link:
            with suppress(OSError):
                target = os.readlink(e.name if dir_fd is not None else e.path, dir_fd=dir_fd)
        return _Entry(e.name, is_link, None, exc, target)


def _unreadable_reason(entry: _Entry) -> str | None:
    """Why an entry that could not be stat-ed is skipped; None for one not worth a word."""
    if entry.is_link:
        looks_like_dir = entry.link_target and not os.path.splitext(entry.link_target)[1]
        return "broken symbolic link" if is_image_name(entry.name) or looks_like_dir else None
    error = entry.error
    if error is None or (error.errno == errno.ENOENT and not is_image_name(entry.name)):
        return None  # a non-image that vanished while we looked
    what = "file" if is_image_name(entry.name) else "entry (a folder?)"
    return f"cannot read {what}: {error.strerror or error}"


def _hidden_reason(entry: _Entry, excluded: set[tuple[int, int]]) -> str | None:
    """Why a dot-named entry is skipped; None for one not worth a word.

    One entry per hidden folder (its contents are never looked at), except an excluded one
    (the store); a hidden image file is named too, but not macOS's `._name.jpg` companions,
    which hold metadata, not images.
    """
    st = entry.st
    if st is None:
        return None
    if stat.S_ISDIR(st.st_mode):
        excluded_dir = (st.st_dev, st.st_ino) in excluded
        return None if excluded_dir else f"hidden folder ({HIDDEN_NOTE})"
    if is_image_name(entry.name) and not entry.name.startswith("._"):
        return f"hidden file ({HIDDEN_NOTE})"
    return None


def _list_folder(abs_dir: str) -> list[_Entry]:
    """The entries of a folder in name order (raises OSError if it cannot be listed)."""
    if not _BY_FD:
        with os.scandir(abs_dir) as it:
            entries = [_entry(e, None) for e in it]
    else:
        with reach(abs_dir) as (dir_fd, name):
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        try:
            with os.scandir(fd) as it:
                entries = [_entry(e, fd) for e in it]
        finally:
            os.close(fd)
    return sorted(entries, key=lambda e: e.name)


def scan_folder(
    root: Path, exclude: list[Path] | None = None, inside: Path | None = None
) -> ScanResult:
    """Walk `root` recursively and list image files with their size and mtime.

    Follows symbolic links to folders but visits each real folder once, so link
    loops end. Hidden files and folders (dot-names) are skipped and reported as problems
    (a folder once, not each file in it); the `exclude` folders (the store, when it lives
    inside the collection) are skipped silently. `inside`: the collection `root` lies in;
    a link to a folder within it is not followed (a scan of the whole collection lists
    that folder under its real path).
    """
    root = Path(root)
    result = ScanResult()
    try:
        root_stat = root.stat()
    except OSError as exc:
        raise FileNotFoundError(f"cannot open folder {root}: {exc.strerror or exc}") from exc
    if not stat.S_ISDIR(root_stat.st_mode):
        raise NotADirectoryError(f"not a folder: {root}")

    excluded = set()
    for path in exclude or []:
        try:
            st = path.stat()
            excluded.add((st.st_dev, st.st_ino))
        except OSError:
            pass

    visited = {(root_stat.st_dev, root_stat.st_ino)}
    stack: list[tuple[str, str]] = [(os.fspath(root), "")]
    # Folders reached through a symbolic link are walked after all real folders, so a
    # folder that is both linked and real is listed under its real path.
    linked: list[tuple[str, str, tuple[int, int]]] = []
    while stack or linked:
        if stack:
            abs_dir, rel_dir = stack.pop()
        else:
            abs_dir, rel_dir, key = linked.pop(0)
            if inside is not None and _within(os.path.realpath(abs_dir), inside):
                continue
            if key in visited:
                result.problems.append(
                    (rel_dir, "symbolic link to a folder already scanned (loop)")
                )
                continue
            visited.add(key)
        try:
            entries = _list_folder(abs_dir)
        except OSError as exc:
            result.problems.append((rel_dir or ".", f"cannot list folder: {exc.strerror or exc}"))
            result.unreadable_dirs.append(rel_dir)
            continue
        subdirs = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            abs_path = os.path.join(abs_dir, entry.name)
            st = entry.st
            hidden = entry.name.startswith(".")
            if st is None or hidden:
                reason = _hidden_reason(entry, excluded) if hidden else _unreadable_reason(entry)
                if reason:
                    result.problems.append((rel, reason))
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in excluded:
                    continue
                if entry.is_link:
                    linked.append((abs_path, rel, key))
                elif key not in visited:
                    visited.add(key)
                    subdirs.append((abs_path, rel))
            elif is_image_name(entry.name):
                if stat.S_ISREG(st.st_mode):
                    result.files.append(FileStat(rel, st.st_size, st.st_mtime_ns))
                else:
                    result.problems.append((rel, "not a regular file (device, pipe or socket)"))
        # reversed so that popping from the stack walks folders in name order
        stack.extend(reversed(subdirs))
    result.files.sort(key=lambda f: f.path)
    return result


def scan_paths(root: Path, paths: Iterable[str], exclude: list[Path] | None = None) -> ScanResult:
    """`scan_folder` for some paths under `root` only (relative, POSIX separators): each
    is an image file, a folder (walked), or gone (nothing listed). A path that cannot be
    looked at is listed in `unreadable_dirs`, so that its catalog entries are kept."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"cannot open folder {root}")
    result = ScanResult()
    for rel in sorted(set(paths)):
        parts = rel.split("/")
        if not rel or rel.startswith("/") or any(p.startswith(".") or not p for p in parts):
            continue  # hidden (never indexed), outside the folder, or not a relative path
        try:
            st = os.stat(root / rel)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            result.problems.append((rel, f"cannot look at it: {exc.strerror or exc}"))
            result.unreadable_dirs.append(rel)
            continue
        if stat.S_ISDIR(st.st_mode):
            if (root / rel).is_symlink() and _within(os.path.realpath(root / rel), root):
                continue  # listed under its real path
            try:
                sub = scan_folder(root / rel, exclude, inside=root)
            except OSError as exc:
                result.problems.append((rel, f"cannot list folder: {exc}"))
                result.unreadable_dirs.append(rel)
                continue
            result.files += [FileStat(f"{rel}/{f.path}", f.size, f.mtime_ns) for f in sub.files]
            result.problems += [(f"{rel}/{p}" if p != "." else rel, why) for p, why in sub.problems]
            result.unreadable_dirs += [f"{rel}/{d}" if d else rel for d in sub.unreadable_dirs]
        elif stat.S_ISREG(st.st_mode) and is_image_name(rel.rsplit("/", 1)[-1]):
            result.files.append(FileStat(rel, st.st_size, st.st_mtime_ns))
    unique = {f.path: f for f in result.files}  # a file and its folder both named
    result.files = sorted(unique.values(), key=lambda f: f.path)
    return result


def _within(path: str, folder: Path) -> bool:
    real = os.path.realpath(folder)
    return path == real or path.startswith(real.rstrip(os.sep) + os.sep)
