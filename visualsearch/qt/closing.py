"""Closing the window without ever blocking it: every job is cancelled; one still
finishing its batch (kept, not lost) or an engine still loading a model keeps the
window open with "Closing…" in the status bar, and the window closes when they end,
or after CLOSE_PATIENCE_MS, leaving them to end on their own."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QThreadPool, QTimer

from visualsearch.qt.results_controller import ResultsController
from visualsearch.qt.widgets import JobStatus
from visualsearch.qt.workers import JobSlot, outlive_pool

CLOSE_WAIT_MS = 300  # a job cancelled between batches ends in far less
CLOSE_PATIENCE_MS = 30_000  # then threads still busy are left to end on their own
POLL_MS = 200  # how often pool tasks (odd ones out, duplicates…) are looked at


class Closing(QObject):
    def __init__(
        self,
        jobs: list[JobSlot],
        pool: QThreadPool,
        results: ResultsController,
        status: JobStatus,
        close: Callable[[], object],
        stop: list[Callable[[], object]],
        parent: QObject | None = None,
    ) -> None:
        """`stop`: what each area does first (no new work, answers to come dropped)."""
        super().__init__(parent)
        self.jobs, self.pool, self.results, self.status = jobs, pool, results, status
        self.close, self.stop = close, stop
        self.started = False
        self.gave_up = False

    def ready(self) -> bool:
        """Whether the window may close now; if not, it is closed again when it may."""
        for slot in self.jobs:
            slot.cancel()
        if not self.started:
            self.started = True
            for stop in self.stop:
                stop()
            self.results.shut_down()
            self.pool.clear()  # tasks not started yet never start
            QTimer.singleShot(CLOSE_PATIENCE_MS, self._give_up_waiting)
        busy = [slot for slot in self.jobs if not slot.join(CLOSE_WAIT_MS)]
        pool_done = self.gave_up or self.pool.waitForDone(CLOSE_WAIT_MS)
        if not busy and pool_done and self.results.join_engine(CLOSE_WAIT_MS):
            return True
        self.status.start("Closing")
        self.status.update_progress(0, 0, "Closing: finishing the work in flight…")
        self.status.cancel.setEnabled(False)
        for slot in busy:
            slot.detach()  # survives the window being deleted before it ends
            slot.idle.connect(self.close, Qt.ConnectionType.UniqueConnection)
        self.results.detach_engine(self.close)
        if not pool_done:
            QTimer.singleShot(POLL_MS, self.close)  # a pool has no signal for "done"
        return False

    def _give_up_waiting(self) -> None:
        self.gave_up = True
        for slot in self.jobs:
            slot.abandon()
        self.results.abandon_engine()
        outlive_pool(self.pool)
        self.close()
