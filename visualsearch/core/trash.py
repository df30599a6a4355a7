"""Moving files to the system trash (recoverable), never deleting them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def move_to_trash(paths: Iterable[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Send each file to the desktop's trash (freedesktop, macOS, Windows) with Send2Trash.

    Returns (moved, failed with reasons); a failure leaves that file where it was.
    """
    from send2trash import send2trash
    from send2trash.exceptions import TrashPermissionError

    moved, failed = [], []
    for path in paths:
        path = Path(path)
        try:
            send2trash(str(path))
        except (OSError, TrashPermissionError) as exc:
            failed.append((path, str(exc) or type(exc).__name__))
            continue
        moved.append(path)
    return moved, failed
