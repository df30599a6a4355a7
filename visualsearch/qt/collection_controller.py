"""The open folder and its indexing runs: what is catalogued, what was skipped, the
model that encodes it, and the messages a finished run has for the user."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, QThreadPool, Signal

from visualsearch.core.encoders.base import ModelInfo
from visualsearch.core.errors import as_sentence, user_message
from visualsearch.core.folder import ModelChoice
from visualsearch.core.indexing import IndexOptions, IndexReport, ensure_dir_exists
from visualsearch.core.store import FileRecord, default_store_dir
from visualsearch.core.watch import FolderWatcher, relative_paths
from visualsearch.qt.widgets import JobStatus
from visualsearch.qt.workers import (
    EncoderProvider,
    FolderTarget,
    IndexJob,
    IndexOutcome,
    JobSlot,
    TaskSlot,
)


def skipped_text(count: int) -> str:
    """How many files and folders are left out, the same words everywhere."""
    return f"{count:,} skipped: files that could not be read, hidden folders or files, link loops."


class CollectionController(QObject):
    folder_changed = Signal(object)  # FolderTarget: another folder; everything else resets
    folder_opened = Signal(object)  # Path (a str through Qt loses a non-UTF-8 name's bytes)
    catalog_loaded = Signal()  # `records` holds what the store had before this run
    catalog_shown = Signal(int)
    batch_committed = Signal(object)  # [FileRecord] just indexed (readable ones)
    catalog_replaced = Signal()  # a run ended with other files than before
    searchable = Signal(object)  # FolderTarget: the run has ended, search it in full
    model_ready = Signal(object)  # ModelInfo
    indexing_finished = Signal(object)  # IndexReport
    indexing_failed = Signal(str)
    run_started = Signal()
    changed = Signal()  # counts, model or skipped files changed: the summary
    message = Signal(str, str)  # text, "info" | "error"
    _changed_on_disk = Signal(object)  # from the watcher's thread: queued to this one

    def __init__(
        self,
        encoders: EncoderProvider,
        index_options: IndexOptions,
        store_base: Path,
        status: JobStatus,
        pool: QThreadPool,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.encoders = encoders
        self.index_options = index_options
        self.store_base = store_base
        self.status = status
        self.model = ModelChoice("builtin")
        self.target: FolderTarget | None = None
        self.records: dict[str, FileRecord] = {}
        self.skipped: list[tuple[str, str]] = []  # unreadable files and scan problems
        self.model_info: ModelInfo | None = None  # of the last run's model, once loaded
        self.last_message = ""  # what the last run said, taken away when the next starts
        self.jobs = JobSlot(self)
        self.jobs.idle.connect(self._job_ended)
        self.sample = TaskSlot(pool, self)
        self._pending_open: Path | None = None
        self.shut = False  # the window is closing: nothing new starts
        self.watcher: FolderWatcher | None = None  # the open folder, once it is indexed
        self._changed_paths: set[str] = set()  # seen by the watcher, not indexed yet
        self._changed_on_disk.connect(self._on_disk_change)

    def open_folder(self, folder: str | Path) -> None:
        """Show what is already indexed at once, then index new and changed files."""
        self.sample.supersede()  # the user's own choice wins over a sample still being made
        self._open(folder)

    def shut_down(self) -> None:
        self.shut = True
        self.sample.supersede()
        self._pending_open = None
        self.jobs.cancel()
        self._stop_watching()

    def _watch(self, target: FolderTarget) -> None:
        """Keep the open folder up to date: changes on disk start a run by themselves."""
        if self.watcher is not None and self.watcher.root == target.folder:
            return
        self._stop_watching()
        watcher = FolderWatcher(target.folder, self._changed_on_disk.emit, (target.store_dir,))
        if watcher.start():
            self.watcher = watcher

    def _stop_watching(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None

    def _on_disk_change(self, paths: set) -> None:
        """Index what the watcher saw change, and only that (a whole scan of a million
        files takes minutes); during a run, right after it."""
        if self.shut or self.target is None:
            return
        self._changed_paths |= relative_paths(paths, self.target.folder)
        if not self.jobs.busy():
            self._index_changes()

    def _index_changes(self) -> None:
        changed, self._changed_paths = tuple(sorted(self._changed_paths)), set()
        if changed and self.target is not None:
            self._start_job(self.target, changed)

    def _open(self, folder: str | Path) -> None:
        if self.shut:
            return
        try:
            path = ensure_dir_exists(Path(folder)).resolve()
        except OSError as exc:
            self.message.emit(as_sentence(user_message(exc)), "error")
            return
        if self.jobs.busy():
            self._pending_open = path  # opened when the current run has stopped
            self.jobs.cancel()
            return
        target = FolderTarget(path, default_store_dir(path, self.store_base), self.model)
        changed_folder = self.target is None or self.target.folder != path
        self.target = target
        if changed_folder:
            self.records, self.skipped, self.model_info = {}, [], None
            self._stop_watching()
            self._changed_paths = set()
            self.folder_changed.emit(target)
        # else (re-index, another model): queries keep using what is there until the run
        # ends, so the old model's results stay usable while the new one encodes
        self._start_job(target)
        self.folder_opened.emit(path)

    def reindex(self) -> None:
        if self.target is not None:
            self._open(self.target.folder)

    def set_model(self, choice: ModelChoice) -> None:
        """Encode with `choice` from now on; the open folder is indexed with it at once
        (vectors are kept per model, so going back is instant)."""
        self.model = choice
        self.reindex()

    def open_sample(self, dest: Path) -> None:
        """Make the sample collection in the pool, then open it."""
        from visualsearch.core.sample import build_sample_collection

        self.status.start()
        self.status.update_progress(0, 0, "Making the sample collection…")
        self.sample.start(
            lambda: build_sample_collection(dest),
            lambda folder: self._open(Path(str(folder))),
            self._sample_failed,
        )

    def _sample_failed(self, message: str) -> None:
        self.status.finish()
        self.message.emit(f"The sample collection could not be made: {message}", "error")

    def busy(self) -> bool:
        return self.jobs.busy()

    def cancel(self) -> None:
        self.jobs.cancel()

    def _start_job(self, target: FolderTarget, only: tuple[str, ...] | None = None) -> None:
        """An indexing run over the folder, or over the paths `only` (what changed)."""
        if only is None:
            self._changed_paths = set()  # a whole run sees them
        options = replace(self.index_options, only=only)
        job = IndexJob(target, self.encoders, options)
        job.catalog.connect(self._on_catalog)
        job.model_ready.connect(self._on_model_ready)
        job.progress.connect(self.status.update_progress)
        job.batch.connect(self._on_batch)
        job.finished.connect(self._on_finished)
        job.failed.connect(self._on_failed)
        self.status.start()
        self.run_started.emit()
        self.jobs.start(job)

    def _on_catalog(self, records: dict[str, FileRecord]) -> None:
        if self.shut:  # a run told after shut_down: the window's widgets may be gone
            return
        self.records = records
        self.catalog_loaded.emit()
        self.changed.emit()
        self.catalog_shown.emit(len(records))

    def _on_model_ready(self, info: ModelInfo) -> None:
        if self.shut:
            return
        self.model_info = info
        self.model_ready.emit(info)
        self.changed.emit()

    def _on_batch(self, records: list[FileRecord]) -> None:
        if self.shut:
            return
        readable = [r for r in records if r.error is None]
        self.records.update((r.path, r) for r in readable)
        self.batch_committed.emit(readable)
        self.changed.emit()

    def _on_finished(self, outcome: IndexOutcome) -> None:
        if self.shut:
            return
        report = outcome.report
        self.status.finish()
        newly_skipped = set(outcome.skipped) - set(self.skipped)
        self.skipped = list(outcome.skipped)
        if outcome.only is None:
            replaced = outcome.replaced
            self.records = outcome.records
        else:
            replaced = self._apply_changes(outcome.records, outcome.gone)
        if report.new or report.changed or report.moved or replaced:
            self.catalog_replaced.emit()
        if self.target is not None:
            self.searchable.emit(self.target)
            if not report.cancelled and not self.shut:
                self._watch(self.target)
        self.changed.emit()
        self._run_message(report, bool(newly_skipped), outcome.only is None)
        self.indexing_finished.emit(report)

    def _apply_changes(self, now: dict[str, FileRecord], gone: tuple[str, ...]) -> bool:
        """The records of a run over a few paths: `now` replace or join the others, `gone`
        leave. Whether any went or came (never a pass over the whole catalog)."""
        went = [p for p in gone if self.records.pop(p, None) is not None]
        came = any(p not in self.records for p in now)
        self.records.update(now)
        return bool(went) or came

    def _run_message(self, report: IndexReport, newly_skipped: bool, whole: bool) -> None:
        """What a finished run has to tell (remembered, so that the next run takes it away);
        a run over a few changed paths (not `whole`) found nothing of the folder's."""
        if report.cancelled:
            text, kind = (
                f"Indexing cancelled: {report.indexed:,} images were indexed and are kept. "
                "Open the folder again (or press F5) to go on where it stopped.",
                "info",
            )
        elif report.missing_kept:
            text, kind = (
                f"{report.warning} (To forget them: visualsearch index --forget-missing FOLDER.)",
                "error",
            )
        elif report.index_problem:
            text, kind = (f"Indexed, but {report.index_problem}.", "error")
        elif report.scanned == 0 and whole:
            text, kind = (
                f"No images found in {report.folder}. visualsearch looks for JPEG, PNG, WebP, "
                "HEIC, TIFF, BMP and GIF files, in sub-folders too.",
                "error",
            )
        elif newly_skipped:
            text, kind = (
                f"{skipped_text(len(self.skipped))} <a href='skipped'>Show them</a>",
                "info",
            )
        else:
            self.last_message = ""
            return
        self.last_message = text
        self.message.emit(text, kind)

    def _on_failed(self, message: str) -> None:
        if self.shut:
            return
        self.status.finish()
        self.indexing_failed.emit(message)

    def _job_ended(self) -> None:
        if self._pending_open is not None:
            folder, self._pending_open = self._pending_open, None
            self._open(folder)
        elif self._changed_paths and self.target is not None and not self.shut:
            self._index_changes()
