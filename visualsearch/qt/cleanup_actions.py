"""The main window's clean-up actions: duplicate groups, the trash, the odd ones out
and tag suggestions. A mixin of MainWindow: work runs in the pool or the search
engine's thread; these methods only start it and show the results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QFileDialog

from visualsearch.core.duplicates import find_duplicates, outlier_scores, write_groups_csv
from visualsearch.core.query import TextQuery
from visualsearch.core.store import Store
from visualsearch.core.trash import move_to_trash, trash_listing
from visualsearch.qt.image_list_model import GridItem
from visualsearch.qt.workers import run_task


class CleanupActions:
    def _vectors_and_records(self):
        """A function for a pool thread: the current folder's vectors and their records."""
        target, choice, encoders = self.target, self.model_choice, self.ctx.encoders

        def load():
            with Store(target.store_dir) as store:
                paths, vectors = store.load_vectors(encoders.get(choice).id)
                return paths, vectors, store.records_for(paths)

        return load

    def find_duplicates(self, threshold: float) -> None:
        if self.target is None:
            self.show_error("Open a folder first.")
            return
        self.duplicates_page.summary.setText("Looking for duplicates…")

        load = self._vectors_and_records()
        root = self.target.folder

        def work():  # in the pool: reads the group members' pixels to choose the keepers
            _, vectors, records = load()
            return find_duplicates(vectors, records, threshold, root=root)

        run_task(self.pool, work, self._on_duplicates, self.show_error)

    def _on_duplicates(self, groups: object) -> None:
        if self.target is None:
            return
        self.duplicates_page.set_groups(groups, self.target.folder)
        self.duplicates_ready.emit(groups)

    def trash_files(self, paths: list[Path]) -> None:
        """Move marked files to the system trash, after the user confirms the list."""
        if not paths:
            self.show_info("Mark the images to move to the trash first (the checkboxes).")
            return
        root = self.target.folder
        listing = "\n".join(trash_listing(paths, root))  # real paths; links are never moved
        question = (
            f"Move {len(paths)} image(s) to the trash?\n\nThey can be restored from the "
            "trash; nothing is deleted. The list is under “Show Details”."
        )
        if not self.ctx.confirm(self, "Move to trash", question, listing):
            return
        run_task(self.pool, lambda: move_to_trash(paths, root), self._on_trashed, self.show_error)

    def _on_trashed(self, result: object) -> None:
        moved, failed = result
        self.duplicates_page.remove_paths(moved)
        text = f"Moved {len(moved)} image(s) to the trash."
        if failed:
            text += f" {len(failed)} could not be moved: " + "; ".join(
                f"{p.name}: {why}" for p, why in failed[:3]
            )
        self.show_info(text)
        self.trash_finished.emit(result)
        self.reindex()  # the catalog forgets them

    def _export_duplicates_csv(self) -> None:
        groups = self.duplicates_page.groups
        if not groups or self.target is None:
            return
        start = str(Path.home() / f"{self.target.folder.name} duplicates.csv")
        path, _ = QFileDialog.getSaveFileName(self, "Save the list", start, "CSV (*.csv)")
        if path:
            self.save_duplicates_csv(Path(path))

    def save_duplicates_csv(self, path: Path) -> Path:
        written = write_groups_csv(self.duplicates_page.groups, self.target.folder, path)
        self.show_info(f"Saved the list of {len(self.duplicates_page.groups)} groups to {written}.")
        return written

    def show_outliers(self) -> None:
        """The grid lists the images least like their nearest neighbours."""
        if self.target is None:
            self.show_error("Open a folder first.")
            return

        load = self._vectors_and_records()

        def work():
            paths, vectors, records = load()
            scores = outlier_scores(vectors)
            order = np.argsort(-scores, kind="stable")[:500]
            return [(paths[i], records[i], float(scores[i])) for i in order]

        self.tabs.setCurrentIndex(0)
        self.query_label.setText("Finding the odd ones out…")
        run_task(self.pool, work, self._on_outliers, self.show_error)

    def _on_outliers(self, ranked: object) -> None:
        root = self.target.folder
        self._request += 1
        items = [GridItem(root / rel, rel, rec, score) for rel, rec, score in ranked]
        self._show_items(
            items,
            f"Odd ones out · {len(items):,} images, least like any other first "
            "(score: 1 − similarity to the 5 nearest)",
        )
        self.results_shown.emit(None)

    def _request_tags(self, item: GridItem | None) -> None:
        self._tags_request += 1
        self.engine.latest_tags = self._tags_request
        if item is not None and item.rel is not None:
            self._engine_tags.emit(self._tags_request, [item.path])
        else:
            self.details.set_tags([])

    def _on_tags(self, request_id: int, tags: object) -> None:
        if request_id == self._tags_request:
            self.details.set_tags(tags)
            self.tags_shown.emit(tags)

    def _tag_words_changed(self, words: list[str]) -> None:
        self.settings.tag_words = words
        self.ctx.settings.save(self.settings)
        self.engine.tag_words = list(words)  # read by the engine's thread on the next request
        self._request_tags(self.details.item)

    def _tag_clicked(self, tag: str) -> None:
        self.tabs.setCurrentIndex(0)
        self.run_query(TextQuery(tag))

    def _show_path_details(self, path: Path) -> None:
        rel = path.relative_to(self.target.folder).as_posix()
        item = GridItem(path, rel, self.records.get(rel))
        self.details.show_item(item)
        self._request_tags(item)

    def _min_score_changed(self, value: float) -> None:
        self.min_score = value if value > 0 else None
        if self.history.current is not None:
            self.run_query(self.history.current, push=False)
