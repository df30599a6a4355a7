"""The window's menu bar and toolbar: actions with their shortcuts, routed to the
window and its controllers. Shortcuts work wherever the focus is."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QToolButton

from visualsearch.core.encoders.catalog import CLIP_MODELS
from visualsearch.core.folder import ModelChoice
from visualsearch.qt.dialogs import WIDGET_KEYS, show_shortcuts

if TYPE_CHECKING:
    from visualsearch.qt.main_window import MainWindow

Key = QKeySequence.StandardKey


class Menus:
    def __init__(self, window: MainWindow) -> None:
        self.window = w = window
        r = w.results
        self.open_action = self._action("&Open Folder…", w.choose_folder, Key.Open, "Open a folder")
        self.sample_action = self._action("Try the &Sample Collection", w.open_sample)
        self.reindex_action = self._action(
            "&Re-index", w.collection.reindex, Key.Refresh, "Look for new or changed files"
        )
        self.skipped_action = self._action("S&kipped Files…", w.show_skipped)
        self.library_action = self._action(
            "&Library…", w.show_library, "Ctrl+L", "Folders and drives searched as one"
        )
        self.store_location_action = self._action("Store &Location…", w.choose_store_root)
        self.quit_action = self._action("&Quit", w.close, Key.Quit)
        self.back_action = self._action("&Back", r.go_back, "Alt+Left", "Previous query")
        self.forward_action = self._action("&Forward", r.go_forward, "Alt+Right", "Next query")
        self.all_action = self._action("&All Images", r.show_all, "Esc", "Clear the query")
        self.similar_action = self._action("Find &Similar", w.files.similar_to_current)
        self.outliers_action = self._action(
            "&Odd Ones Out", w.cleanup.show_outliers, None, "Images least like any other image"
        )
        self.search_action = self._action("&Search…", self.focus_search, Key.Find)
        self.paste_action = self._action("&Paste Image as Query", w.files.paste, Key.Paste)
        self.copy_path_action = self._action("&Copy Path", w.files.copy_paths, "Ctrl+Shift+C")
        self.bigger_action = self._action("&Larger Thumbnails", lambda: w.zoom(+1), Key.ZoomIn)
        self.smaller_action = self._action("S&maller Thumbnails", lambda: w.zoom(-1), Key.ZoomOut)
        self.reset_action = self._action("Reset &Settings…", w.reset_settings)
        self.shortcuts_action = self._action("&Keyboard Shortcuts", self.show_shortcuts, "F1")
        self.about_action = self._action("&About visualsearch", w.show_about)

        bar = w.menuBar()
        self.menus = {
            "&File": [
                self.open_action,
                "recent",
                self.sample_action,
                self.library_action,
                None,
                self.reindex_action,
                self.skipped_action,
                self.store_location_action,
                None,
                self.quit_action,
            ],
            "&Edit": [self.paste_action, self.copy_path_action, None, self.reset_action],
            "&Go": [
                self.back_action,
                self.forward_action,
                self.all_action,
                self.similar_action,
                self.search_action,
                self.outliers_action,
            ],
            "&View": [self.bigger_action, self.smaller_action],
        }
        for title, entries in self.menus.items():
            menu = bar.addMenu(title)
            for entry in entries:
                if entry == "recent":
                    self.recent_menu = menu.addMenu("Open &Recent")
                elif entry is None:
                    menu.addSeparator()
                else:
                    menu.addAction(entry)
        self._build_model_menu()
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)
        help_menu.addAction(self.about_action)

        tools = w.addToolBar("Main")
        tools.setObjectName("main-toolbar")
        tools.setMovable(False)
        tools.addAction(self.open_action)
        tools.addAction(self.back_action)
        tools.addAction(self.forward_action)
        tools.addWidget(w.search_box)
        self.model_button = QToolButton()
        self.model_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.model_button.setMenu(self.model_menu)
        self.model_button.setToolTip("The model that turns images and text into vectors")
        tools.addWidget(self.model_button)
        self.update_nav()
        self.update_recent()

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self.window)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        self.window.addAction(action)  # shortcuts work wherever the focus is
        return action

    def _build_model_menu(self) -> None:
        models = self.window.models
        self.model_menu = self.window.menuBar().addMenu("&Model")
        group = QActionGroup(self.window)
        self.builtin_model_action = QAction(
            "&Built-in model (offline, ImageNet categories)", self.window, checkable=True
        )
        self.builtin_model_action.triggered.connect(
            lambda: models.set_model(ModelChoice("builtin"))
        )
        self.clip_actions = []
        for clip in CLIP_MODELS:
            action = QAction(f"CLIP {clip.arch} ({clip.note})", self.window, checkable=True)
            action.setData(clip.spec)
            action.triggered.connect(lambda _=False, c=clip: models.choose_clip(c))
            self.clip_actions.append(action)
        self.clip_model_action = self.clip_actions[0]
        self.checkpoint_action = QAction(
            "CLIP from a &checkpoint file…", self.window, checkable=True
        )
        self.checkpoint_action.triggered.connect(models.choose_checkpoint)
        for a in (self.builtin_model_action, *self.clip_actions, self.checkpoint_action):
            group.addAction(a)
            self.model_menu.addAction(a)
        self.model_menu.addSeparator()
        self.fast_clip_action = QAction(
            "&Faster CLIP on this computer (experimental)", self.window, checkable=True
        )
        self.fast_clip_action.setStatusTip(
            "Runs CLIP's image model with OpenVINO in bfloat16 where the processor computes "
            "it natively: about 3.5× faster here, not yet checked on real CLIP weights"
        )
        self.fast_clip_action.setChecked(self.window.settings.fast_clip)
        self.fast_clip_action.toggled.connect(self.window.set_fast_clip)
        self.model_menu.addAction(self.fast_clip_action)

    def sync_model(self, choice: ModelChoice) -> None:
        self.builtin_model_action.setChecked(choice.spec == "builtin")
        for action in self.clip_actions:
            action.setChecked(choice.weights is None and action.data() == choice.spec)
        self.checkpoint_action.setChecked(choice.weights is not None)
        if hasattr(self, "model_button"):
            self.model_button.setText(choice.label())

    def update_nav(self) -> None:
        history = self.window.results.history
        self.back_action.setEnabled(history.can_go_back())
        self.forward_action.setEnabled(history.can_go_forward())

    def update_recent(self) -> None:
        self.recent_menu.clear()
        folders = self.window.settings.recent_folders
        for folder in folders:
            self.recent_menu.addAction(folder, lambda f=folder: self.window.open_folder(f))
        self.recent_menu.setEnabled(bool(folders))

    def focus_search(self) -> None:
        box = self.window.search_box
        box.setFocus()
        box.selectAll()

    def shortcut_rows(self) -> list[tuple[str, str, str]]:
        """(where, keys, what) for every action with a shortcut, then the widgets' keys."""
        rows = []
        for title, entries in self.menus.items():
            for action in entries:
                if isinstance(action, QAction) and not action.shortcut().isEmpty():
                    keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
                    rows.append((title.replace("&", ""), keys, action.text().replace("&", "")))
        rows.append(("Help", "F1", "Keyboard Shortcuts"))
        return rows + list(WIDGET_KEYS)

    def show_shortcuts(self):
        return show_shortcuts(self.window, self.shortcut_rows())
