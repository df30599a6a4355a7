"""What the Images tab shows: all images, a query's results (through the search engine's
thread), or items another area hands over (a cluster, the odd ones out); the history
of queries, "Show more", the minimum similarity and tag suggestions.

One ticket rules everything that fills the grid: each request takes a new one, and an
answer that arrives under an older ticket is dropped (ARCHITECTURE rule 11)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QModelIndex, QObject, Qt, QThread, QThreadPool, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QLineEdit

from visualsearch.core.names import printable
from visualsearch.core.query import (
    ImageDataQuery,
    ImageQuery,
    MixQuery,
    Query,
    QueryHistory,
    QueryResult,
    SelectionQuery,
    TextQuery,
)
from visualsearch.core.sorting import RELEVANCE, folder_tree, in_folder, release_gently
from visualsearch.core.store import FileRecord
from visualsearch.qt.arrangement import Arrangement, arrange, browse_items, collector_paused
from visualsearch.qt.collection_controller import CollectionController
from visualsearch.qt.image_list_model import GridItem, ItemPaths, freeze_long_lived_objects
from visualsearch.qt.results_area import QUERY_THUMB, ResultsArea
from visualsearch.qt.thumbnails import ImageLoader
from visualsearch.qt.workers import EncoderProvider, FolderTarget, SearchEngine, TaskSlot, outlive

RESULTS_PAGE = 200  # matches asked for at a time; "Show more" asks for the next page
# Up to this many items are arranged (filtered, sorted) on the GUI thread, in < 0.1 s;
# more in the pool: all 1,000,000 images in name order took 7 s (bench/window_scale.py).
ARRANGE_AT_ONCE = 20_000
BUILTIN_TEXT_HINT = (
    "The built-in model knows about 1,000 everyday things (ImageNet's categories) and the "
    "kinds they belong to (a dog, a bird, a vehicle, food…), not whole scenes. For free-form "
    "text such as “a dog on a beach”, switch to a <a href='model'>CLIP model</a>."
)


def wait_text(seconds: float) -> str:
    """How long the user waited, as the results' header says it."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def query_text(query: Query) -> str:
    """What the search box shows for a query: its words ("+ words" when they steer an
    image), else nothing."""
    if isinstance(query, TextQuery):
        return query.text
    if isinstance(query, MixQuery):
        return f"+ {query.text}"
    return ""


def count_text(result: QueryResult) -> str:
    """'12 images', or 'The best 200 of 267 images' when more matches are left out."""
    n = len(result.hits)
    return f"The best {n:,} of {result.candidates:,} images" if result.more else f"{n:,} images"


Arranged = Callable[[Arrangement], None]  # what is done once an arrangement is shown


def _ignore(_result: object) -> None:
    pass


