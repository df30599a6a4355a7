"""What people are told when something fails: one line per failure, the same in the CLI
and the window. Each says what went wrong and, where there is one, what to do."""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

from visualsearch.core import imageio
from visualsearch.core.collection import NotIndexed
from visualsearch.core.encoders.base import ModelUnavailable
from visualsearch.core.store import StoreError

# Failures of the user's situation (a missing folder, a full disk, a model not downloaded),
# not bugs: `user_message` words them for people. Anything else is a bug to log.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ModelUnavailable,
    StoreError,
    NotIndexed,
    imageio.ImageError,
    OSError,
    ValueError,
    MemoryError,
    sqlite3.DatabaseError,
)

_FULL_DISK_BYTES = 1 << 20  # less free space than this after a failed write: the disk is full
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NOT_ALLOWED = {errno.EACCES, errno.EPERM}


def is_user_error(exc: BaseException) -> bool:
    """Whether `exc` is a situation to explain rather than a bug to report."""
    return isinstance(exc, USER_ERRORS)


def user_message(exc: BaseException, store: Path | str | None = None) -> str:
    """One line for people, lower case first as the CLI prints it (`as_sentence` for the
    window). `store` is the collection's store folder, named when its catalog fails."""
    if isinstance(exc, sqlite3.DatabaseError):
        return catalog_message(store, exc)
    if isinstance(exc, MemoryError):
        return "not enough memory: close other programs, or index a smaller folder first"
    if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
        return _os_message(exc)
    if is_user_error(exc):
        return imageio.describe(exc)
    return f"unexpected error: {exc!r}"


def as_sentence(message: str) -> str:
    """'folder not found: /x' → 'Folder not found: /x.' (for a message bar)."""
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


def catalog_message(store: Path | str | None, exc: sqlite3.Error) -> str:
    """Why the catalog in `store` failed: a full disk, another program holding it, no
    permission, or damage (only then: move it aside and index again)."""
    where = f"the store {store}" if store else "the collection's store"
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF  # the primary result code
    full = code == sqlite3.SQLITE_FULL or (
        code == sqlite3.SQLITE_IOERR and store is not None and _disk_full(Path(store))
    )
    if full:
        return (
            f"the disk holding {where} is full: free some space and run again "
            "(what was already indexed is kept)"
        )
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return (
            f"{where} is in use by another visualsearch (a window or a command): "
            "close it or let it finish, then run again"
        )
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN):
        return f"{where} cannot be written ({exc}): check its permissions, or use another --store"
    if code == sqlite3.SQLITE_IOERR:
        return f"{where} cannot be read or written ({exc}): check the disk it is on"
    return corrupt_catalog_message(store, exc)


def corrupt_catalog_message(directory: Path | str | None, exc: Exception) -> str:
    """One line: what is wrong with a damaged catalog and how to recover."""
    if not directory:
        return (
            f"the collection's catalog is damaged ({exc}). Nothing in your image folder is "
            "affected: move the collection's store folder aside and index again"
        )
    return (
        f"the catalog in {directory} is damaged ({exc}). Nothing in your image folder is "
        f"affected: move that folder aside (e.g. mv '{directory}' '{directory}.damaged') "
        "and index again"
    )


def _os_message(exc: OSError) -> str:
    name = exc.filename if exc.filename is not None else ""
    where = f": {name}" if name != "" else ""
    if exc.errno in _NO_SPACE:
        return f"the disk is full{f' ({name})' if where else ''}: free some space and try again"
    if exc.errno in _NOT_ALLOWED:
        return f"permission denied{where}"
    if exc.errno == errno.EROFS:
        return f"the disk is read-only{where}"
    return f"{exc.strerror[0].lower()}{exc.strerror[1:]}{where}"


def _disk_full(directory: Path) -> bool:
    """Whether the disk holding `directory` (or its nearest existing parent) is full."""
    for folder in (directory, *directory.parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free < _FULL_DISK_BYTES
            except OSError:
                return False
    return False
