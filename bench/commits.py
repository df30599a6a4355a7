"""Measuring another commit of this repository beside the working tree (`--against REV`):
its package checked out in a git worktree, run by new processes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def checked_out(rev: str, where: Path) -> Iterator[Path]:
    """`rev` checked out at `where` for as long as the block runs."""
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(where), rev],
        check=True,
        capture_output=True,
    )
    try:
        yield where
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(where)])


def package_env(code: Path | None) -> dict[str, str]:
    """The environment of a process that imports visualsearch from `code` (None: the
    working tree). Run it from outside the repository: `python -c` puts the working
    directory first on sys.path."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    return env
