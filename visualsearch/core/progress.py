"""Progress reporting and cancellation for long jobs, with no GUI dependency."""

from __future__ import annotations

import threading
from typing import Protocol


class Progress(Protocol):
    """What a long-running core function reports to, and asks whether to stop."""

    def report(self, done: int, total: int, message: str = "") -> None: ...

    def cancelled(self) -> bool: ...


class NullProgress:
    """Reports nowhere and never cancels."""

    def report(self, done: int, total: int, message: str = "") -> None:
        pass

    def cancelled(self) -> bool:
        return False


class CancelToken:
    """A thread-safe cancel flag with an optional report callback.

    The Qt worker and tests use it: `cancel()` may be called from any thread.
    """

    def __init__(self, on_report=None) -> None:
        self._event = threading.Event()
        self._on_report = on_report

    def cancel(self) -> None:
        self._event.set()

    def cancelled(self) -> bool:
        return self._event.is_set()

    def report(self, done: int, total: int, message: str = "") -> None:
        if self._on_report is not None:
            self._on_report(done, total, message)
