"""Cleaning up: duplicate groups (Duplicates tab), moving marked copies to the trash
after a confirmation, and the odd ones out in the grid. The work runs in the pool;
each result carries its ticket and is dropped when a newer request superseded it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QThreadPool, Signal
from PySide6.QtWidgets import QWidget

from visualsearch.core.collection import Collection
from visualsearch.core.duplicates import (
    collection_duplicates,
    collection_odd_ones_out,
    write_groups_csv,
)
from visualsearch.core.encoders.base import ModelInfo
from visualsearch.core.progress import CancelToken
from visualsearch.core.store import Store
from visualsearch.core.trash import move_to_trash, trash_listing
from visualsearch.qt.collection_controller import CollectionController
from visualsearch.qt.context import Confirm
from visualsearch.qt.dialogs import ask_save_path
from visualsearch.qt.duplicates_page import DuplicatesPage
from visualsearch.qt.results_controller import ResultsController
from visualsearch.qt.workers import EncoderProvider, FolderTarget, TaskSlot

OUTLIERS_SHOWN = 500


def over_collection(
    target: FolderTarget, encoders: EncoderProvider, info: ModelInfo | None, fn: Callable
) -> Callable[[], object]:
    """A function for a pool thread: `fn(collection)` on the folder's collection, opened
    there (its vectors stay on disk; the index gives each image's neighbours)."""

    def work() -> object:
        with Store(target.store_dir) as store:
            return fn(Collection(target.folder, store, info or encoders.get(target.model)))

    return work


class CleanupController(QObject):
    duplicates_ready = Signal(object)  # [DuplicateGroup]
    trash_finished = Signal(object)  # ([moved], [(path, reason)])
    show_images = Signal()  # the grid got something to show: bring the Images tab forward
    message = Signal(str, str)  # text, "info" | "error"
    _progress = Signal(str, str)  # from a pool thread: which task ("duplicates"…), text

    def __init__(
        self,
        page: DuplicatesPage,
        collection: CollectionController,
        results: ResultsController,
        encoders: EncoderProvider,
        pool: QThreadPool,
        confirm: Confirm,
        dialog_parent: QWidget,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.page = page
        self.collection = collection
        self.results = results
        self.encoders = encoders
        self.confirm = confirm
        self.dialog_parent = dialog_parent
        self.duplicates = TaskSlot(pool, self)
        self.trash = TaskSlot(pool, self, every=True)  # each move to the trash is told
        self.outliers = TaskSlot(pool, self)
        self._tokens: dict[str, CancelToken] = {}  # the pass running per task
        self._outliers_ticket = -1  # the grid's request the odd ones out answer
        self._progress.connect(self._show_progress)
        page.find_requested.connect(self.find_duplicates)
        page.trash_requested.connect(self.trash_files)
        page.export_requested.connect(self._ask_csv)
        collection.folder_changed.connect(self._folder_changed)
        collection.model_ready.connect(
            lambda info: page.set_model_threshold(info.near_duplicate_threshold)
        )

    def shut_down(self) -> None:
        """The window is closing: passes running stop, answers still to come are dropped."""
        self._stop_all()

    def _folder_changed(self, _target: object) -> None:
        self._stop_all()
        self.page.clear()

    def _stop_all(self) -> None:
        for slot in (self.duplicates, self.trash, self.outliers):
            slot.supersede()
        for token in self._tokens.values():
            token.cancel()

    def _token(self, task: str) -> CancelToken:
        """A new pass of `task`: the one before stops (its answer is dropped anyway)."""
        if task in self._tokens:
            self._tokens[task].cancel()

        def report(done: int, total: int, text: str) -> None:
            if text and not token.cancelled():
                self._progress.emit(task, f"{text}…")

        token = CancelToken(report)
        self._tokens[task] = token
        return token

    def _show_progress(self, task: str, text: str) -> None:
        if task == "duplicates":
            self.page.summary.setText(text)
        elif self.results.ticket == self._outliers_ticket:
            self.results.area.query_label.setText(text)
        else:  # the grid shows something newer: the answer would be dropped, so stop
            self._tokens[task].cancel()

    def _error(self, text: str) -> None:
        self.message.emit(text, "error")

    def _over_collection(self, fn: Callable) -> Callable[[], object]:
        target = self.collection.target
        return over_collection(target, self.encoders, self.collection.model_info, fn)

    def find_duplicates(self, threshold: float) -> None:
        if self.collection.target is None:
            self._error("Open a folder first.")
            return
        self.page.summary.setText("Looking for duplicates…")
        target, token = self.collection.target, self._token("duplicates")
        # reads the group members' pixels to choose the keepers
        work = self._over_collection(
            lambda col: collection_duplicates(col, threshold, progress=token)
        )
        self.duplicates.start(work, lambda groups: self._on_duplicates(target, groups), self._error)

    def _on_duplicates(self, target: FolderTarget, groups: object) -> None:
        self.page.set_groups(groups, target.folder)
        self.duplicates_ready.emit(groups)

    def trash_files(self, paths: list[Path]) -> None:
        """Move marked files to the system trash, after the user confirms the list."""
        if not paths:
            self.message.emit(
                "Mark the images to move to the trash first (the checkboxes).", "info"
            )
            return
        root = self.collection.target.folder
        listing = "\n".join(trash_listing(paths, root))  # real paths; links are never moved
        question = (
            f"Move {len(paths)} image(s) to the trash?\n\nThey can be restored from the "
            "trash; nothing is deleted. The list is under “Show Details”."
        )
        if not self.confirm(self.dialog_parent, "Move to trash", question, listing):
            return
        self.trash.start(lambda: move_to_trash(paths, root), self._on_trashed, self._error)

    def _on_trashed(self, result: object) -> None:
        moved, failed = result
        self.page.remove_paths(moved)
        text = f"Moved {len(moved)} image(s) to the trash."
        if failed:
            text += f" {len(failed)} could not be moved: " + "; ".join(
                f"{p.name}: {why}" for p, why in failed[:3]
            )
        self.message.emit(text, "info")
        self.trash_finished.emit(result)
        self.collection.reindex()  # the catalog forgets them

    def _ask_csv(self) -> None:
        target = self.collection.target
        if not self.page.groups or target is None:
            return
        name = f"{target.folder.name} duplicates.csv"
        path = ask_save_path(self.dialog_parent, "Save the list", name, "CSV (*.csv)")
        if path:
            self.save_csv(path)

    def save_csv(self, path: Path) -> Path:
        groups = self.page.groups
        written = write_groups_csv(groups, self.collection.target.folder, path)
        self.message.emit(f"Saved the list of {len(groups)} groups to {written}.", "info")
        return written

    def show_outliers(self) -> None:
        """The grid lists the images least like their nearest neighbours."""
        if self.collection.target is None:
            self._error("Open a folder first.")
            return
        token = self._token("outliers")

        def odd(col: Collection) -> list[tuple[str, float]]:
            ranked = collection_odd_ones_out(col, OUTLIERS_SHOWN, progress=token)
            return [(col.paths[r], s) for r, s in ranked]

        work = self._over_collection(odd)

        self.show_images.emit()
        ticket = self._outliers_ticket = self.results.supersede()
        self.results.area.query_label.setText("Finding the odd ones out…")
        self.outliers.start(
            work,
            lambda ranked: self._on_outliers(ticket, ranked),
            lambda text: None if token.cancelled() else self._error(text),
        )

    def _on_outliers(self, ticket: int, ranked: object) -> None:
        items = [self.results.item_for(rel, score) for rel, score in ranked]
        self.results.show_items(
            ticket,
            items,
            f"Odd ones out · {len(items):,} images, least like any other first "
            "(score: 1 − similarity to the 5 nearest)",
        )
