"""The main window: actions, menus and layout. It wires signals and computes nothing;
indexing runs in an IndexJob thread, queries in the SearchEngine thread."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import (
    QBuffer,
    QIODevice,
    QModelIndex,
    QSize,
    Qt,
    QThread,
    QThreadPool,
    QUrl,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from visualsearch import __version__
from visualsearch.core.collection_map import CollectionMap
from visualsearch.core.folder import ModelChoice
from visualsearch.core.indexing import IndexReport, ensure_dir_exists
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
from visualsearch.core.settings import UserSettings
from visualsearch.core.store import FileRecord, default_store_dir
from visualsearch.qt.cleanup_actions import CleanupActions
from visualsearch.qt.context import AppContext
from visualsearch.qt.desktop import show_in_file_manager
from visualsearch.qt.details_panel import DetailsPanel
from visualsearch.qt.duplicates_page import DuplicatesPage
from visualsearch.qt.grid_view import ThumbnailGrid
from visualsearch.qt.icons import app_icon
from visualsearch.qt.image_list_model import GridItem, ImageListModel, freeze_long_lived_objects
from visualsearch.qt.map_actions import MapActions
from visualsearch.qt.map_page import MapPage
from visualsearch.qt.model_actions import CLIP_MODELS, ModelActions
from visualsearch.qt.thumbnails import ImageLoader, StoreThumbnails, load_preview
from visualsearch.qt.widgets import JobStatus, MessageBar, WelcomePage
from visualsearch.qt.workers import (
    FolderTarget,
    IndexJob,
    IndexOutcome,
    JobSlot,
    SearchEngine,
    outlive,
    run_task,
)

BUILTIN_TEXT_HINT = (
    "The built-in model knows about 1,000 everyday things (ImageNet's categories: animals, "
    "objects, vehicles, food…), not whole scenes. For free-form text such as “a dog on a "
    "beach”, switch to a <a href='model'>CLIP model</a>."
)
THUMB_SIZES = (96, 128, 160, 200, 256)
RESULTS_PAGE = 200  # matches asked for at a time; "Show more" asks for the next page
QUERY_THUMB = QSize(56, 56)


def wait_text(seconds: float) -> str:
    """How long the user waited, as the results' header says it."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _query_text(query: Query) -> str:
    """What the search box shows for a query: its words ("+ words" when they steer an
    image), else nothing."""
    if isinstance(query, TextQuery):
        return query.text
    if isinstance(query, MixQuery):
        return f"+ {query.text}"
    return ""


def _accept_without_move(event: QDropEvent) -> None:
    """Accept a drag or drop as a copy (or link), never a move: a file manager deletes
    the source of an accepted move. Offered only a move, it is refused."""
    for action in (Qt.DropAction.CopyAction, Qt.DropAction.LinkAction):
        if event.possibleActions() & action:
            event.setDropAction(action)
            event.accept()
            return
    event.ignore()


def _count_text(result: QueryResult) -> str:
    """'12 images', or 'The best 200 of 267 images' when more matches are left out."""
    n = len(result.hits)
    return f"The best {n:,} of {result.candidates:,} images" if result.more else f"{n:,} images"


