"""The main window's Map tab: computing the map in a worker, showing selections and
clusters in the grid, renaming clusters and exporting them. A mixin of MainWindow:
it uses the window's widgets and state, and computes nothing itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QDialog

from visualsearch.core.collection_map import CollectionMap, rename_cluster
from visualsearch.core.export import ExportItem, ExportReport
from visualsearch.core.query import SelectionQuery
from visualsearch.core.store import Store
from visualsearch.qt.image_list_model import GridItem
from visualsearch.qt.widgets import ExportDialog
from visualsearch.qt.workers import ExportJob, MapJob, run_task


class MapActions:
    def _tab_changed(self, _index: int) -> None:
        if self.tabs.currentWidget() is self.map_page and self._map_stale:
            self.refresh_map()

    def show_map(self) -> None:
        self.tabs.setCurrentWidget(self.map_page)

    def refresh_map(self) -> None:
        """Lay out and cluster in a worker; from the store's cache when nothing changed."""
        if self.target is None:
            return
        if self.map_jobs.busy():
            self._map_again = True
            return
        job = MapJob(self.target, self.ctx.encoders, self.ctx.paths.cache_dir, self._map_k)
        job.progress.connect(self._map_progress)
        job.finished.connect(self._on_map)
        job.failed.connect(self._on_map_failed)
        self.map_page.message.setText("Computing the map…")
        self.map_jobs.start(job)

    def _map_progress(self, _done: int, _total: int, message: str) -> None:
        self.map_page.message.setText(message)

    def _on_map(self, cmap: CollectionMap) -> None:
        self.cmap = cmap
        self._map_stale = False
        hashes = [r.hash if (r := self.records.get(p)) else None for p in cmap.paths]
        self.map_page.view.set_data(cmap.coords, cmap.labels, hashes, cmap.clustering.k)
        self.map_page.clusters.set_map(cmap, hashes)
        self.map_page.message.setText("")
        self.map_selection = np.zeros(0, np.int64)
        self.map_ready.emit(cmap)

    def _on_map_failed(self, message: str) -> None:
        self.map_page.message.setText("")
        if message:
            self.show_error(f"The map could not be made: {message}")

    def _map_job_ended(self) -> None:
        if self._map_again:
            self._map_again = False
            self.refresh_map()

    def set_cluster_count(self, k: int | None) -> None:
        if k != self._map_k:
            self._map_k = k
            self.refresh_map()

    def _map_item(self, row: int, score: float | None = None) -> GridItem:
        rel = self.cmap.paths[row]
        return GridItem(self.target.folder / rel, rel, self.records.get(rel), score)

    def _map_clicked(self, row: int) -> None:
        item = self._map_item(row)
        grid_row = self.model.row_of(item.path)
        if grid_row is not None:
            self.grid.setCurrentIndex(self.model.index(grid_row))
        self.details.show_item(item)

    def show_map_selection(self, rows) -> None:
        """The grid shows the images selected on the map."""
        if self.cmap is None:
            return
        self.map_selection = np.asarray(rows, np.int64)
        self._request += 1
        items = sorted((self._map_item(r) for r in self.map_selection), key=lambda it: it.rel)
        self._show_items(items, f"{len(items):,} images selected on the map")

    def show_cluster(self, cluster: int) -> None:
        if self.cmap is None:
            return
        rows = sorted(self.cmap.members(cluster), key=lambda r: -self.cmap.scores[r])
        self.map_selection = np.asarray(rows, np.int64)
        self.map_page.view.set_selection(rows)
        self.map_page.selection_label.setText(f"{len(rows):,} selected")
        self.map_page.more.setEnabled(True)
        self.map_page.export.setEnabled(True)
        self._request += 1
        items = [self._map_item(r, float(self.cmap.scores[r])) for r in rows]
        name = self.cmap.names[cluster]
        self._show_items(
            items, f"Cluster “{name}” · {len(items):,} images, closest to its centre first"
        )

    def _show_items(self, items: list[GridItem], header: str) -> None:
        self._browse_rows = {}
        self.model.set_items(items)
        self.query_label.setText(header)
        self._show_query_image(None)
        self.all_button.setVisible(True)

    def more_like_selection(self) -> None:
        if self.cmap is None or not len(self.map_selection):
            return
        paths = tuple(self.target.folder / self.cmap.paths[r] for r in self.map_selection)
        self.tabs.setCurrentIndex(0)
        self.run_query(SelectionQuery(paths))

    def rename_cluster(self, cluster: int, name: str) -> None:
        if self.cmap is None:
            return
        self.cmap.names[cluster] = name or self.cmap.suggested[cluster]
        store_dir, model, k = self.target.store_dir, self.cmap_model(), self.cmap.clustering.k

        def save() -> None:
            with Store(store_dir) as store:
                rename_cluster(store, model, k, cluster, name)

        run_task(self.pool, save, self._ignore, self.show_error)

    def cmap_model(self) -> str:
        return self._encoder_id or self.ctx.encoders.get(self.model_choice).id

    def _ignore(self, _result: object) -> None:
        pass

    def _export_clusters_clicked(self, clusters: list[int]) -> None:
        if self.cmap is None:
            return
        rows = [r for c in clusters for r in self.cmap.members(c)]
        self._ask_export(rows)

    def _export_selection_clicked(self) -> None:
        self._ask_export(self.map_selection.tolist())

    def _ask_export(self, rows: list[int]) -> None:
        if not rows:
            self.show_info("Nothing to export: check some clusters or select images on the map.")
            return
        groups = {self.cmap.names[self.cmap.labels[r]] for r in rows}
        start = str(Path.home() / f"{self.target.folder.name} by cluster")
        dialog = ExportDialog(len(rows), len(groups), start, self)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.dest.text().strip():
            self.export_rows(
                rows, Path(dialog.dest.text().strip()).expanduser(), dialog.link.isChecked()
            )

    def export_rows(self, rows: list[int], dest: Path, link: bool = False) -> None:
        """Copy (or link) the images at these map rows into folders named after their clusters."""
        if self.export_jobs.busy():
            self.show_info("An export is still running.")
            return
        cmap = self.cmap
        items = [
            ExportItem(
                self.target.folder / cmap.paths[r],
                cmap.names[cmap.labels[r]],
                int(cmap.labels[r]),
                float(cmap.scores[r]),
            )
            for r in rows
        ]
        job = ExportJob(items, dest, link)
        job.progress.connect(self.indexing.update_progress)
        job.finished.connect(self._on_export)
        job.failed.connect(self._on_export_failed)
        self.indexing.start("Exporting")
        self.export_jobs.start(job)

    def _on_export(self, report: ExportReport) -> None:
        self.indexing.finish()
        verb = "Linked" if self.export_jobs.job.link else "Copied"  # the job ends after this
        text = (
            f"{verb} {len(report.written):,} images into {len(report.folders)} folder(s) "
            f"in {report.dest}."
        )
        if report.already:
            text += (
                f" {len(report.already):,} already there with the same content: not copied again."
            )
        if report.renamed:
            text += (
                f" {report.renamed} name(s) were taken and got a suffix; nothing was overwritten."
            )
        if report.failed:
            text += f" {len(report.failed)} could not be written: " + "; ".join(
                f"{p.name}: {r}" for p, r in report.failed[:3]
            )
        if report.not_exported:
            why = f" ({report.stopped})" if report.stopped else ""
            text += f" {len(report.not_exported):,} not exported{why}."
        text += (
            f" Manifest: {report.manifest.name}."
            if report.manifest
            else f" The manifest could not be written: {report.manifest_error}."
        )
        self.show_info(text)
        self.export_finished.emit(report)

    def _on_export_failed(self, message: str) -> None:
        self.indexing.finish()
        self.show_error(f"Export failed: {message}")
