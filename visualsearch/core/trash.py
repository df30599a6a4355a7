"""Moving files to the system trash (recoverable), never deleting them; and never through
a link: trashing a symbolic link removes only the link, and a file reached through a
linked folder may lie outside the folder the user opened."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def link_problem(path: Path, root: Path) -> str:
    """Why `path` must not be trashed through the folder `root`: "" for a real file inside
    it; otherwise e.g. "a link to 2019/IMG_0001.jpg" or "reached through the linked folder
    best (real file: /elsewhere/a.jpg)"."""
    path, root = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    shown = real.relative_to(real_root).as_posix() if real.is_relative_to(real_root) else real
    if not path.is_relative_to(root):
        return f"outside the folder {root}"
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            if current == path:
                return f"a link to {shown}"
            linked = current.relative_to(root).as_posix()
            return f"reached through the linked folder {linked} (real file: {real})"
    if not real.is_relative_to(real_root):
        return f"lies outside the folder (real path {real})"
    return ""


def trash_listing(paths: Iterable[Path], root: Path) -> list[str]:
    """One line per file for a confirmation: its real path, and what is not moved and why."""
    lines = []
    for path in paths:
        problem = link_problem(path, root)
        real = os.path.realpath(path)
        if problem:
            lines.append(f"not moved: {path} ({problem})")
        elif real != os.path.abspath(path):
            lines.append(f"{real} (opened as {path})")
        else:
            lines.append(real)
    return lines


def move_to_trash(paths: Iterable[Path], root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Send each file under `root` to the desktop's trash (freedesktop, macOS, Windows)
    with Send2Trash. Links, files reached through linked folders and files outside `root`
    are refused.

    Returns (moved, failed with reasons); a failure leaves that file where it was.
    """
    from send2trash import send2trash
    from send2trash.exceptions import TrashPermissionError

    moved, failed = [], []
    for path in paths:
        path = Path(path)
        problem = link_problem(path, root)
        if problem:
            failed.append((path, f"not moved: {problem}"))
            continue
        try:
            send2trash(str(path))
        except (OSError, TrashPermissionError) as exc:
            failed.append((path, str(exc) or type(exc).__name__))
            continue
        moved.append(path)
    return moved, failed
