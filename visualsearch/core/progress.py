"""Progress reporting and cancellation for long jobs, with no GUI dependency."""

from __future__ import annotations

import threading
import time
from collections import deque
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


class RateMeter:
    """Items per second over the last few reports, and the time left at that rate."""

    def __init__(self, window_s: float = 10.0, clock=time.monotonic) -> None:
        self._window = window_s
        self._clock = clock
        self._points: deque[tuple[float, int]] = deque()

    def update(self, done: int) -> None:
        now = self._clock()
        if self._points and done < self._points[-1][1]:
            self._points.clear()  # a new run
        self._points.append((now, done))
        while len(self._points) > 2 and now - self._points[0][0] > self._window:
            self._points.popleft()

    @property
    def rate(self) -> float | None:
        if len(self._points) < 2:
            return None
        (t0, d0), (t1, d1) = self._points[0], self._points[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 and d1 > d0 else None

    def seconds_left(self, total: int) -> float | None:
        rate = self.rate
        if rate is None or not self._points:
            return None
        return max(0, total - self._points[-1][1]) / rate


def format_duration(seconds: float) -> str:
    """'45 s', '3 min', '1 h 20 min'."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"
