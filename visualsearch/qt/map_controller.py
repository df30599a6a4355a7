"""The Map tab: the map computed in a worker (cached in the store), selections and
clusters shown in the grid, renamed clusters, and exports of clusters or a selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QThreadPool, Signal
from PySide6.QtWidgets import QDialog, QWidget

from visualsearch.core.collection_map import CollectionMap, rename_cluster
from visualsearch.core.export import ExportReport, cluster_items, cluster_rows
from visualsearch.core.query import SelectionQuery
from visualsearch.core.store import Store
from visualsearch.qt.collection_controller import CollectionController
from visualsearch.qt.map_page import MapPage
from visualsearch.qt.results_controller import ResultsController
from visualsearch.qt.widgets import ExportDialog, JobStatus
from visualsearch.qt.workers import (
    EncoderProvider,
    ExportJob,
    JobSlot,
    MapJob,
    MapOutcome,
    TaskSlot,
)


def export_text(report: ExportReport, link: bool) -> str:
    """What an export did, in one message."""
    text = (
        f"{'Linked' if link else 'Copied'} {len(report.written):,} images into "
        f"{len(report.folders)} folder(s) in {report.dest}."
    )
    if report.already:
        text += f" {len(report.already):,} already there with the same content: not copied again."
    if report.renamed:
        text += f" {report.renamed} name(s) were taken and got a suffix; nothing was overwritten."
    if report.failed:
        text += f" {len(report.failed)} could not be written: " + "; ".join(
            f"{p.name}: {r}" for p, r in report.failed[:3]
        )
    if report.not_exported:
        why = f" ({report.stopped})" if report.stopped else ""
        text += f" {len(report.not_exported):,} not exported{why}."
    return text + (
        f" Manifest: {report.manifest.name}."
        if report.manifest
        else f" The manifest could not be written: {report.manifest_error}."
    )


class MapController(QObject):
    map_ready = Signal(object)  # CollectionMap
    export_finished = Signal(object)  # ExportReport
    item_clicked = Signal(object)  # GridItem: show its details
    show_images = Signal()  # the grid got something to show: bring the Images tab forward
    message = Signal(str, str)  # text, "info" | "error"

    def __init__(
        self,
        page: MapPage,
        collection: CollectionController,
        results: ResultsController,
        encoders: EncoderProvider,
        cache_dir: Path,
        status: JobStatus,
        pool: QThreadPool,
        dialog_parent: QWidget,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.page = page
        self.collection = collection
        self.results = results
        self.encoders = encoders
        self.cache_dir = cache_dir
        self.status = status
        self.dialog_parent = dialog_parent
        self.cmap: CollectionMap | None = None
        self.model_id = ""  # the model the map was made with (its names are kept per model)
        self.k: int | None = None  # None: automatic
        self.stale = True
        self.visible = False  # the tab is shown: a stale map is recomputed at once
        self._again = False
        self.selection = np.zeros(0, np.int64)
        self.jobs = JobSlot(self)
        self.jobs.idle.connect(self._job_ended)
        self.export_jobs = JobSlot(self)
        self.saves = TaskSlot(pool, self, every=True)  # a failed save is always told
        self.shut = False

        page.view.clicked.connect(self._clicked)
        page.view.selection_changed.connect(self.show_selection)
        page.more_like_these.connect(self.more_like_selection)
        page.export_selection.connect(lambda: self.ask_export(self.selection.tolist()))
        page.clusters.cluster_activated.connect(self.show_cluster)
        page.clusters.renamed.connect(self.rename_cluster)
        page.clusters.k_changed.connect(self.set_cluster_count)
        page.clusters.export_requested.connect(self._export_clusters)
        page.clusters.relayout_requested.connect(self.relayout)
        collection.folder_changed.connect(self._folder_changed)
        collection.indexing_finished.connect(self._indexed)

    def _folder_changed(self, _target: object) -> None:
        self.cmap, self.stale = None, True
        self.selection = np.zeros(0, np.int64)
        self.page.view.set_data(np.zeros((0, 2)), np.zeros(0, np.int64), [], 1)
        self.page.clusters.tree.clear()
        self._clear_selection()
        self._again = False
        self.jobs.cancel()  # its outcome is for the old folder: dropped when it arrives

    def _clear_selection(self) -> None:
        self.selection = np.zeros(0, np.int64)
        self.page.view.set_selection([])
        self.page.selection_label.setText("")
        self.page.more.setEnabled(False)
        self.page.export.setEnabled(False)

    def shut_down(self) -> None:
        """The window is closing: nothing new starts, pending answers are dropped."""
        self.shut = True
        self.saves.supersede()

    def _indexed(self, report) -> None:
        self.stale = True
        if self.visible and not report.cancelled:
            self.refresh()

    def set_visible(self, visible: bool) -> None:
        self.visible = visible
        if visible and self.stale:
            self.refresh()

    def relayout(self) -> None:
        """Lay every image out afresh (new ones were placed on the map as they came)."""
        self.refresh(relayout=True)

    def refresh(self, relayout: bool = False) -> None:
        """Lay out and cluster in a worker; from the store's cache when nothing changed."""
        target = self.collection.target
        if target is None or self.shut:
            return
        if self.jobs.busy():
            self._again = True
            return
        job = MapJob(target, self.encoders, self.cache_dir, self.k, relayout)
        # bound methods, not lambdas: PySide runs a lambda in the emitting (job's) thread
        job.progress.connect(self._progress)
        job.finished.connect(self._on_map)
        job.failed.connect(self._on_failed)
        self.page.message.setText("Laying out the map…" if relayout else "Computing the map…")
        self.jobs.start(job)

    def _progress(self, _done: int, _total: int, text: str) -> None:
        if not self.shut:  # a job told after shut_down: the page may be gone
            self.page.message.setText(text)

    def _on_map(self, outcome: MapOutcome) -> None:
        target = self.collection.target
        if self.shut or target is None or outcome.target.folder != target.folder:
            return  # the window is closing, or it was asked for another folder
        if outcome.target.model != target.model:
            self.stale = True  # made with the model before a switch
            return
        cmap = self.cmap = outcome.cmap
        self.model_id = outcome.model_id
        self.stale = False
        records = self.collection.records
        hashes = [r.hash if (r := records.get(p)) else None for p in cmap.paths]
        self.page.view.set_data(cmap.coords, cmap.labels, hashes, cmap.clustering.k)
        self.page.clusters.set_map(cmap, hashes)
        self.page.message.setText("")
        self._clear_selection()
        self.map_ready.emit(cmap)

    def _on_failed(self, message: str) -> None:
        if self.shut:
            return
        self.page.message.setText("")
        if message:
            self.message.emit(f"The map could not be made: {message}", "error")

    def _job_ended(self) -> None:
        if self._again:
            self._again = False
            self.refresh()

    def set_cluster_count(self, k: int | None) -> None:
        if k != self.k:
            self.k = k
            self.refresh()

    def _clicked(self, row: int) -> None:
        item = self.results.item_for(self.cmap.paths[row])
        grid_row = self.results.row_of_rel(item.rel)
        if grid_row is not None:
            self.results.grid.setCurrentIndex(self.results.model.index(grid_row))
        self.item_clicked.emit(item)

    def show_selection(self, rows) -> None:
        """The grid shows the images selected on the map."""
        if self.cmap is None:
            return
        self.selection = np.asarray(rows, np.int64)
        ticket = self.results.supersede()
        items = sorted(
            (self.results.item_for(self.cmap.paths[r]) for r in self.selection),
            key=lambda it: it.rel,
        )
        self.results.show_items(ticket, items, f"{len(items):,} images selected on the map")

    def show_cluster(self, cluster: int) -> None:
        if self.cmap is None:
            return
        cmap = self.cmap
        rows = sorted(cmap.members(cluster), key=lambda r: -cmap.scores[r])
        self.selection = np.asarray(rows, np.int64)
        self.page.view.set_selection(rows)
        self.page.selection_label.setText(f"{len(rows):,} selected")
        self.page.more.setEnabled(True)
        self.page.export.setEnabled(True)
        ticket = self.results.supersede()
        items = [self.results.item_for(cmap.paths[r], float(cmap.scores[r])) for r in rows]
        header = (
            f"Cluster “{cmap.names[cluster]}” · {len(items):,} images, closest to its centre first"
        )
        self.results.show_items(ticket, items, header)

    def more_like_selection(self) -> None:
        target = self.collection.target
        if self.cmap is None or not len(self.selection) or target is None:
            return
        paths = tuple(target.folder / self.cmap.paths[r] for r in self.selection)
        self.show_images.emit()
        self.results.run_query(SelectionQuery(paths))

    def rename_cluster(self, cluster: int, name: str) -> None:
        if self.cmap is None or self.collection.target is None:
            return
        self.cmap.names[cluster] = name or self.cmap.suggested[cluster]
        store_dir, model, k = (
            self.collection.target.store_dir,
            self.model_id,
            self.cmap.clustering.k,
        )
        members = [self.cmap.paths[r] for r in self.cmap.members(cluster)]

        def save() -> None:  # the name follows these images when the map is made again
            with Store(store_dir) as store:
                rename_cluster(store, model, k, cluster, name, members)

        self.saves.start(
            save,
            lambda _none: None,
            lambda text: self.message.emit(f"The name was not saved: {text}", "error"),
        )

    # -- export ----------------------------------------------------------------------------

    def _export_clusters(self, clusters: list[int]) -> None:
        if self.cmap is not None:
            self.ask_export(cluster_rows(self.cmap, clusters))

    def ask_export(self, rows: list[int]) -> None:
        target = self.collection.target
        if not rows or self.cmap is None or target is None:
            self.message.emit(
                "Nothing to export: check some clusters or select images on the map.", "info"
            )
            return
        groups = {self.cmap.names[self.cmap.labels[r]] for r in rows}
        start = str(Path.home() / f"{target.folder.name} by cluster")
        dialog = ExportDialog(len(rows), len(groups), start, self.dialog_parent)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.dest.text().strip():
            dest = Path(dialog.dest.text().strip()).expanduser()
            self.export_rows(rows, dest, dialog.link.isChecked())

    def export_rows(self, rows: list[int], dest: Path, link: bool = False) -> None:
        """Copy (or link) the images at these map rows into folders named after their clusters."""
        if self.export_jobs.busy():
            self.message.emit("An export is still running.", "info")
            return
        items = cluster_items(self.cmap, self.collection.target.folder, rows)
        job = ExportJob(items, dest, link)
        job.progress.connect(self.status.update_progress)
        job.finished.connect(self._exported)
        job.failed.connect(self._export_failed)
        self.status.start("Exporting")
        self.export_jobs.start(job)

    def _exported(self, report: ExportReport) -> None:
        self.status.finish()
        link = self.export_jobs.job.link  # still held: the slot lets go after this signal
        self.message.emit(export_text(report, link), "info")
        self.export_finished.emit(report)

    def _export_failed(self, message: str) -> None:
        self.status.finish()
        self.message.emit(f"Export failed: {message}", "error")

    def busy_jobs(self) -> list[JobSlot]:
        return [self.jobs, self.export_jobs]
