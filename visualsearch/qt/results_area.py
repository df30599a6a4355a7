"""The Images tab's widgets: the folder filter beside the grid; above it the query
header (what is shown, the query image, minimum similarity, sort order, Show more,
Show all images); the viewer in the grid's place while an image is open large.
Display only: the ResultsController decides what they show."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from visualsearch.qt.folder_filter import FolderFilter
from visualsearch.qt.grid_view import ThumbnailGrid
from visualsearch.qt.image_list_model import ImageListModel
from visualsearch.qt.sort_bar import SortBar
from visualsearch.qt.viewer import ImageViewer

QUERY_THUMB = QSize(56, 56)


class ResultsArea(QWidget):
    def __init__(
        self, model: ImageListModel, icon_size: int, viewer: ImageViewer, parent=None
    ) -> None:
        super().__init__(parent)
        self.model = model
        self.viewer = viewer
        self.folders = FolderFilter()
        self.sort_bar = SortBar()
        self.grid = ThumbnailGrid(icon_size)
        self.grid.setModel(model)

        self.query_label = QLabel()
        self.query_label.setTextFormat(Qt.TextFormat.RichText)
        self.query_label.setWordWrap(True)
        self.all_button = QToolButton(text="Show all images")
        self.all_button.setToolTip("Clear the query (Esc)")
        self.query_image = QLabel()  # the query image, for "images like this one"
        self.query_image.setFixedSize(QUERY_THUMB.width() + 4, QUERY_THUMB.height() + 4)
        self.query_image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.query_image.hide()
        self.min_score_box = QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.05, decimals=2)
        self.min_score_box.setSpecialValueText("off")
        self.min_score_box.setToolTip(
            "Minimum match: weaker matches are left out, so a search can honestly find "
            "nothing (off = show every image, best first).\nA match is the measured chance "
            "that an image shows what was asked: 0.5 = as likely as not. It means the same "
            "for every model, for words and for images like one."
        )
        self.more_button = QToolButton(text="Show more")
        self.more_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        menu = QMenu(self.more_button)
        self.every_match_action = menu.addAction("Show all")
        self.more_button.setMenu(menu)
        self.more_button.hide()

        # two rows: the header's text gets the whole width (one row left it ~175 px at
        # 1280 px, and the built-in model's hint wrapped into 8 lines)
        header = QHBoxLayout()
        header.setContentsMargins(4, 2, 4, 0)
        header.addWidget(self.query_image)
        header.addWidget(self.query_label, 1)
        header.addWidget(self.more_button)
        header.addWidget(self.all_button)
        controls = QHBoxLayout()
        controls.setContentsMargins(4, 0, 4, 2)
        controls.addWidget(self.sort_bar)
        controls.addSpacing(16)
        controls.addWidget(QLabel("Min. match:"))
        controls.addWidget(self.min_score_box)
        controls.addStretch(1)
        self.header = header
        grid_page = QWidget()
        grid_layout = QVBoxLayout(grid_page)
        grid_layout.setContentsMargins(0, 0, 0, 0)
        grid_layout.setSpacing(2)
        grid_layout.addLayout(header)
        grid_layout.addLayout(controls)
        grid_layout.addWidget(self.grid, 1)
        self.pages = QStackedWidget()
        self.pages.addWidget(grid_page)
        self.pages.addWidget(viewer)
        self.splitter = QSplitter()
        self.splitter.addWidget(self.folders)
        self.splitter.addWidget(self.pages)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([170, 800])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)

    def show_viewer(self, on: bool) -> None:
        """The viewer in the grid's place; the folder tree makes room for it meanwhile."""
        self.folders.setVisible(not on)
        self.pages.setCurrentIndex(1 if on else 0)
        (self.viewer if on else self.grid).setFocus()

    def viewing(self) -> bool:
        return self.pages.currentIndex() == 1
