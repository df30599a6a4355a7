"""The library's other roots, kept up to date while the window is open.

Each online root is checked once when the keeper starts (an indexing run: unchanged
files cost a stat, only new and changed ones are encoded) and then watched; what a
watcher sees is indexed by its paths, as the open folder is. The folder open in the
window is the CollectionController's and is left alone here. One run at a time, and
only while the open folder is not being indexed: both would share the same cores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from visualsearch.core.folder import ModelChoice, index_and_record, remembered_model
from visualsearch.core.indexing import IndexOptions, IndexReport
from visualsearch.core.library import Library, LibraryError, is_online
from visualsearch.core.names import printable
from visualsearch.core.store import Store, default_store_dir
from visualsearch.core.watch import FolderWatcher, relative_paths
from visualsearch.qt.collection_controller import CollectionController
from visualsearch.qt.workers import EncoderProvider, JobSlot, WorkerJob

WHOLE = None  # a root to check whole, rather than some paths of it


class RootIndexJob(WorkerJob):
    """Indexes one library root (or the paths `options.only` of it) with the model it was
    last indexed with (`model` for a new one); `finished` carries the IndexReport.
    Nothing is loaded for the window: the root is not shown."""

    def __init__(
        self,
        root: Path,
        store_dir: Path,
        encoders: EncoderProvider,
        model: ModelChoice,
        options: IndexOptions,
    ) -> None:
        super().__init__()
        self.root, self.store_dir, self.encoders = root, store_dir, encoders
        self.model, self.options = model, options

    def work(self) -> object:
        with Store(self.store_dir, root=self.root) as store:
            # a root keeps the model it was indexed with: a background check never starts
            # encoding a whole drive with another (hours for a big one)
            model = remembered_model(store) if store.get_meta("model_spec") else self.model
            encoder = self.encoders.get(model)
            return index_and_record(self.root, store, encoder, model, self.token, self.options)


class LibraryKeeper(QObject):
    """Keeps the roots of the library in `data_dir` indexed with the model `model()`
    gives, their stores where the open folder's go (`collection.store_base`); `status`
    says what it is doing ("" when there is nothing to say)."""

    status = Signal(str)
    _changed_on_disk = Signal(object, object)  # root, {paths}: from a watcher's thread

    def __init__(
        self,
        data_dir: Path,
        encoders: EncoderProvider,
        model: Callable[[], ModelChoice],
        collection: CollectionController,
        options: IndexOptions,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.data_dir = data_dir
        self.encoders, self.model, self.collection = encoders, model, collection
        self.options = options
        self.jobs = JobSlot(self)
        self.jobs.idle.connect(self._next)
        collection.jobs.idle.connect(self._next)  # the open folder's run has ended
        collection.folder_changed.connect(self._watch)  # the open root is the window's
        self.roots: list[Path] = []
        self.watchers: dict[Path, FolderWatcher] = {}
        self.pending: dict[Path, set[str] | None] = {}  # root → paths to look at (WHOLE)
        self.reports: list[tuple[Path, IndexReport]] = []  # the runs since the last start
        self.problems: list[str] = []  # roots that could not be indexed, and why
        self.shut = False
        self._changed_on_disk.connect(self._on_disk_change)

    def start(self) -> None:
        """Check every online root now, and watch it from then on (again after the
        library's list of roots changed: roots taken off are let go of)."""
        if self.shut:
            return
        try:
            roots = Library(self.data_dir).roots
        except LibraryError as exc:
            self.status.emit(f"Library: {exc}")
            return
        self.roots = roots
        self.pending = {r: WHOLE for r in roots if is_online(r)}
        self.reports, self.problems = [], []
        self._watch()
        self._next()

    def _watch(self, _target: object = None) -> None:
        """Watch the online roots but the one open in the window (its own watcher sees
        it: a second one doubles the inotify watches of a big tree)."""
        if self.shut:
            return
        wanted = {r for r in self.roots if r != self._open_root() and is_online(r)}
        for root in [r for r in self.watchers if r not in wanted]:
            self.watchers.pop(root).stop()
        for root in wanted - self.watchers.keys():
            watcher = FolderWatcher(root, lambda p, r=root: self._changed_on_disk.emit(r, p))
            if watcher.start():
                self.watchers[root] = watcher

    def shut_down(self) -> None:
        self.shut = True
        self.pending = {}
        self.jobs.cancel()
        for watcher in self.watchers.values():
            watcher.stop()
        self.watchers = {}

    def _on_disk_change(self, root: Path, paths: set) -> None:
        if self.shut or root not in self.watchers:
            return
        if root in self.pending and self.pending[root] is WHOLE:
            return  # a whole check is coming: it sees these too
        self.pending[root] = (self.pending.get(root) or set()) | relative_paths(paths, root)
        self._next()

    def _open_root(self) -> Path | None:
        target = self.collection.target
        return target.folder if target is not None else None

    def _next(self) -> None:
        """Start the next run, unless one is running or the open folder is being indexed."""
        if self.shut or self.jobs.busy() or self.collection.busy():
            return
        open_root = self._open_root()
        self.pending.pop(open_root, None)  # kept by the window's own runs and watcher
        while self.pending:
            root, paths = next(iter(self.pending.items()))
            del self.pending[root]
            if is_online(root):
                break
        else:
            self._say_done()
            return
        only = tuple(sorted(paths)) if paths is not WHOLE else None
        job = RootIndexJob(
            root,
            default_store_dir(root, self.collection.store_base),
            self.encoders,
            self.model(),
            replace(self.options, only=only),
        )
        job.finished.connect(lambda report, r=root: self.reports.append((r, report)))
        job.failed.connect(lambda why, r=root: self._failed(r, why))
        self.status.emit(f"Library: checking {printable(root.name or str(root))}…")
        self.jobs.start(job)

    def _failed(self, root: Path, why: str) -> None:
        if why:  # '' is a cancelled run
            self.problems.append(f"{printable(str(root))} could not be indexed: {why}")

    def _say_done(self) -> None:
        new = {root: r.new + r.changed for root, r in self.reports if r.new + r.changed}
        if self.problems:
            self.status.emit("Library: " + "; ".join(self.problems))
        elif new:
            count = sum(new.values())
            names = ", ".join(printable(root.name or str(root)) for root in new)
            images = "image" if count == 1 else "images"
            self.status.emit(f"Library: {count:,} new or changed {images} in {names}")
        elif self.reports:
            self.status.emit("")
