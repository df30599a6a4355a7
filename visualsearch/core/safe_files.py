"""Writing files that no one sees half-done and that never replace another: hidden
temporary names linked into place, renames that refuse to overwrite, names cut to fit
the filesystem. Used by the exports and by sorting into label folders."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import secrets
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

NAME_MAX = 255  # bytes in one file or folder name (Linux filesystems)
FOLDER_CHARS = 80  # a readable folder name
SUFFIX_ROOM = len(" (9999)")
TEMP_ROOM = len("..visualsearch-12345678.part")
CHUNK = 1 << 20
# the destination as a whole cannot take more: stop rather than fail every file
STOP_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
# "this filesystem has no hard links" (FAT, some network and FUSE mounts)
NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def nbytes(name: str) -> int:
    return len(os.fsencode(name))


def fit_bytes(name: str, limit: int) -> str:
    """`name` cut at a character boundary to at most `limit` bytes as the filesystem sees it."""
    if nbytes(name) <= limit:
        return name
    size = 0
    for i, ch in enumerate(name):
        size += nbytes(ch)
        if size > limit:
            return name[:i]
    return name


def folder_name(name: str) -> str:
    """A folder name that is safe on every system: no separators, no reserved characters,
    short enough in bytes to take a " (n)" suffix."""
    cleaned = re.sub(r'[<>:"/\\|?*\x00-\x1f]+', " ", name)
    cleaned = re.sub(r"\s+", " ", cleaned).strip(" .")[:FOLDER_CHARS]
    return fit_bytes(cleaned, NAME_MAX - SUFFIX_ROOM).strip(" .") or "unnamed"


def numbered_name(name: str, n: int) -> str:
    """`name`, or `stem (n).ext` for n > 1, cut (in the stem) to fit NAME_MAX bytes."""
    stem, ext = os.path.splitext(name)
    if nbytes(ext) > 32:  # not an extension
        stem, ext = name, ""
    tag = "" if n == 1 else f" ({n})"
    return fit_bytes(stem, NAME_MAX - nbytes(tag) - nbytes(ext)) + tag + ext


def numbered(path: Path, n: int) -> Path:
    return path.with_name(numbered_name(path.name, n))


# -- writing one file without ever exposing it half-done ------------------------------


def create_temp(dir_fd: int, name: str, mode: int) -> tuple[str, int]:
    """A new hidden file next to where `name` will go: (its name, a descriptor open for writing)."""
    base = fit_bytes(name, NAME_MAX - TEMP_ROOM)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC
    for _ in range(100):
        tmp = f".{base}.visualsearch-{secrets.token_hex(4)}.part"
        try:
            return tmp, os.open(tmp, flags, mode, dir_fd=dir_fd)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name for {name}")


def unlink_quietly(name: str, dir_fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


@functools.cache
def libc_renameat2():
    return getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)


def renameat2_noreplace(src_dir: int, src: str, dst_dir: int, dst: str) -> bool:
    """Linux's atomic no-replace rename (FileExistsError if `dst` is taken); False where
    this system or filesystem lacks it."""
    renameat2 = libc_renameat2() if sys.platform.startswith("linux") else None
    if renameat2 is None:
        return False
    rename_noreplace = 1
    if renameat2(src_dir, os.fsencode(src), dst_dir, os.fsencode(dst), rename_noreplace) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS):
        return False
    raise OSError(err, os.strerror(err), dst)


def rename_noreplace(dir_fd: int, tmp: str, name: str) -> None:
    """Move `tmp` to `name` in one directory; FileExistsError if `name` is taken."""
    if renameat2_noreplace(dir_fd, tmp, dir_fd, name):
        return
    # last resort (no hard links, no atomic no-replace rename): check, then rename
    with contextlib.suppress(FileNotFoundError):
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), name)
    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def link_new(dir_fd: int, tmp: str, name: str) -> None:
    """Give the complete file `tmp` the name `name`; FileExistsError if that is taken."""
    try:
        os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise
        rename_noreplace(dir_fd, tmp, name)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def copy_content(
    src_fd: int, st: os.stat_result, out: int, on_chunk: Callable[[bytes], None] | None = None
) -> None:
    """Write the whole content of `src_fd` into `out` with the source's mode and times
    (`st`), and sync it; `on_chunk` sees each chunk as it is written."""
    offset = 0
    while chunk := os.pread(src_fd, CHUNK, offset):
        write_all(out, chunk)
        offset += len(chunk)
        if on_chunk is not None:
            on_chunk(chunk)
    os.fchmod(out, stat.S_IMODE(st.st_mode))
    os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.fsync(out)


def fsync_dir(dir_fd: int) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot sync a directory
        os.fsync(dir_fd)


def open_dir(path: Path | str, dir_fd: int | None = None, follow: bool = True) -> int:
    flags = os.O_RDONLY | O_DIRECTORY | O_CLOEXEC | (0 if follow else O_NOFOLLOW)
    return os.open(path, flags, dir_fd=dir_fd)


def write_new_text(path: Path, write: Callable[[TextIO], None], numbered: bool = True) -> Path:
    """Create a text file at `path`, or at `path (2)`, `(3)`… if taken (without
    `numbered`: FileExistsError); never overwrites and never leaves an empty or partial
    file under a real name (OSError if it cannot be written)."""
    path = Path(path)
    dir_fd = open_dir(path.parent)
    try:
        tmp, fd = create_temp(dir_fd, path.name, 0o666)
        try:
            with open(fd, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            for n in range(1, 10_000 if numbered else 2):
                name = numbered_name(path.name, n)
                try:
                    link_new(dir_fd, tmp, name)
                except FileExistsError:
                    continue
                fsync_dir(dir_fd)
                return path.parent / name
            raise FileExistsError(f"no free name next to {path}" if numbered else str(path))
        finally:
            unlink_quietly(tmp, dir_fd)
    finally:
        os.close(dir_fd)


def why_failed(exc: OSError) -> str:
    """Why, for people: our temporary names mean nothing to them."""
    return exc.strerror or str(exc)