class ResultsController(QObject):
    results_shown = Signal(object)  # QueryResult, or None for anything else
    query_failed = Signal(str)
    engine_ready = Signal(int)  # images searchable
    tags_shown = Signal(object)  # [(tag, score)]
    error = Signal(str)
    history_changed = Signal()
    browse_sort_changed = Signal(str, bool)  # the order for all images (remembered)

    # to the search engine's thread
    _engine_target = Signal(object, bool)
    _engine_query = Signal(int, object, object, int, str)  # request, query, min. score, k, folder
    _engine_tags = Signal(int, object)
    _engine_shutdown = Signal()

    def __init__(
        self,
        collection: CollectionController,
        area: ResultsArea,
        search_box: QLineEdit,
        previews: ImageLoader,
        encoders: EncoderProvider,
        cache_dir: Path,
        tag_words: list[str],
        pool: QThreadPool,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.collection = collection
        self.area = area
        self.model = area.model
        self.grid = area.grid
        self.search_box = search_box
        self.previews = previews
        self.history = QueryHistory()
        self.ticket = 0  # the newest request for the grid's contents
        self.min_score: float | None = None
        self.page_size = RESULTS_PAGE
        self.builtin_model = True  # text searches get a hint about the built-in model
        self._browse_rows: dict[str, int] = {}  # rel path → row while showing all images
        self._browsing = False  # the grid shows all images (new ones join as they come)
        self._base: list[GridItem] = []  # what is shown, before the folder filter and sorting
        self._base_index: dict[str, int] | None = None  # rel → position in _base (all images)
        self.arranging = TaskSlot(pool, self)
        self.arrange_at_once = ARRANGE_AT_ONCE
        # while items are arranged in the pool: what they are made from, how many, what is
        # done when they are shown; and the batches indexed meanwhile (they join then)
        self._source: tuple[Callable[[], list[GridItem]], int, GridItem | None, Arranged | None]
        self._source = None
        self._arriving: list[list[FileRecord]] = []
        self._landed: tuple[Arrangement, Arranged | None] | None = None  # while viewing
        self._pending: QueryResult | None = None  # a result whose matches are arranged
        self.counting = TaskSlot(pool, self)  # the folder tree's counts
        self.releasing = TaskSlot(pool, self, every=True)  # items no longer shown
        self._refresh_after_viewer = False  # a run changed all images while the viewer was open
        self._presenting = False
        self._ranked = False  # the shown items are a ranking (a query, a cluster…)
        self._browse_sort = (area.sort_bar.key(), area.sort_bar.descending())
        self._header = ""  # what is shown, before the folder filter's note
        self._tree_timer = QTimer(self, singleShot=True, interval=500)
        self._tree_timer.timeout.connect(self._update_folders)
        self._viewed: list[GridItem] = []  # the grid's items when the viewer was opened
        self._shown: QueryResult | None = None  # the query result the grid shows, if any
        self._asked_at = 0.0  # when the latest query was asked (time.perf_counter)
        self._query_image_key: str | None = None
        self._tags_ticket = 0
        self._abandoned = False

        self.engine = SearchEngine(encoders, cache_dir)
        self.engine.tag_words = list(tag_words)
        self.thread = QThread(self)
        self.thread.setObjectName("SearchEngine")
        self.engine.moveToThread(self.thread)
        self._engine_target.connect(self.engine.set_target)
        self._engine_query.connect(self.engine.run)
        self._engine_tags.connect(self.engine.suggest_tags)
        self._engine_shutdown.connect(self.engine.shutdown)
        self.engine.tags_ready.connect(self._on_tags)
        self.engine.results.connect(self._on_results)
        self.engine.failed.connect(self._on_query_failed)
        self.engine.opened.connect(self._engine_opened)
        self.thread.start()

        area.all_button.clicked.connect(self.show_all)
        area.more_button.clicked.connect(self.show_more)
        area.every_match_action.triggered.connect(self.show_every_match)
        area.min_score_box.valueChanged.connect(self._min_score_changed)
        self.previews.loaded.connect(self._query_image_loaded)
        self.model.modelReset.connect(self._results_replaced)
        search_box.returnPressed.connect(self.search_entered)
        area.sort_bar.sort_changed.connect(self._sort_changed)
        area.folders.folder_chosen.connect(self._folder_chosen)
        self.grid.view_requested.connect(self.open_viewer)
        area.viewer.current_changed.connect(self._viewer_moved)
        area.viewer.closed.connect(self._viewer_closed)
        self._from_collection = [
            (collection.folder_changed, self._folder_changed),
            (collection.searchable, self._searchable),
            (collection.catalog_loaded, self._catalog_loaded),
            (collection.batch_committed, self._batch_committed),
            (collection.catalog_replaced, self._catalog_replaced),
        ]
        for signal, slot in self._from_collection:
            signal.connect(slot)

    # -- the folder ------------------------------------------------------------------------

    def _folder_changed(self, target: FolderTarget) -> None:
        self.supersede()
        self.counting.supersede()
        self.area.folders.select_folder("")  # another folder's sub-folder means nothing here
        self._base = []
        self._refresh_after_viewer = False
        self.history.clear()
        self.history_changed.emit()
        self._browse_rows = {}
        self.model.set_items([])
        self.search_box.clear()
        self._engine_target.emit(target, True)

    def _searchable(self, target: FolderTarget) -> None:
        self._engine_target.emit(target, False)

    def _catalog_loaded(self) -> None:
        self._update_folders()
        if self.area.viewing():
            self._refresh_after_viewer = True  # never pulled from under the viewer
        elif self.history.current is None:
            self._show_browse()

    def _batch_committed(self, records: list) -> None:
        """Newly indexed images join "all images" as they come (changed ones in place)."""
        target = self.collection.target
        arranging = self._source is not None or self._landed is not None
        if not self._browsing or target is None or arranging:
            if self._browsing and arranging:
                self._arriving.append(records)  # they join all images once arranged
            if not self._tree_timer.isActive():
                self._tree_timer.start()
            return
        folder = self.area.folders.folder()
        if self._base_index is None:
            self._base_index = {it.rel: i for i, it in enumerate(self._base)}
        new_items = []
        for r in records:
            item = GridItem.under(target.folder, r.path, r)
            row = self._browse_rows.get(r.path)
            if row is not None:
                self.model.replace_item(row, item)
            at = self._base_index.get(r.path)
            if at is not None:  # a changed file, shown or filtered out: replaced, not added
                self._base[at] = item
                continue
            self._base_index[r.path] = len(self._base)
            self._base.append(item)  # sorted in with the others when the run ends
            if not folder or in_folder(r.path, folder):
                self._browse_rows[r.path] = self.model.rowCount() + len(new_items)
                new_items.append(item)
        self.model.append_items(new_items)
        self._set_header(f"All images · {len(self._base):,}")
        if not self._tree_timer.isActive():
            self._tree_timer.start()  # the folder tree follows a run, twice a second at most

    def _update_folders(self, records: list[FileRecord] | None = None) -> None:
        """The folder tree anew, counted in the pool for a large folder (1M paths: 0.5 s).
        `records`: a snapshot of the catalog's records, when the caller has one."""
        if records is None:  # a snapshot: a run goes on changing the dict
            records = list(self.collection.records.values())
        if len(records) <= self.arrange_at_once:
            self.area.folders.set_tree(folder_tree(r.path for r in records))
        else:
            self.counting.start(
                lambda: folder_tree(r.path for r in records),
                self.area.folders.set_tree,
                self.error.emit,
            )

    def _catalog_replaced(self) -> None:
        """A run has ended with other files than shown: all images again, in path order."""
        records = list(self.collection.records.values())  # one snapshot for both
        self._update_folders(records)
        if not self._browsing:
            return
        if self.area.viewing():
            self._refresh_after_viewer = True
            return
        current = self.grid.currentIndex()
        self._show_browse(self.model.item(current.row()) if current.isValid() else None, records)

    # -- requests --------------------------------------------------------------------------

    def supersede(self) -> int:
        """A new request for the grid: answers to older ones are dropped. The ticket."""
        self._browsing = False
        self._arriving = []
        self._source = self._landed = None  # an arrangement in the pool is not wanted either
        self.arranging.supersede()
        self.ticket += 1
        self.engine.latest_request = self.ticket
        return self.ticket

    def run_query(self, query: Query, push: bool = True, k: int = 0) -> None:
        """Ask the engine for the best `k` matches (0: a page)."""
        if self.collection.target is None:
            self.error.emit("Open a folder first: the query needs images to search.")
            return
        if push:
            self.history.push(query)
            self.history_changed.emit()
        self.search_box.setText(query_text(query))
        ticket = self.supersede()
        self.area.query_label.setText(f"Searching {query.label()}…")
        self._show_query_image(query)
        self._asked_at = time.perf_counter()  # the user's wait: engine queue, model loading…
        within = self.area.folders.folder()
        self._engine_query.emit(ticket, query, self.min_score, k or self.page_size, within)

    def search_entered(self) -> None:
        text = self.search_box.text().strip()
        current = self.history.current
        if isinstance(current, MixQuery):
            current = current.base  # "+ other words" steer the same image
        if text.startswith("+") and isinstance(
            current, ImageQuery | ImageDataQuery | SelectionQuery
        ):
            self.run_query(MixQuery(current, text[1:].strip()))  # "like this + at night"
        elif text:
            self.run_query(TextQuery(text))
        else:
            self.show_all()

    def find_similar(self, path: Path) -> None:
        self.run_query(ImageQuery(Path(path)))

    def show_more(self) -> None:
        """The next page of the shown result's matches, below the ones shown."""
        if self._shown is not None:
            k = len(self._shown.hits) + self.page_size
            self.run_query(self._shown.query, push=False, k=k)

    def show_every_match(self) -> None:
        if self._shown is not None:
            self.run_query(self._shown.query, push=False, k=max(self._shown.candidates, 1))

    def show_all(self) -> None:
        self.search_box.clear()
        if self.history.current is not None:
            self.history.push(None)
            self.history_changed.emit()
        self._show_browse()

    def go_back(self) -> None:
        self._show_query(self.history.back())

    def go_forward(self) -> None:
        self._show_query(self.history.forward())

    def _show_query(self, query: Query | None) -> None:
        self.history_changed.emit()
        if query is None:
            self.search_box.clear()
            self._show_browse()
        else:
            self.run_query(query, push=False)

    def _min_score_changed(self, value: float) -> None:
        self.min_score = value if value > 0 else None
        if self.history.current is not None:
            self.run_query(self.history.current, push=False)

    # -- what the grid shows ---------------------------------------------------------------

    def _show_browse(
        self, keep: GridItem | None = None, records: list[FileRecord] | None = None
    ) -> None:
        """All images, in the remembered order; `keep` current if it is still there.
        `records`: a snapshot of the catalog's records, when the caller has one."""
        target = self.collection.target
        if target is None:
            return
        self.supersede()  # results still on their way are no longer wanted
        if records is None:  # a snapshot: a run goes on changing the dict
            records = list(self.collection.records.values())
        root = target.folder
        self._browsing = True
        self._set_sort(ranked=False)
        self._arrange(lambda: browse_items(root, records), len(records), keep, self._keep_current)
        self._set_header(f"All images · {len(records):,}")
        self._show_query_image(None)
        self.area.all_button.setVisible(False)
        self.results_shown.emit(None)

    def show_items(
        self, ticket: int, items: list[GridItem], header: str, ranked: bool = True
    ) -> bool:
        """Items computed elsewhere (a cluster, a map selection, the odd ones out), if
        `ticket` is still the newest request. False when it was superseded. `ranked`:
        their order means something (it is what "Relevance" sorts by)."""
        if ticket != self.ticket:
            return False
        self._present(items, ranked)
        self._set_header(header)
        self._show_query_image(None)
        self.area.all_button.setVisible(True)
        self.results_shown.emit(None)
        return True

    def _present(
        self,
        items: list[GridItem],
        ranked: bool,
        keep_sort: bool = False,
        then: Arranged | None = None,
    ) -> None:
        """Show `items` through the folder filter and the chosen order."""
        self._set_sort(ranked, keep_sort)
        # a list of our own: the items no longer shown are emptied when let go of
        self._arrange(lambda: list(items), len(items), then=then)

    def _set_sort(self, ranked: bool, keep_sort: bool = False) -> None:
        """The sort bar for a ranking (best first) or for all images (the remembered order)."""
        self._ranked = ranked
        bar = self.area.sort_bar
        self._presenting = True  # the sort bar's own signal would show them twice
        try:
            bar.set_relevance_available(ranked)
            if not keep_sort:
                bar.set_sort(*((RELEVANCE, False) if ranked else self._browse_sort))
        finally:
            self._presenting = False

    def _view_is_identity(self) -> bool:
        return self.area.sort_bar.key() == RELEVANCE and not self.area.folders.folder()

    def _arrange(
        self,
        make_base: Callable[[], list[GridItem]],
        size: int,
        keep: GridItem | None = None,
        then: Arranged | None = None,
    ) -> None:
        """Show the `size` items `make_base` gives, through the folder filter and the
        order: at once for a few, else arranged in the pool while the grid keeps what it
        shows (images indexed meanwhile join them when they are shown). `then` is called
        with the Arrangement once the grid shows it."""
        self.arranging.supersede()
        self._source = self._landed = None
        bar, browsing, ticket = self.area.sort_bar, self._browsing, self.ticket
        folder, key, descending = self.area.folders.folder(), bar.key(), bar.descending()

        def work() -> Arrangement:
            with collector_paused():
                return arrange(make_base(), folder, key, descending, browsing, keep)

        if size <= self.arrange_at_once:
            self._arranged(work(), then)
            return
        self._source = (make_base, size, keep, then)
        self._render_header()
        self.arranging.start(
            work,
            lambda arranged: self._landing(arranged, then) if ticket == self.ticket else None,
            self._arrange_failed,
        )

    def _arrange_failed(self, message: str) -> None:
        self._source, self._arriving = None, []
        self._render_header()
        self.error.emit(message)

    def _landing(self, arranged: Arrangement, then: Arranged | None) -> None:
        """An arrangement from the pool: shown now, or once the viewer (opened while it
        was arranged) closes, never pulled from under it."""
        if self.area.viewing():
            self._source, self._landed = None, (arranged, then)
        else:
            self._arranged(arranged, then)

    def _arranged(self, arranged: Arrangement, then: Arranged | None) -> None:
        self._source = None
        # what is no longer shown is let go of in the pool, a run at a time: freeing a
        # million items and their rows on this thread stopped it for 0.2 s
        retired: list[list | dict] = [self._browse_rows]
        if self._base is not arranged.base:
            retired.append(self._base)
        if self._base_index is not None and self._base_index is not arranged.base_index:
            retired.append(self._base_index)
        self._base, self._base_index = arranged.base, arranged.base_index
        self.model.badge_key = arranged.key if arranged.key in ("date", "size") else "score"
        retired.append(self.model.set_items(arranged.items))
        self._browse_rows = arranged.rows
        if sum(map(len, retired)) > self.arrange_at_once:
            self.releasing.start(
                lambda: [release_gently(each) for each in retired], _ignore, self.error.emit
            )
        if then is not None:
            then(arranged)
        arriving, self._arriving = self._arriving, []
        for records in arriving:
            self._batch_committed(records)
        self._render_header()

    def _keep_current(self, arranged: Arrangement) -> None:
        if arranged.keep_row is not None:
            self.grid.setCurrentIndex(self.model.index(arranged.keep_row))

    def row_of_rel(self, rel: str | None) -> int | None:
        """The grid row of the folder's image `rel`, if it is shown."""
        if rel is None:
            return None
        return self._browse_rows.get(rel) if self._browsing else self.model.row_of_rel(rel)

    def sort_by(self, key: str, descending: bool = False) -> None:
        """Show the items in this order, as if the user had chosen it."""
        self.area.sort_bar.set_sort(key, descending)
        self._sort_changed(key, descending)

    def _sort_changed(self, key: str, descending: bool) -> None:
        if self._presenting:
            return
        if not self._ranked:
            self._browse_sort = (key, descending)
            self.browse_sort_changed.emit(key, descending)
        self._reapply()

    def _folder_chosen(self, _folder: str) -> None:
        """A query is asked again within the folder (its best matches there, not the
        best overall that happen to be there); anything else is filtered as shown."""
        shown = self._shown or (self._pending if self._source is not None else None)
        if shown is not None:
            self.run_query(shown.query, push=False)
        else:
            self._reapply()

    def _set_header(self, text: str) -> None:
        self._header = text
        self._render_header()

    def _render_header(self) -> None:
        text, folder = self._header, self.area.folders.folder()
        if self._source is not None:
            text += f" · arranging {self._source[1]:,} images…"
        elif folder and self._shown is None and self.model.rowCount() != len(self._base):
            text += f" · {self.model.rowCount():,} in “{printable(folder)}”"
        self.area.query_label.setText(text)

    def _reapply(self) -> None:
        """The sort order or the folder filter changed: the same items, shown anew."""
        if self._source is not None:  # not shown yet: arranged anew, in the new way
            self._arrange(*self._source)
            return
        current = self.grid.currentIndex()
        keep = self.model.item(current.row()) if current.isValid() else None
        shown, more = self._shown, self.area.more_button.isVisible()

        def then(arranged: Arrangement) -> None:
            self._shown = shown  # the same result, in another order: "Show more" still applies
            self.area.more_button.setVisible(more)
            self._keep_current(arranged)

        base = self._base
        self._arrange(lambda: base, len(base), keep, then)

    # -- the viewer ------------------------------------------------------------------------

    def open_viewer(self, index: QModelIndex) -> None:
        """Space or double-click: the image large, with the grid's images for ←/→."""
        self._viewed = self.model.items()
        self.area.show_viewer(True)
        self.area.viewer.show_items(ItemPaths(self._viewed), index.row())

    def _viewed_item(self, path: Path) -> GridItem | None:
        """The grid's item of the image the viewer shows, if it is `path` and still shown
        in the same row (images indexed meanwhile are added after it)."""
        row = self.area.viewer.current_row()
        if not 0 <= row < min(len(self._viewed), self.model.rowCount()):
            return None
        item = self._viewed[row]
        return item if item is self.model.item(row) and item.path == path else None

    def cached_pixmap(self, path: Path) -> QPixmap | None:
        """The grid's thumbnail of `path`, shown by the viewer while the file loads."""
        item = self._viewed_item(path)
        return self.model.thumbnail(item) if item is not None else None

    def _viewer_moved(self, path: Path) -> None:
        if self._viewed_item(path) is not None:  # the details panel follows
            self.grid.setCurrentIndex(self.model.index(self.area.viewer.current_row()))

    def _viewer_closed(self) -> None:
        self.area.show_viewer(False)
        self._viewed = []
        if self._landed is not None:
            arranged, then = self._landed
            self._arranged(arranged, then)
        if self._refresh_after_viewer:  # a run ended meanwhile: all images, as they are now
            self._refresh_after_viewer = False
            if self.history.current is None:
                self._catalog_replaced()
        self.grid.scrollTo(self.grid.currentIndex())

    def item_for(self, rel: str, score: float | None = None) -> GridItem:
        target = self.collection.target
        return GridItem.under(target.folder, rel, self.collection.records.get(rel), score)

    def _on_results(self, ticket: int, result: QueryResult) -> None:
        target = self.collection.target
        if ticket != self.ticket or target is None:
            return
        items = []
        for hit in result.hits:
            try:
                rel = hit.path.relative_to(target.folder).as_posix()
            except ValueError:
                rel = None
            record = self.collection.records.get(rel) if rel else None
            items.append(GridItem(hit.path, rel, record, hit.score))
        same = self._shown is not None and self._shown.query == result.query
        if self._extends_shown(result) and self._view_is_identity():
            shown = self.model.items()  # "Show more": the rows shown stay, the same items
            added = items[len(shown) :]
            self._base = [*shown, *added]
            self.model.append_items(added)
            self._show_more_button(result)
        else:  # the same query again (more of it, another folder) keeps the user's order

            def then(_arranged: Arrangement) -> None:
                self._show_more_button(result)
                if self.model.rowCount():
                    self.grid.setCurrentIndex(self.model.index(0))

            self._pending = result
            self._present(items, ranked=True, keep_sort=same, then=then)
        self._set_header(self._result_header(result, len(items)))
        self.area.all_button.setVisible(True)
        self.results_shown.emit(result)

    def _result_header(self, result: QueryResult, shown: int) -> str:
        label = result.query.label()
        text = f"{count_text(result)} {label} · {wait_text(time.perf_counter() - self._asked_at)}"
        if not shown and self.min_score is not None and result.best_score is not None:
            text = (
                f"No image {label} reaches a match of {self.min_score:.2f} "
                f"(the best: {result.best_score:.2f})."
            )
        elif not shown:
            text = f"No images {label}."
        if result.missing:
            text += f" ({result.missing} left out: deleted since indexing; press F5)"
        if self.area.folders.folder():
            text += f" · in “{printable(self.area.folders.folder())}”"
        if isinstance(result.query, TextQuery) and self.builtin_model:
            text += f"<br><small>{BUILTIN_TEXT_HINT}</small>"
        return text

    def _extends_shown(self, result: QueryResult) -> bool:
        """Whether `result` is the shown result and further matches ("Show more")."""
        shown = self._shown
        if shown is None or shown.query != result.query or len(result.hits) <= len(shown.hits):
            return False
        return [h.path for h in result.hits[: len(shown.hits)]] == [h.path for h in shown.hits]

    def _show_more_button(self, result: QueryResult) -> None:
        self._shown = result
        rest = result.candidates - len(result.hits)
        self.area.more_button.setToolTip(f"Show the next {min(self.page_size, rest):,} matches")
        self.area.every_match_action.setText(f"Show all {result.candidates:,}")
        self.area.more_button.setVisible(result.more)

    def _results_replaced(self) -> None:
        """The grid shows something else (all images, a cluster…): nothing more to show,
        and the viewer's list is gone."""
        self._shown = None
        self.area.more_button.hide()
        if self.area.viewing():
            self.area.viewer.close_viewer()

    def _on_query_failed(self, ticket: int, message: str) -> None:
        if ticket != self.ticket:
            return
        self.area.query_label.setText("The query failed.")
        self.error.emit(message)
        self.query_failed.emit(message)

    def _show_query_image(self, query: Query | None) -> None:
        self._query_image_key = str(query.path) if isinstance(query, ImageQuery) else None
        self.area.query_image.clear()
        self.area.query_image.setVisible(self._query_image_key is not None)
        if self._query_image_key is not None:
            self._query_image_loaded(self._query_image_key)

    def _query_image_loaded(self, key: str) -> None:
        if key == self._query_image_key:
            pixmap = self.previews.pixmap(key, QUERY_THUMB)
            if pixmap is not None:
                self.area.query_image.setPixmap(pixmap)

    # -- tags ------------------------------------------------------------------------------

    def request_tags(self, paths: list[Path]) -> None:
        """Tags for these images (their mean vector); [] at once for none."""
        self._tags_ticket += 1
        self.engine.latest_tags = self._tags_ticket
        if paths:
            self._engine_tags.emit(self._tags_ticket, list(paths))
        else:
            self.tags_shown.emit([])

    def set_tag_words(self, words: list[str]) -> None:
        self.engine.tag_words = list(words)  # read by the engine's thread on the next request

    def _on_tags(self, ticket: int, tags: object) -> None:
        if ticket == self._tags_ticket:
            self.tags_shown.emit(tags)

    def _engine_opened(self, count: int) -> None:
        freeze_long_lived_objects()  # the text model was just imported: keep GC passes short
        self.engine_ready.emit(count)

    # -- closing ---------------------------------------------------------------------------

    def shut_down(self) -> None:
        """Close the engine's store and let its thread end (it may be loading a model)."""
        self._tree_timer.stop()
        self.supersede()
        self.counting.supersede()  # a count ending later would reach a deleted folder filter
        # a run's last batch or its end told after this would start a count for, and show
        # records in, widgets deleted by then (a RuntimeError in whatever runs next)
        for signal, slot in self._from_collection:
            signal.disconnect(slot)
        self._from_collection = []  # a second shut_down has nothing to let go of
        self._engine_shutdown.emit()
        self.thread.quit()

    def join_engine(self, ms: int) -> bool:
        """Wait up to `ms` for the engine's thread to end (after `shut_down`)."""
        return self._abandoned or self.thread.wait(ms)

    def detach_engine(self, then: Callable[[], object]) -> None:
        """The engine is busy (e.g. loading a model): let its thread outlive the window,
        and call `then` when it has ended."""
        self.thread.finished.connect(then, Qt.ConnectionType.UniqueConnection)
        outlive(self.thread)

    def abandon_engine(self) -> None:
        """Let a busy engine thread end on its own, after the window has gone."""
        outlive(self.thread)
        self._abandoned = True