class MainWindow(MapActions, CleanupActions, ModelActions, QMainWindow):
    # for tests and scripts: what the window did
    folder_opened = Signal(str)
    catalog_shown = Signal(int)
    indexing_finished = Signal(object)  # IndexReport
    indexing_failed = Signal(str)
    results_shown = Signal(object)  # QueryResult, or None for "all images"
    query_failed = Signal(str)
    engine_ready = Signal(int)
    map_ready = Signal(object)  # CollectionMap
    export_finished = Signal(object)  # ExportReport
    duplicates_ready = Signal(object)  # [DuplicateGroup]
    trash_finished = Signal(object)  # ([moved], [(path, reason)])
    tags_shown = Signal(object)  # [(tag, score)]
    download_failed = Signal(str)

    # to the search engine's thread
    _engine_target = Signal(object, bool)
    _engine_query = Signal(int, object, object, int)  # request, query, min. score, k
    _engine_tags = Signal(int, object)
    _engine_shutdown = Signal()

    def __init__(self, context: AppContext) -> None:
        super().__init__()
        self.ctx = context
        self.settings = context.settings.load()
        weights = self.settings.model_weights
        self.model_choice = ModelChoice(
            self.settings.model_spec, Path(weights) if weights else None
        )
        self._fallback_model: ModelChoice | None = None  # the model before a switch, until it works
        self.target: FolderTarget | None = None
        self.history = QueryHistory()
        self.records: dict[str, FileRecord] = {}
        self.skipped: list[tuple[str, str]] = []  # unreadable files and scan problems
        self._run_message = ""  # what the last indexing run said in the message bar
        self._browse_rows: dict[str, int] = {}  # rel path → row while showing all images
        # one job of each kind at a time; what to do when one has ended
        self.index_jobs = JobSlot(self)
        self.index_jobs.idle.connect(self._index_job_ended)
        self.map_jobs = JobSlot(self)
        self.map_jobs.idle.connect(self._map_job_ended)
        self.export_jobs = JobSlot(self)
        self.download_jobs = JobSlot(self)
        self._pending_open: Path | None = None
        self._request = 0
        self._encoder_id = ""
        self._query_image_key: str | None = None
        self.cmap: CollectionMap | None = None
        self._map_k: int | None = None  # None: automatic
        self._map_stale = True
        self._map_again = False
        self.map_selection = np.zeros(0, np.int64)
        self.min_score: float | None = None
        self._tags_request = 0
        self.page_size = RESULTS_PAGE
        self._asked_at = 0.0  # when the latest query was asked (time.perf_counter)
        self._shown: QueryResult | None = None  # the query result the grid shows, if any

        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(4)
        self._store_thumbs = StoreThumbnails()
        self.thumbnails = ImageLoader(self._store_thumbs, self.pool, "thumb")
        self.previews = ImageLoader(load_preview, self.pool, "preview", threads=1)

        self._build_engine()
        self._build_ui()
        self._build_actions()
        self._update_nav()
        self.setAcceptDrops(True)
        self.setWindowTitle("visualsearch")
        self.setWindowIcon(app_icon())
        geometry = context.settings.geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 820)

    # -- construction -----------------------------------------------------------------------

    def _build_engine(self) -> None:
        self.engine = SearchEngine(self.ctx.encoders, self.ctx.paths.cache_dir)
        self._engine_thread = QThread(self)
        self._engine_thread.setObjectName("SearchEngine")
        self.engine.moveToThread(self._engine_thread)
        self._engine_target.connect(self.engine.set_target)
        self._engine_query.connect(self.engine.run)
        self._engine_tags.connect(self.engine.suggest_tags)
        self.engine.tags_ready.connect(self._on_tags)
        self._engine_shutdown.connect(self.engine.shutdown)
        self.engine.results.connect(self._on_results)
        self.engine.failed.connect(self._on_query_failed)
        self.engine.opened.connect(self._engine_opened)
        self._engine_thread.start()

    def _engine_opened(self, count: int) -> None:
        freeze_long_lived_objects()  # the text model was just imported: keep GC passes short
        self.engine_ready.emit(count)

    def _build_ui(self) -> None:
        self.search_box = QLineEdit(
            placeholderText="Search by text: “a cat”, “coffee cup”… (Ctrl+F)"
        )
        self.search_box.setClearButtonEnabled(True)
        self.search_box.returnPressed.connect(self._search_entered)

        self.model = ImageListModel(self.thumbnails, self.settings.thumbnail_size, self)
        self.grid = ThumbnailGrid(self.settings.thumbnail_size)
        self.grid.setModel(self.model)
        self.grid.activated_item.connect(self._activated)
        self.grid.customContextMenuRequested.connect(self._grid_menu)
        self.grid.selectionModel().currentChanged.connect(self._current_changed)
        self.grid.selectionModel().selectionChanged.connect(self._selection_changed)
        self.model.modelReset.connect(self._grid_reset)

        self.query_label = QLabel()
        self.query_label.setTextFormat(Qt.TextFormat.RichText)
        self.query_label.setWordWrap(True)
        self.query_label.linkActivated.connect(self._link)
        self.all_button = QToolButton(text="Show all images")
        self.all_button.setToolTip("Clear the query (Esc)")
        self.all_button.clicked.connect(self.show_all)
        self.query_image = QLabel()  # the query image, for "images like this one"
        self.query_image.setFixedSize(QUERY_THUMB.width() + 4, QUERY_THUMB.height() + 4)
        self.query_image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.query_image.hide()
        self.previews.loaded.connect(self._query_image_loaded)
        header = QHBoxLayout()
        header.setContentsMargins(4, 2, 4, 2)
        header.addWidget(self.query_image)
        header.addWidget(self.query_label, 1)
        self.min_score_box = QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.05, decimals=2)
        self.min_score_box.setSpecialValueText("off")
        self.min_score_box.setToolTip(
            "Minimum similarity: weaker matches are left out, so a search can honestly "
            "find nothing (0 = off)"
        )
        self.min_score_box.valueChanged.connect(self._min_score_changed)
        header.addWidget(QLabel("Min. similarity:"))
        header.addWidget(self.min_score_box)
        header.addWidget(self._build_more_button())
        header.addWidget(self.all_button)

        grid_area = QWidget()
        grid_layout = QVBoxLayout(grid_area)
        grid_layout.setContentsMargins(0, 0, 0, 0)
        grid_layout.addLayout(header)
        grid_layout.addWidget(self.grid, 1)

        self.details = DetailsPanel(self.previews)
        self.details.find_similar.connect(self.find_similar)
        self.details.open_file.connect(self._open_path)
        self.details.show_in_folder.connect(self._show_in_folder)
        self.details.tag_clicked.connect(self._tag_clicked)
        self.details.tag_words.setText(", ".join(self.settings.tag_words))
        self.engine.tag_words = list(self.settings.tag_words)
        self.details.tag_words_changed.connect(self._tag_words_changed)

        self.map_page = MapPage(self.thumbnails)
        self.map_page.view.clicked.connect(self._map_clicked)
        self.map_page.view.selection_changed.connect(self.show_map_selection)
        self.map_page.more_like_these.connect(self.more_like_selection)
        self.map_page.export_selection.connect(self._export_selection_clicked)
        self.map_page.clusters.cluster_activated.connect(self.show_cluster)
        self.map_page.clusters.renamed.connect(self.rename_cluster)
        self.map_page.clusters.k_changed.connect(self.set_cluster_count)
        self.map_page.clusters.export_requested.connect(self._export_clusters_clicked)
        self.tabs = QTabWidget()
        self.tabs.addTab(grid_area, "Images")
        self.tabs.addTab(self.map_page, "Map")
        self.duplicates_page = DuplicatesPage(self.thumbnails)
        self.duplicates_page.find_requested.connect(self.find_duplicates)
        self.duplicates_page.trash_requested.connect(self.trash_files)
        self.duplicates_page.export_requested.connect(self._export_duplicates_csv)
        self.duplicates_page.image_activated.connect(self._show_path_details)
        self.duplicates_page.image_clicked.connect(self._show_path_details)
        self.tabs.addTab(self.duplicates_page, "Duplicates")
        self.tabs.currentChanged.connect(self._tab_changed)

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
        self.welcome.open_folder.connect(self.choose_folder)
        self.welcome.open_sample.connect(self.open_sample)
        self.welcome.open_recent.connect(self.open_folder)
        self.welcome.set_recent(self.settings.recent_folders)

        self.pages = QStackedWidget()
        self.pages.addWidget(self.welcome)
        self.pages.addWidget(self.splitter)

        self.message = MessageBar()
        self.message.label.linkActivated.connect(self._link)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.addWidget(self.message)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)

        self.summary = QLabel()
        self.indexing = JobStatus()
        self.indexing.cancel_requested.connect(self.cancel_indexing)
        self.statusBar().addWidget(self.summary, 1)
        self.statusBar().addPermanentWidget(self.indexing)

    def _build_more_button(self) -> QToolButton:
        """The "Show more" button (the next page of matches), "Show all" in its menu."""
        self.more_button = QToolButton(text="Show more")
        self.more_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        self.more_button.clicked.connect(self.show_more)
        menu = QMenu(self.more_button)
        self.every_match_action = menu.addAction("Show all", self.show_every_match)
        self.more_button.setMenu(menu)
        self.more_button.hide()
        self.model.modelReset.connect(self._results_replaced)
        return self.more_button

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work wherever the focus is
        return action

    def _build_actions(self) -> None:
        self.open_action = self._action(
            "&Open Folder…", self.choose_folder, QKeySequence.StandardKey.Open, "Open a folder"
        )
        self.sample_action = self._action("Try the &Sample Collection", self.open_sample)
        self.reindex_action = self._action(
            "&Re-index",
            self.reindex,
            QKeySequence.StandardKey.Refresh,
            "Look for new or changed files",
        )
        self.skipped_action = self._action("S&kipped Files…", self.show_skipped)
        self.store_location_action = self._action("Store &Location…", self.choose_store_root)
        quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.back_action = self._action("&Back", self.go_back, "Alt+Left", "Previous query")
        self.forward_action = self._action("&Forward", self.go_forward, "Alt+Right", "Next query")
        self.all_action = self._action("&All Images", self.show_all, "Esc", "Clear the query")
        self.similar_action = self._action("Find &Similar", self._similar_to_current, None)
        self.outliers_action = self._action(
            "&Odd Ones Out", self.show_outliers, None, "Images least like any other image"
        )
        self.search_action = self._action(
            "&Search…", self._focus_search, QKeySequence.StandardKey.Find
        )
        self.paste_action = self._action(
            "&Paste Image as Query", self.paste_query, QKeySequence.StandardKey.Paste
        )
        self.copy_path_action = self._action("&Copy Path", self.copy_paths, "Ctrl+Shift+C")
        bigger = self._action(
            "&Larger Thumbnails", lambda: self._zoom(+1), QKeySequence.StandardKey.ZoomIn
        )
        smaller = self._action(
            "S&maller Thumbnails", lambda: self._zoom(-1), QKeySequence.StandardKey.ZoomOut
        )
        about = self._action("&About visualsearch", self.show_about)
        self.reset_action = self._action("Reset &Settings…", self.reset_settings)

        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        file_menu.addAction(self.sample_action)
        file_menu.addSeparator()
        file_menu.addAction(self.reindex_action)
        file_menu.addAction(self.skipped_action)
        file_menu.addAction(self.store_location_action)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        edit_menu = bar.addMenu("&Edit")
        edit_menu.addAction(self.paste_action)
        edit_menu.addAction(self.copy_path_action)
        edit_menu.addSeparator()
        edit_menu.addAction(self.reset_action)
        go_menu = bar.addMenu("&Go")
        for a in (
            self.back_action,
            self.forward_action,
            self.all_action,
            self.similar_action,
            self.search_action,
            self.outliers_action,
        ):
            go_menu.addAction(a)
        view_menu = bar.addMenu("&View")
        view_menu.addAction(bigger)
        view_menu.addAction(smaller)
        self.model_menu = bar.addMenu("&Model")
        group = QActionGroup(self)
        self.builtin_model_action = QAction(
            "&Built-in model (offline, ImageNet categories)", self, checkable=True
        )
        self.clip_actions = []
        for clip in CLIP_MODELS:
            action = QAction(f"CLIP {clip.arch} ({clip.note})", self, checkable=True)
            action.setData(clip.choice.spec)
            action.triggered.connect(lambda _=False, c=clip: self.choose_clip(c))
            self.clip_actions.append(action)
        self.clip_model_action = self.clip_actions[0]
        self.checkpoint_action = QAction("CLIP from a &checkpoint file…", self, checkable=True)
        for a in (self.builtin_model_action, *self.clip_actions, self.checkpoint_action):
            group.addAction(a)
            self.model_menu.addAction(a)
        self.builtin_model_action.triggered.connect(lambda: self.set_model(ModelChoice("builtin")))
        self.checkpoint_action.triggered.connect(self.choose_checkpoint)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(about)
        self._sync_model_actions()
        self._update_recent_menu()

        tools = self.addToolBar("Main")
        tools.setObjectName("main-toolbar")
        tools.setMovable(False)
        tools.addAction(self.open_action)
        tools.addAction(self.back_action)
        tools.addAction(self.forward_action)
        tools.addWidget(self.search_box)
        self.model_button = QToolButton()
        self.model_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.model_button.setMenu(self.model_menu)
        self.model_button.setToolTip("The model that turns images and text into vectors")
        tools.addWidget(self.model_button)
        self._sync_model_actions()

    # -- folders and indexing ---------------------------------------------------------------

    def choose_folder(self) -> None:
        start = (
            self.settings.recent_folders[0] if self.settings.recent_folders else str(Path.home())
        )
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images", start)
        if folder:
            self.open_folder(folder)

    def open_sample(self) -> None:
        from visualsearch.core.sample import build_sample_collection

        self.indexing.start()
        self.indexing.update_progress(0, 0, "Making the sample collection…")
        dest = self.ctx.paths.sample_dir
        run_task(
            self.pool,
            lambda: build_sample_collection(dest),
            self._sample_ready,
            self._sample_failed,
        )

    def _sample_ready(self, folder: object) -> None:
        self.open_folder(Path(str(folder)))

    def _sample_failed(self, message: str) -> None:
        self.indexing.finish()
        self.show_error(f"The sample collection could not be made: {message}")

    def open_folder(self, folder: str | Path) -> None:
        """Show what is already indexed at once, then index new and changed files."""
        try:
            path = ensure_dir_exists(Path(folder)).resolve()
        except OSError as exc:
            self.show_error(f"Cannot open {folder}: {exc}")
            return
        if self._job_running():
            self._pending_open = path  # opened when the current run has stopped
            self.cancel_indexing()
            return
        store_base = Path(self.settings.store_root or self.ctx.paths.data_dir)
        target = FolderTarget(path, default_store_dir(path, store_base), self.model_choice)
        changed_folder = self.target is None or self.target.folder != path
        self.target = target
        self._store_thumbs.store_dir = target.store_dir
        if changed_folder:
            self.cmap = None
            self.map_selection = np.zeros(0, np.int64)
            self.map_page.view.set_data(np.zeros((0, 2)), np.zeros(0, np.int64), [], 1)
            self.map_page.clusters.tree.clear()
            self.message.hide()
            self.thumbnails.reset()
            self.history.clear()
            self.records, self._browse_rows = {}, {}
            self.skipped = []
            self.model.set_items([])
            self.details.show_item(None)
            self.search_box.clear()
        self.settings.add_recent(path)
        self.ctx.settings.save(self.settings)
        self._update_recent_menu()
        self.setWindowTitle(f"{path.name} — visualsearch")
        self.pages.setCurrentWidget(self.splitter)
        if changed_folder:
            self._engine_target.emit(target, True)
        # else (re-index, another model): queries keep using what is there until the run
        # ends, so the old model's results stay usable while the new one encodes
        self._start_job(target)
        self.folder_opened.emit(str(path))

    def choose_store_root(self) -> None:
        start = self.settings.store_root or str(self.ctx.paths.data_dir)
        folder = QFileDialog.getExistingDirectory(self, "Where collections' data is kept", start)
        if folder:
            self.set_store_root(Path(folder))

    def set_store_root(self, folder: Path | None) -> None:
        """Keep collections' stores (vectors, thumbnails) under `folder` (None: the default)."""
        self.settings.store_root = str(folder) if folder else ""
        self.ctx.settings.save(self.settings)
        where = folder or self.ctx.paths.data_dir
        self.show_info(
            f"Collections' data now goes under {where}. Stores made elsewhere stay there; a "
            "folder opened again is indexed anew in the new place."
        )

    def reindex(self) -> None:
        if self.target is not None:
            self.open_folder(self.target.folder)

    def _job_running(self) -> bool:
        return self.index_jobs.busy()

    def _start_job(self, target: FolderTarget) -> None:
        job = IndexJob(target, self.ctx.encoders, self.ctx.index_options)
        job.catalog.connect(self._on_catalog)
        job.model_ready.connect(self._on_model_ready)
        job.progress.connect(self.indexing.update_progress)
        job.batch.connect(self._on_batch)
        job.finished.connect(self._on_index_finished)
        job.failed.connect(self._on_index_failed)
        if self.message.text() and self.message.text() == self._run_message:
            self.message.hide()  # the last run's news ("cancelled…"): this run says its own
        self.indexing.start()
        self.index_jobs.start(job)

    def cancel_indexing(self) -> None:
        """The status bar's Cancel: stops whatever it shows (indexing, export, download)."""
        for jobs in (self.index_jobs, self.export_jobs, self.download_jobs):
            jobs.cancel()

    def _on_catalog(self, records: list[FileRecord]) -> None:
        self.records = {r.path: r for r in records}
        if self.history.current is None:
            self._show_browse()
        self._update_summary()
        self.catalog_shown.emit(len(records))

    def _on_model_ready(self, encoder_id: str) -> None:
        self._encoder_id = encoder_id
        encoder = self.ctx.encoders.get(self.model_choice)  # loaded: returns at once
        self.duplicates_page.set_model_threshold(getattr(encoder, "near_duplicate_threshold", 0.9))
        # own tag words need a model whose vocabulary is text (CLIP), not a classifier
        self.details.tag_words.setEnabled(getattr(encoder, "classifier", None) is None)
        self._update_summary()

    def _on_batch(self, records: list[FileRecord]) -> None:
        browsing = self.history.current is None and self.target is not None
        new_items = []
        for r in records:
            if r.error is not None:
                continue
            known = r.path in self.records
            self.records[r.path] = r
            if not browsing:
                continue
            item = GridItem(self.target.folder / r.path, r.path, r)
            if known and r.path in self._browse_rows:
                self.model.replace_item(self._browse_rows[r.path], item)
            elif not known:
                self._browse_rows[r.path] = self.model.rowCount() + len(new_items)
                new_items.append(item)
        self.model.append_items(new_items)
        if browsing:
            self.query_label.setText(f"All images · {self.model.rowCount():,}")
        self._update_summary()

    def _on_index_finished(self, outcome: IndexOutcome) -> None:
        report = outcome.report
        self.indexing.finish()
        self._fallback_model = None
        newly_skipped = set(outcome.skipped) - set(self.skipped)
        self.skipped = list(outcome.skipped)
        before = set(self.records)
        self.records = {r.path: r for r in outcome.records}
        added = report.new or report.changed or report.moved
        if self.history.current is None and (added or before != set(self.records)):
            current = self.grid.currentIndex()
            keep = self.model.item(current.row()).rel if current.isValid() else None
            self._show_browse()  # in path order again, with what this run found
            if keep in self._browse_rows:
                self.grid.setCurrentIndex(self.model.index(self._browse_rows[keep]))
        if self.target is not None:
            self._engine_target.emit(self.target, False)
        self._map_stale = True
        if self.tabs.currentWidget() is self.map_page and not report.cancelled:
            self.refresh_map()
        self._update_summary()
        self._show_run_message(report, bool(newly_skipped))
        self.indexing_finished.emit(report)

    def _show_run_message(self, report: IndexReport, newly_skipped: bool) -> None:
        """What a finished run has to tell, in the message bar (remembered, so that the next
        run takes it away)."""
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
        elif report.scanned == 0:
            text, kind = (
                f"No images found in {report.folder}. visualsearch looks for JPEG, PNG, WebP, "
                "HEIC, TIFF, BMP and GIF files, in sub-folders too.",
                "error",
            )
        elif newly_skipped:
            text, kind = f"{self._skipped_text()} <a href='skipped'>Show them</a>", "info"
        else:
            return
        self.message.show_message(text, kind)
        self._run_message = self.message.label.text()

    def _skipped_text(self) -> str:
        """How many files and folders are left out, the same count everywhere."""
        return (
            f"{len(self.skipped):,} skipped: files that could not be read, hidden folders "
            "or files, link loops."
        )

    def _on_index_failed(self, message: str) -> None:
        self.indexing.finish()
        fallback, self._fallback_model = self._fallback_model, None
        if fallback is not None:  # the new model cannot be used: keep working with the old one
            message += f" Still using the {fallback.label()}."
            self.set_model(fallback, fallback=False)
        self.show_error(message)
        self.indexing_failed.emit(message)

    def _index_job_ended(self) -> None:
        if self._pending_open is not None:
            folder, self._pending_open = self._pending_open, None
            self.open_folder(folder)

    # -- queries ----------------------------------------------------------------------------

    def run_query(self, query: Query, push: bool = True, k: int = 0) -> None:
        """Ask the engine for the best `k` matches (0: a page)."""
        if self.target is None:
            self.show_error("Open a folder first: the query needs images to search.")
            return
        if push:
            self.history.push(query)
        self.search_box.setText(_query_text(query))
        self._update_nav()
        self._request += 1
        self.engine.latest_request = self._request
        self.query_label.setText(f"Searching {query.label()}…")
        self._show_query_image(query)
        self._asked_at = time.perf_counter()  # the user's wait: engine queue, model loading…
        self._engine_query.emit(self._request, query, self.min_score, k or self.page_size)

    def show_more(self) -> None:
        """The next page of the shown result's matches, below the ones shown."""
        if self._shown is not None:
            k = len(self._shown.hits) + self.page_size
            self.run_query(self._shown.query, push=False, k=k)

    def show_every_match(self) -> None:
        if self._shown is not None:
            self.run_query(self._shown.query, push=False, k=max(self._shown.candidates, 1))

    def find_similar(self, path: Path) -> None:
        self.run_query(ImageQuery(Path(path)))

    def show_all(self) -> None:
        self.search_box.clear()
        if self.history.current is not None:
            self.history.push(None)
        self._show_browse()
        self._update_nav()

    def go_back(self) -> None:
        self._show_query(self.history.back())

    def go_forward(self) -> None:
        self._show_query(self.history.forward())

    def _show_query(self, query: Query | None) -> None:
        self._update_nav()
        if query is None:
            self.search_box.clear()
            self._show_browse()
        else:
            self.run_query(query, push=False)

    def _show_browse(self) -> None:
        if self.target is None:
            return
        self._request += 1  # results still on their way are no longer wanted
        root = self.target.folder
        items = [GridItem(root / rel, rel, r) for rel, r in sorted(self.records.items())]
        self._browse_rows = {it.rel: i for i, it in enumerate(items)}
        self.model.set_items(items)
        self.query_label.setText(f"All images · {len(items):,}")
        self._show_query_image(None)
        self.all_button.setVisible(False)
        self.results_shown.emit(None)

    def _show_query_image(self, query: Query | None) -> None:
        self._query_image_key = str(query.path) if isinstance(query, ImageQuery) else None
        self.query_image.clear()
        self.query_image.setVisible(self._query_image_key is not None)
        if self._query_image_key is not None:
            self._query_image_loaded(self._query_image_key)

    def _query_image_loaded(self, key: str) -> None:
        if key == self._query_image_key:
            pixmap = self.previews.pixmap(key, QUERY_THUMB)
            if pixmap is not None:
                self.query_image.setPixmap(pixmap)

    def _on_results(self, request_id: int, result: QueryResult) -> None:
        if request_id != self._request or self.target is None:
            return
        root = self.target.folder
        items = []
        for hit in result.hits:
            try:
                rel = hit.path.relative_to(root).as_posix()
            except ValueError:
                rel = None
            items.append(GridItem(hit.path, rel, self.records.get(rel) if rel else None, hit.score))
        self._browse_rows = {}
        if self._extends_shown(result):  # "Show more": the rows shown stay as they are
            self.model.append_items(items[self.model.rowCount() :])
        else:
            self.model.set_items(items)
            if items:
                self.grid.setCurrentIndex(self.model.index(0))
        self._show_more_button(result)
        waited = wait_text(time.perf_counter() - self._asked_at)
        text = f"{_count_text(result)} {result.query.label()} · {waited}"
        if not items and self.min_score is not None and result.best_score is not None:
            text = (
                f"No image {result.query.label()} reaches similarity {self.min_score:.2f} "
                f"(the best: {result.best_score:.2f})."
            )
        elif not items:
            text = f"No images {result.query.label()}."
        if result.missing:
            text += f" ({result.missing} left out: deleted since indexing; press F5)"
        if isinstance(result.query, TextQuery) and self.model_choice.spec == "builtin":
            text += f"<br><small>{BUILTIN_TEXT_HINT}</small>"
        self.query_label.setText(text)
        self.all_button.setVisible(True)
        self.results_shown.emit(result)

    def _extends_shown(self, result: QueryResult) -> bool:
        """Whether `result` is the shown result and further matches ("Show more")."""
        shown = self._shown
        if shown is None or shown.query != result.query or len(result.hits) <= len(shown.hits):
            return False
        return [h.path for h in result.hits[: len(shown.hits)]] == [h.path for h in shown.hits]

    def _show_more_button(self, result: QueryResult) -> None:
        self._shown = result
        rest = result.candidates - len(result.hits)
        self.more_button.setToolTip(f"Show the next {min(self.page_size, rest):,} matches")
        self.every_match_action.setText(f"Show all {result.candidates:,}")
        self.more_button.setVisible(result.more)

    def _results_replaced(self) -> None:
        """The grid shows something else (all images, a cluster…): nothing more to show."""
        self._shown = None
        self.more_button.hide()

    def _on_query_failed(self, request_id: int, message: str) -> None:
        if request_id != self._request:
            return
        self.query_label.setText("The query failed.")
        self.show_error(message)
        self.query_failed.emit(message)

    def _search_entered(self) -> None:
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

    def _focus_search(self) -> None:
        self.search_box.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_box.selectAll()

    def _activated(self, index: QModelIndex) -> None:
        selected = self.selected_paths()
        if len(selected) > 1:  # Enter on a multi-selection: more like these
            self.run_query(SelectionQuery(tuple(selected)))
        else:
            self.find_similar(Path(self.model.item(index.row()).path))

    def _similar_to_current(self) -> None:
        index = self.grid.currentIndex()
        if index.isValid():
            self._activated(index)

    def _grid_reset(self) -> None:
        """The grid holds new items and none is current: on the Images tab the details panel
        is emptied (it showed the previous image and its similarity). The other tabs show
        their own image there."""
        if self.tabs.currentIndex() == 0:
            self._current_changed(QModelIndex(), QModelIndex())

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        item = self.model.item(current.row()) if current.isValid() else None
        self.details.show_item(item)
        self._request_tags(item)

    def _selection_changed(self, *_args) -> None:
        selected = self.selected_paths()
        if len(selected) > 1:  # tags for the whole selection (its mean vector)
            self._tags_request += 1
            self.engine.latest_tags = self._tags_request
            self._engine_tags.emit(self._tags_request, selected)

    def _update_nav(self) -> None:
        self.back_action.setEnabled(self.history.can_go_back())
        self.forward_action.setEnabled(self.history.can_go_forward())

    # -- drag and drop, clipboard -----------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        mime = event.mimeData()
        if mime.hasImage() or any(u.isLocalFile() for u in mime.urls()):
            _accept_without_move(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        _accept_without_move(event)

    def dropEvent(self, event: QDropEvent) -> None:
        if self._query_from_mime(event.mimeData()):
            _accept_without_move(event)

    def paste_query(self) -> None:
        if not self._query_from_mime(QGuiApplication.clipboard().mimeData()):
            self.show_info("The clipboard holds no image or image file to search with.")

    def _query_from_mime(self, mime) -> bool:
        files = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
        if files:
            if files[0].is_dir():
                self.open_folder(files[0])
            else:
                self.run_query(ImageQuery(files[0]))
            return True
        if mime.hasImage():
            image = QImage(mime.imageData())
            if image.isNull():
                return False
            buffer = QBuffer()
            buffer.open(QIODevice.OpenModeFlag.WriteOnly)
            image.save(buffer, "PNG")
            self.run_query(ImageDataQuery(bytes(buffer.data())))
            return True
        return False

    # -- files ------------------------------------------------------------------------------

    def _grid_menu(self, pos) -> None:
        index = self.grid.indexAt(pos)
        if not index.isValid():
            return
        path = self.model.item(index.row()).path
        menu = QMenu(self)
        selected = self.selected_paths()
        if len(selected) > 1:
            menu.addAction(
                f"Find more like these {len(selected)}",
                lambda: self.run_query(SelectionQuery(tuple(selected))),
            )
        menu.addAction("Find similar", lambda: self.find_similar(path))
        menu.addSeparator()
        menu.addAction("Open", lambda: self._open_path(path))
        menu.addAction("Show in folder", lambda: self._show_in_folder(path))
        menu.addAction("Copy path", self.copy_paths)
        menu.popup(self.grid.viewport().mapToGlobal(pos))

    def selected_paths(self) -> list[Path]:
        rows = sorted({i.row() for i in self.grid.selectionModel().selectedIndexes()})
        if not rows and self.grid.currentIndex().isValid():
            rows = [self.grid.currentIndex().row()]
        return [self.model.item(r).path for r in rows]

    def copy_paths(self) -> None:
        paths = self.selected_paths()
        if paths:
            QGuiApplication.clipboard().setText("\n".join(str(p) for p in paths))

    def _open_path(self, path: Path) -> None:
        if not self.ctx.open_url(QUrl.fromLocalFile(str(path))):
            self.show_error(f"No application could open {path}.")

    def _show_in_folder(self, path: Path) -> None:
        if not show_in_file_manager(Path(path), self.ctx.open_url):
            self.show_error(f"Could not open the folder {Path(path).parent}.")

    # -- messages and status ----------------------------------------------------------------

    def show_error(self, text: str) -> None:
        self.message.show_message(text, "error")

    def show_info(self, text: str) -> None:
        self.message.show_message(text, "info")

    def _link(self, href: str) -> None:
        if href == "model":
            self.model_button.showMenu()
        elif href == "skipped":
            self.show_skipped()

    def show_skipped(self) -> None:
        dialog = QDialog(self)
        dialog.setWindowTitle("Skipped files")
        text = QPlainTextEdit(readOnly=True)
        lines = [f"{path}: {reason}" for path, reason in self.skipped]
        text.setPlainText("\n".join(lines) or "No file was skipped.")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(dialog.reject)
        layout = QVBoxLayout(dialog)
        layout.addWidget(QLabel(self._skipped_text()))
        layout.addWidget(text)
        layout.addWidget(buttons)
        dialog.resize(640, 400)
        dialog.open()

    def about_text(self) -> str:
        """Versions of the app, its main libraries and the model in use."""
        from importlib.metadata import PackageNotFoundError, version

        def v(name: str) -> str:
            try:
                return version(name)
            except PackageNotFoundError:
                return "not installed"

        from PySide6 import __version__ as pyside

        return (
            f"<b>visualsearch {__version__}</b><br>Search, browse and sort images by what they "
            "show. Images are read, never changed; nothing leaves this computer.<br><br>"
            f"Model: {self._encoder_id or self.model_choice.label()}<br>"
            f"torch {v('torch')} · open_clip {v('open_clip_torch')} · onnxruntime "
            f"{v('onnxruntime')} · PySide6 {pyside} · umap-learn {v('umap-learn')}<br>"
            f"Data: {self.ctx.paths.data_dir}<br>Cache: {self.ctx.paths.cache_dir}"
        )

    def show_about(self) -> None:
        box = QMessageBox(
            QMessageBox.Icon.NoIcon, "About visualsearch", self.about_text(), parent=self
        )
        box.setIconPixmap(app_icon().pixmap(96, 96))
        box.setTextFormat(Qt.TextFormat.RichText)
        box.open()

    def reset_settings(self) -> None:
        """Back to the defaults: built-in model, default thumbnails, no recent folders."""
        question = "Reset all settings to their defaults? Collections and their indexes stay."
        if not self.ctx.confirm(
            self, "Reset settings", question, "model, thumbnail size, recent folders"
        ):
            return
        self.settings = UserSettings()
        self.ctx.settings.save(self.settings)
        self._update_recent_menu()
        self.grid.set_icon_size(self.settings.thumbnail_size)
        self.model.set_icon_size(self.settings.thumbnail_size)
        if self.model_choice != ModelChoice(self.settings.model_spec):
            self.set_model(ModelChoice(self.settings.model_spec), fallback=False)
        self.show_info("Settings are back to their defaults.")

    def _update_summary(self) -> None:
        parts = [f"{len(self.records):,} images"]
        if self._encoder_id:
            parts.append(self._encoder_id)
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        self.summary.setText(" · ".join(parts) if self.target else "")

    def _update_recent_menu(self) -> None:
        self.recent_menu.clear()
        for folder in self.settings.recent_folders:
            self.recent_menu.addAction(folder, lambda f=folder: self.open_folder(f))
        self.recent_menu.setEnabled(bool(self.settings.recent_folders))
        self.welcome.set_recent(self.settings.recent_folders)

    def _zoom(self, step: int) -> None:
        sizes = THUMB_SIZES
        current = min(range(len(sizes)), key=lambda i: abs(sizes[i] - self.settings.thumbnail_size))
        size = sizes[max(0, min(len(sizes) - 1, current + step))]
        self.settings.thumbnail_size = size
        self.ctx.settings.save(self.settings)
        self.grid.set_icon_size(size)
        self.model.set_icon_size(size)

    # -- closing ----------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        for jobs in (self.index_jobs, self.map_jobs, self.export_jobs, self.download_jobs):
            jobs.cancel()
        for jobs in (self.index_jobs, self.map_jobs, self.export_jobs, self.download_jobs):
            jobs.wait(60_000)  # an index batch in flight is committed, not lost
        self._engine_shutdown.emit()
        self._engine_thread.quit()
        if not self._engine_thread.wait(10_000):  # e.g. still loading the text model
            outlive(self._engine_thread)
        self.pool.clear()
        self.pool.waitForDone(10_000)
        self.ctx.settings.save_geometry(self.saveGeometry(), self.splitter.saveState())
        self.ctx.settings.save(self.settings)
        super().closeEvent(event)
