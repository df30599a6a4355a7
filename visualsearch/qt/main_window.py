"""The main window: layout, menus, the message bar and routing between the areas'
controllers (collection, results, map, clean-up, model, sorting, evaluation), which
hold the state and start the work. Nothing here decodes, encodes or searches."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt, QThreadPool, QTimer
from PySide6.QtGui import (
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from visualsearch.core.folder import ModelChoice
from visualsearch.core.library import Library, LibraryError
from visualsearch.core.names import printable
from visualsearch.core.query import ImageQuery, TextQuery
from visualsearch.core.settings import UserSettings
from visualsearch.core.sort_moves import journal_folder
from visualsearch.core.sorting import SORT_KEYS
from visualsearch.qt.cleanup_controller import CleanupController
from visualsearch.qt.closing import Closing
from visualsearch.qt.collection_controller import CollectionController, skipped_text
from visualsearch.qt.context import AppContext
from visualsearch.qt.details_panel import DetailsPanel
from visualsearch.qt.dialogs import about_text, show_about, show_skipped
from visualsearch.qt.duplicates_page import DuplicatesPage
from visualsearch.qt.evaluation_controller import EvaluationController
from visualsearch.qt.file_actions import FileActions, accept_without_move
from visualsearch.qt.icons import app_icon
from visualsearch.qt.image_list_model import GridItem, ImageListModel
from visualsearch.qt.library_dialog import LibraryDialog
from visualsearch.qt.library_keeper import LibraryKeeper
from visualsearch.qt.map_controller import MapController
from visualsearch.qt.map_page import MapPage
from visualsearch.qt.menus import Menus
from visualsearch.qt.model_controller import ModelController
from visualsearch.qt.results_area import ResultsArea
from visualsearch.qt.results_controller import ResultsController
from visualsearch.qt.sort_page import SortPage
from visualsearch.qt.sorting_controller import SortingController
from visualsearch.qt.thumbnails import ImageLoader, StoreThumbnails, load_preview
from visualsearch.qt.viewer import ImageViewer
from visualsearch.qt.widgets import JobStatus, MessageBar, WelcomePage

THUMB_SIZES = (96, 128, 160, 200, 256)


TAGS_FOR_UP_TO = 5000  # selected images whose tags are suggested (Ctrl+A on a million: none)


class MainWindow(QMainWindow):
    def __init__(self, context: AppContext) -> None:
        super().__init__()
        self.ctx = context
        self.settings = context.settings.load()
        context.encoders.set_fast_clip(self.settings.fast_clip)
        self.pool = QThreadPool(self)
        self.library_dialog: LibraryDialog | None = None
        self._library_query: tuple[Path, ImageQuery] | None = None  # asked once its root opens
        self.pool.setMaxThreadCount(4)
        self._store_thumbs = StoreThumbnails()
        self.thumbnails = ImageLoader(self._store_thumbs, self.pool, "thumb")
        self.previews = ImageLoader(load_preview, self.pool, "preview", threads=1)
        self._build_widgets()
        self._build_controllers()
        self.menus = Menus(self)
        self._route()
        self.setAcceptDrops(True)
        self.setWindowTitle("visualsearch")
        self.setWindowIcon(app_icon())
        geometry = context.settings.geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 820)

    # -- construction -----------------------------------------------------------------------

    def _build_widgets(self) -> None:
        self.search_box = QLineEdit(
            placeholderText="Search by text: “a cat”, “coffee cup”… (Ctrl+F)"
        )
        self.search_box.setClearButtonEnabled(True)
        self.model = ImageListModel(self.thumbnails, self.settings.thumbnail_size, self)
        self.viewer = ImageViewer(self.pool, cached=lambda path: self.results.cached_pixmap(path))
        self.results_area = ResultsArea(self.model, self.settings.thumbnail_size, self.viewer)
        key = self.settings.sort_key
        self.results_area.sort_bar.set_sort(
            key if key in SORT_KEYS[1:] else "folder", self.settings.sort_descending
        )
        self.grid = self.results_area.grid
        self.details = DetailsPanel(self.previews)
        self.details.tag_words.setText(", ".join(self.settings.tag_words))
        self.map_page = MapPage(self.thumbnails)
        self.duplicates_page = DuplicatesPage(self.thumbnails, self.previews)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.results_area, "Images")
        self.tabs.addTab(self.map_page, "Map")
        self.tabs.addTab(self.duplicates_page, "Duplicates")
        self.sort_page = SortPage(self.thumbnails, self.previews)
        self.tabs.addTab(self.sort_page, "Sort")

        self.splitter = QSplitter()
        self.splitter.addWidget(self.tabs)
        self.splitter.addWidget(self.details)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([900, 360])
        state = self.ctx.settings.splitter_state()
        if state is not None:
            self.splitter.restoreState(state)
        self.welcome = WelcomePage()
        self.welcome.set_recent(self.settings.recent_folders)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.welcome)
        self.pages.addWidget(self.splitter)
        self.message = MessageBar()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.addWidget(self.message)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)
        self.summary = QLabel()
        self.indexing = JobStatus()
        self.library_status = QLabel()
        self.statusBar().addWidget(self.summary, 1)
        self.statusBar().addPermanentWidget(self.library_status)
        self.statusBar().addPermanentWidget(self.indexing)

    def _build_controllers(self) -> None:
        ctx, s = self.ctx, self.settings
        store_base = Path(s.store_root or ctx.paths.data_dir)
        self.collection = CollectionController(
            ctx.encoders, ctx.index_options, store_base, self.indexing, self.pool, self
        )
        weights = Path(s.model_weights) if s.model_weights else None
        self.models = ModelController(
            ModelChoice(s.model_spec, weights), self.collection, self.indexing, ctx.confirm, self
        )
        self.results = ResultsController(
            self.collection,
            self.results_area,
            self.search_box,
            self.previews,
            ctx.encoders,
            ctx.paths.cache_dir,
            s.tag_words,
            self.pool,
            self,
        )
        self.maps = MapController(
            self.map_page,
            self.collection,
            self.results,
            ctx.encoders,
            ctx.paths.cache_dir,
            self.indexing,
            self.pool,
            self,
            self,
        )
        self.cleanup = CleanupController(
            self.duplicates_page,
            self.collection,
            self.results,
            ctx.encoders,
            self.pool,
            ctx.confirm,
            self,
            self,
        )
        self.sorting = SortingController(
            self.sort_page,
            self.collection,
            ctx.encoders,
            self.pool,
            ctx.confirm,
            journal_folder(ctx.paths.data_dir),
            self,
            parent=self,
        )
        self.evaluation = EvaluationController(
            self.sort_page, self.collection, self.results, ctx.encoders, self.pool, self, self
        )
        self.files = FileActions(self.results, ctx.open_url, self, self.sorting.fill_label_menu)
        self.keeper = LibraryKeeper(
            ctx.paths.data_dir,
            ctx.encoders,
            lambda: self.models.choice,
            self.collection,
            ctx.index_options,
            self,
        )
        self.keeper.status.connect(self.library_status.setText)
        QTimer.singleShot(0, self.keeper.start)  # it waits for the open folder's run
        jobs = [self.collection.jobs, *self.maps.busy_jobs(), self.models.jobs, self.keeper.jobs]
        stop = [self.collection.shut_down, self.maps.shut_down, self.cleanup.shut_down]
        stop += [self.sorting.shut_down, self.evaluation.shut_down]
        stop.append(self.keeper.shut_down)
        stop.append(self._freeze)
        self.closing = Closing(jobs, self.pool, self.results, self.indexing, self.close, stop, self)

    def _route(self) -> None:
        c, r = self.collection, self.results
        areas = (self.models, self.maps, self.cleanup, self.files, self.sorting, self.evaluation)
        for source in (c, *areas):
            source.message.connect(self.message.show_message)
        r.error.connect(self.show_error)
        c.folder_changed.connect(self._folder_changed)
        c.folder_opened.connect(self._folder_opened)
        c.run_started.connect(self._run_started)
        c.changed.connect(self._update_summary)
        c.model_ready.connect(
            lambda info: self.details.tag_words.setEnabled(info.accepts_own_words)
        )
        self.models.choice_changed.connect(self._model_chosen)
        r.history_changed.connect(self.menus.update_nav)
        r.tags_shown.connect(self.details.set_tags)
        self.maps.item_clicked.connect(self._show_item)
        for source in (self.maps, self.cleanup, self.evaluation):
            source.show_images.connect(lambda: self.tabs.setCurrentIndex(0))
        self.results_area.query_label.linkActivated.connect(self._link)
        self.message.label.linkActivated.connect(self._link)
        self.grid.selectionModel().currentChanged.connect(self._current_changed)
        self.grid.selectionModel().selectionChanged.connect(self._selection_changed)
        self.model.modelReset.connect(self._grid_reset)
        self.details.find_similar.connect(r.find_similar)
        self.details.open_file.connect(self.files.open_path)
        self.details.show_in_folder.connect(self.files.show_in_folder)
        self.files.open_folder.connect(self.open_folder)
        self.details.tag_clicked.connect(self._tag_clicked)
        self.details.tag_words_changed.connect(self._tag_words_changed)
        self.duplicates_page.image_activated.connect(self._show_path_details)
        self.duplicates_page.image_clicked.connect(self._show_path_details)
        self.sort_page.image_shown.connect(self._show_path_details)
        self.tabs.currentChanged.connect(self._tab_changed)
        self.welcome.open_folder.connect(self.choose_folder)
        self.welcome.open_sample.connect(self.open_sample)
        self.welcome.open_recent.connect(self.open_folder)
        self.indexing.cancel_requested.connect(self.cancel_jobs)
        r.browse_sort_changed.connect(self._sort_chosen)
        self._model_chosen(self.models.choice)

    # -- folders ----------------------------------------------------------------------------

    def choose_folder(self) -> None:
        recent = self.settings.recent_folders
        start = recent[0] if recent else str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images", start)
        if folder:
            self.open_folder(folder)

    def open_folder(self, folder: str | Path) -> None:
        self.collection.open_folder(folder)

    def open_sample(self) -> None:
        self.collection.open_sample(self.ctx.paths.sample_dir)

    def _folder_changed(self, target) -> None:
        self.message.hide()
        self.details.show_item(None)
        pending, self._library_query = self._library_query, None
        if pending is not None and pending[0] == target.folder:
            self.results.run_query(pending[1])  # after the results were reset for it

    def _folder_opened(self, folder: Path) -> None:
        store_dir = self.collection.target.store_dir  # the store location may have changed
        if self._store_thumbs.store_dir != store_dir:
            self._store_thumbs.store_dir = store_dir
            self.thumbnails.reset()
        self.settings.add_recent(Path(folder))
        self._remember()
        self.menus.update_recent()
        self.welcome.set_recent(self.settings.recent_folders)
        self.setWindowTitle(f"{printable(Path(folder).name)} — visualsearch")
        self.pages.setCurrentWidget(self.splitter)

    def _run_started(self) -> None:
        if self.message.text() and self.message.text() == self.collection.last_message:
            self.message.hide()  # the last run's news ("cancelled…"): this run says its own

    def choose_store_root(self) -> None:
        start = self.settings.store_root or str(self.ctx.paths.data_dir)
        folder = QFileDialog.getExistingDirectory(self, "Where collections' data is kept", start)
        if folder:
            self.set_store_root(Path(folder))

    def set_store_root(self, folder: Path | None) -> None:
        """Keep collections' stores (vectors, thumbnails) under `folder` (None: the default)."""
        self._remember(store_root=str(folder) if folder else "")
        self.collection.store_base = folder or self.ctx.paths.data_dir
        self.show_info(
            f"Collections' data now goes under {self.collection.store_base}. Stores made "
            "elsewhere stay there; a folder opened again is indexed anew in the new place."
        )

    def _sort_chosen(self, key: str, descending: bool) -> None:
        self._remember(sort_key=key, sort_descending=descending)

    def cancel_jobs(self) -> None:
        """The status bar's Cancel: stops whatever it shows (indexing, export, download)."""
        for jobs in (self.collection.jobs, self.maps.export_jobs, self.models.jobs):
            jobs.cancel()

    def _model_chosen(self, choice: ModelChoice) -> None:
        self._remember(model_spec=choice.spec, model_weights=str(choice.weights or ""))
        self.results.builtin_model = choice.spec == "builtin"
        self.menus.sync_model(choice)

    # -- the grid and the details panel -----------------------------------------------------

    def _tab_changed(self, _index: int) -> None:
        """The details panel shows the tab's own current image (none yet on the others)."""
        tab = self.tabs.currentWidget()
        self.maps.set_visible(tab is self.map_page)
        current = self.grid.currentIndex()
        shown = tab is self.results_area and current.isValid()
        self._show_item(self.model.item(current.row()) if shown else None)

    def _grid_reset(self) -> None:
        """New items, none current: on the Images tab the details panel is emptied (the
        other tabs show their own image there). A grid given the focus meanwhile made its
        first item current, and the panel shows that already."""
        if self.tabs.currentIndex() == 0 and not self.grid.currentIndex().isValid():
            self._show_item(None)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._show_item(self.model.item(current.row()) if current.isValid() else None)

    def _show_item(self, item: GridItem | None) -> None:
        self.details.show_item(item)
        self.results.request_tags([item.path] if item is not None and item.rel else [])

    def _show_path_details(self, path: Path) -> None:
        rel = path.relative_to(self.collection.target.folder).as_posix()
        self._show_item(GridItem(path, rel, self.collection.records.get(rel)))

    def _selection_changed(self, *_args) -> None:
        if not 1 < self.files.selection_size() <= TAGS_FOR_UP_TO:
            return
        self.results.request_tags(self.files.selected_paths())  # the selection's mean vector

    def _tag_words_changed(self, words: list[str]) -> None:
        self._remember(tag_words=words)
        self.results.set_tag_words(words)
        self._show_item(self.details.item)

    def _tag_clicked(self, tag: str) -> None:
        self.tabs.setCurrentIndex(0)
        self.results.run_query(TextQuery(tag))

    def zoom(self, step: int) -> None:
        sizes = THUMB_SIZES
        current = min(range(len(sizes)), key=lambda i: abs(sizes[i] - self.settings.thumbnail_size))
        self._set_thumbnail_size(sizes[max(0, min(len(sizes) - 1, current + step))])

    def _set_thumbnail_size(self, size: int) -> None:
        self._remember(thumbnail_size=size)
        self.grid.set_icon_size(size)
        self.model.set_icon_size(size)

    # -- drag and drop, clipboard -----------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        mime = event.mimeData()
        if mime.hasImage() or any(u.isLocalFile() for u in mime.urls()):
            accept_without_move(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        accept_without_move(event)

    def dropEvent(self, event: QDropEvent) -> None:
        if self.files.ask(event.mimeData()):
            accept_without_move(event)

    # -- messages, status, settings ---------------------------------------------------------

    def show_error(self, text: str) -> None:
        self.message.show_message(text, "error")

    def show_info(self, text: str) -> None:
        self.message.show_message(text, "info")

    def _link(self, href: str) -> None:
        if href == "model":
            self.menus.model_button.showMenu()
        elif href == "skipped":
            self.show_skipped()

    def show_skipped(self) -> None:
        show_skipped(self, self.collection.skipped)

    def show_library(self) -> LibraryDialog | None:
        try:
            library = Library(self.ctx.paths.data_dir, self.collection.store_base)
        except LibraryError as exc:
            self.message.show_message(str(exc), "error")
            return None
        encoders, models = self.ctx.encoders, self.models
        dialog = LibraryDialog(
            library, self.pool, lambda: encoders.get(models.choice), self, self.ctx.paths.cache_dir
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open_root.connect(self.open_folder)
        dialog.show_image.connect(self._show_library_image)
        dialog.finished.connect(lambda _result: self.keeper.start())  # roots may have changed
        dialog.show()
        self.library_dialog = dialog
        return dialog

    def _show_library_image(self, root: Path, path: Path) -> None:
        """A library hit: its root opened, the image first among those most like it (asked
        once the root is open: a run in progress opens it only when it has stopped)."""
        self.tabs.setCurrentIndex(0)
        query = ImageQuery(path, include_self=True)
        target = self.collection.target
        if target is not None and target.folder == root:
            self.results.run_query(query)  # open already: not indexed again
            return
        self._library_query = (root, query)
        self.open_folder(root)

    def about_text(self) -> str:
        info = self.collection.model_info
        return about_text(info.id if info else self.models.choice.label(), self.ctx.paths)

    def show_about(self) -> None:
        show_about(self, self.about_text())

    def reset_settings(self) -> None:
        """Back to the defaults: built-in model, default thumbnails, no recent folders."""
        question = "Reset all settings to their defaults? Collections and their indexes stay."
        if not self.ctx.confirm(
            self, "Reset settings", question, "model, thumbnail size, recent folders"
        ):
            return
        self.settings = UserSettings()
        self.ctx.settings.save(self.settings)
        self.collection.store_base = self.ctx.paths.data_dir
        self.results.sort_by(self.settings.sort_key, self.settings.sort_descending)
        self.details.tag_words.setText("")
        self.results.set_tag_words([])
        self.menus.update_recent()
        self.welcome.set_recent(self.settings.recent_folders)
        self._set_thumbnail_size(self.settings.thumbnail_size)
        self.models.set_model(ModelChoice(self.settings.model_spec), fallback=False)
        self.menus.fast_clip_action.setChecked(self.settings.fast_clip)
        self.show_info("Settings are back to their defaults.")

    def set_fast_clip(self, on: bool) -> None:
        """CLIP's image model on OpenVINO bf16 (opt-in, Model menu): kept in the settings,
        taken by the next CLIP model loaded."""
        self._remember(fast_clip=on)
        self.ctx.encoders.set_fast_clip(on)

    def _freeze(self) -> None:
        """Closing: nothing can be asked any more (the engine is shutting down)."""
        self.centralWidget().setEnabled(False)
        self.menuBar().setEnabled(False)
        for action in self.actions():
            action.setEnabled(False)

    def _remember(self, **values) -> None:
        """Change these settings and save them (QSettings is only where they are kept)."""
        for name, value in values.items():
            setattr(self.settings, name, value)
        self.ctx.settings.save(self.settings)

    def _update_summary(self) -> None:
        c = self.collection
        parts, tips = [f"{len(c.records):,} images"], []
        info = c.model_info
        if info is not None:
            on_gpu = info.device not in ("", "cpu")
            parts.append(info.id + (" on the GPU" if on_gpu else ""))
            if info.device:  # "" until a run has loaded the model ("auto" settles then)
                where = "GPU" if on_gpu else "CPU"
                tips.append(f"The model runs on the {where} ({info.device}).")
        if c.skipped:
            parts.append(f"{len(c.skipped)} skipped")
            tips.append(skipped_text(len(c.skipped)))
        self.summary.setText(" · ".join(parts) if c.target else "")
        self.summary.setToolTip("\n".join(tip for tip in tips if tip))

    # -- closing ----------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.closing.ready():  # says "Closing…" and closes again when it may
            event.ignore()
            return
        self.ctx.settings.save_geometry(self.saveGeometry(), self.splitter.saveState())
        self.ctx.settings.save(self.settings)
        super().closeEvent(event)
