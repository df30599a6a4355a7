"""Find the image files under a folder, safely: hidden folders, symlink loops,
unreadable folders and special files are skipped and reported, never fatal."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

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


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def scan_folder(root: Path, exclude: list[Path] | None = None) -> ScanResult:
    """Walk `root` recursively and list image files with their size and mtime.

    Follows symbolic links to folders but visits each real folder once, so link
    loops end. Hidden files and folders (dot-names) and the `exclude` folders
    (the store, when it lives inside the collection) are skipped.
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
            if key in visited:
                result.problems.append(
                    (rel_dir, "symbolic link to a folder already scanned (loop)")
                )
                continue
            visited.add(key)
        try:
            with os.scandir(abs_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            result.problems.append((rel_dir or ".", f"cannot list folder: {exc.strerror or exc}"))
            result.unreadable_dirs.append(rel_dir)
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                if entry.is_symlink():
                    if is_image_name(entry.name) or _link_target_looks_like_dir(entry):
                        result.problems.append((rel, "broken symbolic link"))
                elif is_image_name(entry.name):
                    result.problems.append((rel, f"cannot read file: {exc.strerror or exc}"))
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in excluded:
                    continue
                if entry.is_symlink():
                    linked.append((entry.path, rel, key))
                elif key not in visited:
                    visited.add(key)
                    subdirs.append((entry.path, rel))
            elif is_image_name(entry.name):
                if stat.S_ISREG(st.st_mode):
                    result.files.append(FileStat(rel, st.st_size, st.st_mtime_ns))
                else:
                    result.problems.append((rel, "not a regular file (device, pipe or socket)"))
        # reversed so that popping from the stack walks folders in name order
        stack.extend(reversed(subdirs))
    result.files.sort(key=lambda f: f.path)
    return result


def _link_target_looks_like_dir(entry: os.DirEntry) -> bool:
    try:
        return not os.path.splitext(os.readlink(entry.path))[1]
    except OSError:
        return False
