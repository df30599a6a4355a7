"""Sorting by example in the window: the labels (Sort tab and the grid's "Label as"
menu), proposals retrained in the pool after each decision, the review queue, and
applying the sort into folders with its undo. Label changes are small catalog writes
on this thread; proposals and file operations run in the pool."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QColorDialog, QFileDialog, QInputDialog, QMenu, QWidget

from visualsearch.core.collection import Collection
from visualsearch.core.labels import LabelBook, LabelError, keyword_sidecars
from visualsearch.core.names import printable
from visualsearch.core.proposals import collection_proposals, content_hashes
from visualsearch.core.review import ReviewQueue
from visualsearch.core.sort_moves import apply_sort, labelled_items, last_journal, undo_sort
from visualsearch.core.store import Store, StoreError
from visualsearch.qt.cleanup_controller import over_collection
from visualsearch.qt.collection_controller import CollectionController
from visualsearch.qt.context import Confirm
from visualsearch.qt.dialogs import ask_save_path
from visualsearch.qt.sort_page import SortPage
from visualsearch.qt.workers import EncoderProvider, TaskSlot

RETRAIN_AFTER_MS = 400  # a burst of decisions retrains once, after the last one
SORT_MODES = ("copy", "link", "move")
AskSort = Callable[[QWidget], tuple[Path, str] | None]  # parent → (destination, mode)


def ask_sort(parent: QWidget) -> tuple[Path, str] | None:
    """The destination folder and how (copy, hard link, move), asked in dialogs."""
    dest = QFileDialog.getExistingDirectory(parent, "Put the label folders into")
    if not dest:
        return None
    modes = ["Copy the images", "Hard-link the images (no extra space)", "Move the images"]
    chosen, ok = QInputDialog.getItem(parent, "Apply sort", "How:", modes, 0, False)
    return (Path(dest), SORT_MODES[modes.index(chosen)]) if ok else None


class SortingController(QObject):
    message = Signal(str, str)  # text, "info" | "error"
    labels_changed = Signal()

    def __init__(
        self,
        page: SortPage,
        collection: CollectionController,
        encoders: EncoderProvider,
        pool: QThreadPool,
        confirm: Confirm,
        journal_dir: Path,
        dialog_parent: QWidget,
        ask_sort: AskSort = ask_sort,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.page, self.collection, self.encoders = page, collection, encoders
        self.confirm, self.journal_dir, self.dialog_parent = confirm, journal_dir, dialog_parent
        self.ask_sort = ask_sort
        self.book: LabelBook | None = None
        self.queue: ReviewQueue | None = None
        self._store: Store | None = None
        self.proposing = TaskSlot(pool, self)
        self.sorting = TaskSlot(pool, self, every=True)  # each sort and undo is told
        self._retrain = QTimer(self, singleShot=True, interval=RETRAIN_AFTER_MS)
        self._retrain.timeout.connect(self.propose)
        collection.folder_changed.connect(self._folder_changed)
        collection.searchable.connect(lambda _target: self.propose())
        page.new_label.connect(self.new_label)
        page.rename_label.connect(self._rename)
        page.recolour_label.connect(self._recolour)
        page.delete_label.connect(self._delete)
        page.normal_label.connect(self._normal)
        page.from_subfolders.connect(self.from_subfolders)
        page.review_changed.connect(self._review_changed)
        page.accept.connect(lambda at: self._decide(lambda q: q.accept(at)))
        page.reject.connect(lambda at: self._decide(lambda q: q.reject(at)))
        page.assign.connect(lambda at, label: self._decide(lambda q: q.assign(at, label)))
        page.undo.connect(self.undo)
        page.accept_all_sure.connect(self.accept_all_sure)
        page.sure_changed.connect(lambda _value: self._show_queue())
        page.apply_requested.connect(self.apply)
        page.undo_sort_requested.connect(self.undo_sort)
        page.export_requested.connect(self._ask_export)
        page.sidecars_requested.connect(self.write_sidecars)

    def shut_down(self) -> None:
        self._stop()
        self._close()

    def _stop(self) -> None:
        """Proposals still to come for this folder are dropped (a sort's or an undo's
        outcome is still told: files changed)."""
        self._retrain.stop()
        self.proposing.supersede()

    # -- the folder's labels ----------------------------------------------------------------

    def _folder_changed(self, target) -> None:
        self._stop()
        self._close()
        try:
            self._store = Store(target.store_dir, root=target.folder)
        except StoreError as exc:  # the collection says so too; the Sort tab stays empty
            self.message.emit(f"Labels cannot be read: {exc}", "error")
            return
        self.book = LabelBook(self._store)
        self.queue = ReviewQueue(self.book)
        self._show_labels()
        self.page.set_queue([], target.folder)

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
        self._store = self.book = self.queue = None

    def _show_labels(self) -> None:
        if self.book is not None:
            self.page.set_labels(self.book.all(), self.book.counts())
            self.labels_changed.emit()

    def _labels_edit(self, change: Callable[[LabelBook], object]) -> object:
        """Run a label change; its error is said, not raised."""
        if self.book is None:
            self.message.emit("Open a folder first.", "info")
            return None
        try:
            done = change(self.book)
        except LabelError as exc:
            self.message.emit(str(exc), "error")
            return None
        self._show_labels()
        self._retrain.start()
        return done

    def new_label(self) -> int | None:
        name, ok = QInputDialog.getText(self.dialog_parent, "New label", "Name:")
        made = self._labels_edit(lambda book: book.create(name)) if ok else None
        return None if made is None else made.id

    def _rename(self, label: int) -> None:
        old = self.book.get(label).name
        name, ok = QInputDialog.getText(self.dialog_parent, "Rename label", "Name:", text=old)
        if ok:
            self._labels_edit(lambda book: book.rename(label, name))

    def _recolour(self, label: int) -> None:
        chosen = QColorDialog.getColor(QColor(self.book.get(label).colour), self.dialog_parent)
        if chosen.isValid():
            self._labels_edit(lambda book: book.recolour(label, chosen.name()))

    def _delete(self, label: int) -> None:
        name, n = self.book.get(label).name, self.book.counts().get(label, 0)
        question = f"Delete the label “{name}”? Its {n} images lose it; no file is touched."
        if self.confirm(self.dialog_parent, "Delete label", question, ""):
            self._labels_edit(lambda book: book.delete(label))

    def _normal(self, label: int) -> None:
        normal = not self.book.get(label).normal
        self._labels_edit(lambda book: book.set_normal(label, normal))

    def from_subfolders(self) -> None:
        records = list(self.collection.records.values())
        made = self._labels_edit(lambda book: book.from_subfolders(records))
        if made is None:
            return
        text = f"Labelled {sum(made.labelled.values())} images by their subfolder."
        if not made.labelled and not made.conflicts:
            text = "This folder has no subfolders with indexed images."
        if made.conflicts:
            text += (
                f" {made.conflicts} have identical copies in other subfolders: their "
                "labels were left as they were."
            )
        self.message.emit(text, "info")

    def label_paths(self, rels: list[str], label: int | None) -> None:
        """Give the images (catalog paths) `label` (None: take their labels away)."""
        hashes = [r.hash for rel in rels if (r := self.collection.records.get(rel)) and r.hash]
        if self._labels_edit(lambda book: book.assign(hashes, label)) is not None:
            name = "no label" if label is None else f"“{self.book.get(label).name}”"
            self.message.emit(f"{len(hashes)} images now have {name}.", "info")

    def fill_label_menu(self, menu: QMenu, rels: list[str]) -> None:
        """The grid's "Label as" submenu for the selected images."""
        if self.book is None or not rels:
            return
        sub = menu.addMenu(f"Label as ({len(rels)})")
        for n, label in enumerate(self.book.all(), start=1):
            sub.addAction(
                f"&{n} {printable(label.name)}" if n <= 9 else printable(label.name),
                lambda label=label.id: self.label_paths(rels, label),
            )
        sub.addSeparator()
        sub.addAction("New label…", lambda: self._label_new(rels))
        sub.addAction("No label", lambda: self.label_paths(rels, None))

    def _label_new(self, rels: list[str]) -> None:
        label = self.new_label()
        if label is not None:
            self.label_paths(rels, label)

    # -- proposals and review -------------------------------------------------------------

    def propose(self) -> None:
        """Retrain and propose again in the pool (the newest request wins)."""
        target = self.collection.target
        if target is None or self.book is None:
            return

        def proposals(col: Collection):
            book = LabelBook(col.store)
            hashes = content_hashes(col)
            return collection_proposals(col, book, hashes), list(col.paths), hashes

        work = over_collection(target, self.encoders, self.collection.model_info, proposals)
        self.proposing.start(work, self._proposed, self._not_proposed)

    def _proposed(self, answer: object) -> None:
        proposals, paths, hashes = answer
        if self.queue is None:
            return
        self.queue.load(proposals, paths, hashes)
        self._show_queue()

    def _not_proposed(self, text: str) -> None:
        if self.queue is not None:
            self.queue.load_nothing()
            self._show_queue()
        self.page.set_status(text if "proposals need" in text else f"No proposals: {text}")

    def _review_changed(self, label: int | None, order: str) -> None:
        if self.queue is not None:
            self.queue.show(label, order)
            self._show_queue()

    def _decide(self, decision: Callable[[ReviewQueue], object], position=None) -> None:
        if self.queue is None:
            return
        at = self.page.position() if position is None else position
        try:
            decision(self.queue)
        except (IndexError, LabelError) as exc:
            self.message.emit(str(exc), "error")
            return
        self._show_labels()
        self._show_queue(at)
        self._retrain.start()

    def undo(self) -> None:
        if self.queue is not None and self.queue.can_undo():
            at = self.queue.undo()
            self._show_labels()
            self._show_queue(at or 0)
            self._retrain.start()

    def accept_all_sure(self) -> None:
        if self.queue is not None:
            n = self.queue.accept_sure(self.page.sure.value())
            self.message.emit(f"Accepted {n} sure proposals (Z takes them back).", "info")
            self._show_labels()
            self._show_queue()
            self._retrain.start()

    def _show_queue(self, position: int = 0) -> None:
        if self.queue is None or self.collection.target is None:
            return
        items = self.queue.items
        sure = sum(p.confidence >= self.page.sure.value() for p in items)
        self.page.accept_sure_button.setText(f"Accept all sure ({sure})")
        self.page.set_queue(items, self.collection.target.folder, position)
        self.page.set_status(f"{len(items):,} proposals to review, {sure:,} sure")

    # -- labels out ---------------------------------------------------------------------------

    def _ask_export(self) -> None:
        target = self.collection.target
        if target is None or self.book is None:
            return
        name, filters = f"{target.folder.name} labels.csv", "CSV (*.csv);;JSON (*.json)"
        path = ask_save_path(self.dialog_parent, "Export labels", name, filters)
        if path:
            self.export_labels(path)

    def export_labels(self, path: Path) -> None:
        """The labelled images as CSV or JSON (by the name), never over another file."""
        try:
            written = self.book.export(path, self.collection.target.folder)
        except OSError as exc:
            self.message.emit(f"The labels were not exported: {exc}", "error")
            return
        self.message.emit(f"Exported the labels to {written}.", "info")

    def write_sidecars(self) -> None:
        """Each labelled image's label into a new XMP sidecar, after a confirmation."""
        target = self.collection.target
        if target is None or self.book is None:
            return
        labelled = self.book.paths_by_label(self.collection.records.values())
        if not labelled:
            self.message.emit("No image has a label yet.", "info")
            return
        question = (
            f"Write a new XMP sidecar (photo.jpg.xmp) beside each of {len(labelled)} "
            "labelled images, with its label as a keyword? Images and existing sidecars "
            "are not changed."
        )
        if not self.confirm(self.dialog_parent, "XMP sidecars", question, ""):
            return
        folder = target.folder
        self.sorting.start(  # a file each, synced: in the pool
            lambda: keyword_sidecars(folder, labelled),
            self._sidecars_written,
            lambda text: self.message.emit(f"No sidecars written: {text}", "error"),
        )

    def _sidecars_written(self, answer: object) -> None:
        written, skipped = answer
        text = f"Wrote {len(written)} XMP sidecars."
        if skipped:
            text += f" {len(skipped)} left alone: " + "; ".join(
                f"{p.name}: {why}" for p, why in skipped[:3]
            )
        self.message.emit(text, "info")

    # -- applying the sort ----------------------------------------------------------------

    def apply(self) -> None:
        target = self.collection.target
        if target is None or self.book is None:
            return
        records = dict(self.collection.records)
        labels = self.book.names_by_path(records=records.values())
        if not labels:
            self.message.emit("No image has a label yet.", "info")
            return
        asked = self.ask_sort(self.dialog_parent)
        if asked is None:
            return
        dest, mode = asked
        if mode == "move":
            question = (
                f"Move {len(labels)} images out of {target.folder} into a folder per label "
                f"in {dest}? Undo last sort puts them back."
            )
            listing = "\n".join(
                f"{target.folder / rel} → {name}" for rel, name in list(labels.items())[:5000]
            )
            if not self.confirm(self.dialog_parent, "Move images", question, listing):
                return
        self.message.emit(f"Sorting {len(labels)} images into {dest}…", "info")
        journals, folder = self.journal_dir, target.folder

        def work():
            items, stale = labelled_items(labels, records, folder)  # stats every file
            report = apply_sort(items, dest, mode, journals)
            report.skipped.extend(stale)
            return report

        self.sorting.start(work, self._sorted, self._sort_failed)

    def _sorted(self, report: object) -> None:
        text = f"{report.mode.capitalize()}: {len(report.done)} images into {report.dest}."
        problems = report.failed + report.skipped
        if problems:
            text += f" {len(problems)} not done: " + "; ".join(
                f"{p.name}: {why}" for p, why in problems[:3]
            )
        if report.stopped:
            text += f" Stopped: {report.stopped}."
        self.message.emit(text + " (Undo last sort puts them back.)", "info")
        if report.mode == "move":
            self.collection.reindex()

    def _sort_failed(self, text: str) -> None:
        self.message.emit(f"The sort was not applied: {text}", "error")

    def undo_sort(self) -> None:
        journal = last_journal(self.journal_dir)
        if journal is None:
            self.message.emit("There is no sort to undo.", "info")
            return
        question = "Undo the last sort? Moved images go back where they were; copies are removed."
        if self.confirm(self.dialog_parent, "Undo last sort", question, str(journal)):
            self.sorting.start(lambda: undo_sort(journal), self._undone, self._sort_failed)

    def _undone(self, report: object) -> None:
        text = (
            f"Undone: {len(report.restored)} images put back, {len(report.removed)} copies removed."
        )
        left = report.kept + report.failed
        if left:
            text += f" {len(left)} left: " + "; ".join(f"{p.name}: {why}" for p, why in left[:3])
        self.message.emit(text, "info" if report.undone else "error")
        if report.restored:
            self.collection.reindex()
