"""Measuring against the labels, from the Sort tab: which model fits the labelled photos
(a report dialog) and the images unlike the normal set (in the grid). Both run in the
pool, reading the labels there; each answer is dropped when another folder opened."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, QThreadPool, Signal
from PySide6.QtWidgets import QWidget

from visualsearch.core.anomalies import collection_anomalies
from visualsearch.core.collection import Collection
from visualsearch.core.labels import LabelBook
from visualsearch.core.model_evaluation import ModelReport, model_report, usable_labels
from visualsearch.core.store import Store
from visualsearch.qt.cleanup_controller import over_collection
from visualsearch.qt.collection_controller import CollectionController
from visualsearch.qt.evaluation_dialog import EvaluationDialog
from visualsearch.qt.results_controller import ResultsController
from visualsearch.qt.sort_page import SortPage
from visualsearch.qt.workers import EncoderProvider, TaskSlot


class EvaluationController(QObject):
    message = Signal(str, str)  # text, "info" | "error"
    show_images = Signal()  # the grid got something to show: bring the Images tab forward

    def __init__(
        self,
        page: SortPage,
        collection: CollectionController,
        results: ResultsController,
        encoders: EncoderProvider,
        pool: QThreadPool,
        dialog_parent: QWidget,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.collection, self.results, self.encoders = collection, results, encoders
        self.dialog_parent = dialog_parent
        self.inspecting = TaskSlot(pool, self)
        self.evaluating = TaskSlot(pool, self)
        self.report: EvaluationDialog | None = None
        collection.folder_changed.connect(lambda _target: self.shut_down())
        page.anomalies_requested.connect(self.show_anomalies)
        page.evaluate_requested.connect(self.evaluate)

    def shut_down(self) -> None:
        for slot in (self.inspecting, self.evaluating):
            slot.supersede()

    # -- which model fits ------------------------------------------------------------------

    def evaluate(self) -> None:
        """Every model this folder has vectors of, measured on the labelled images in the
        pool; the report opens when it is done."""
        target = self.collection.target
        if target is None:
            return
        encoders = self.encoders

        def measure() -> list[ModelReport]:
            encoder, folder = encoders.get(target.model), target.folder
            reports = []
            with Store(target.store_dir) as store:
                labels, _ = usable_labels(LabelBook(store).names_by_path())
                if len(set(labels.values())) < 2:
                    raise ValueError("label at least two images each of two labels first")
                for model_id in sorted(store.vector_counts(), key=lambda m: m != encoder.id):
                    if model_id == encoder.id:  # the folder's model: its speed measured too
                        reports.append(model_report(store, model_id, labels, encoder, folder))
                    else:
                        reports.append(model_report(store, model_id, labels))
            return reports

        self.message.emit("Measuring each model on the labelled images…", "info")
        self.evaluating.start(measure, self._evaluated, lambda t: self.message.emit(t, "error"))

    def _evaluated(self, reports: object) -> None:
        self.message.emit(f"Measured {len(reports)} model(s) on the labelled images.", "info")
        self.report = EvaluationDialog(reports, self.dialog_parent)
        self.report.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.report.show()

    # -- anomalies --------------------------------------------------------------------------

    def show_anomalies(self, percentile: float) -> None:
        """The grid lists the images unlike the normal set, most unusual first."""
        target = self.collection.target
        if target is None:
            return

        def unusual(col: Collection):
            outside, found = collection_anomalies(col, LabelBook(col.store), percentile)
            return outside, found.threshold

        work = over_collection(target, self.encoders, self.collection.model_info, unusual)
        ticket = self.results.supersede()
        self.results.area.query_label.setText("Measuring against the normal set…")
        self.show_images.emit()
        self.inspecting.start(
            work,
            lambda found: self._on_anomalies(ticket, percentile, *found),
            lambda text: self.message.emit(text, "error"),
        )

    def _on_anomalies(self, ticket: int, percentile: float, outside, threshold: float) -> None:
        items = [self.results.item_for(rel, score) for rel, score in outside]
        self.results.show_items(
            ticket,
            items,
            f"Unlike the normal set · {len(items):,} images, most unusual first (score: "
            f"distance to the 5 nearest normal images; over {threshold:.3f}, the normal "
            f"images' own {percentile:g}th percentile)",
        )
