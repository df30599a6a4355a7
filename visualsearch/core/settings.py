"""Where visualsearch keeps its data, and user settings (typed; Qt only adapts them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class AppPaths:
    data_dir: Path  # collections' stores, the sample collection
    cache_dir: Path  # exported models, prompt vectors

    @classmethod
    def default(cls) -> AppPaths:
        from platformdirs import user_cache_path, user_data_path

        return cls(user_data_path("visualsearch"), user_cache_path("visualsearch"))

    @property
    def sample_dir(self) -> Path:
        return self.data_dir / "sample-collection"


MAX_RECENT = 10


@dataclass
class UserSettings:
    """What the window remembers between runs. QSettings is only where it is kept."""

    model_spec: str = "builtin"
    model_weights: str = ""  # a CLIP checkpoint file, when the user chose one
    recent_folders: list[str] = field(default_factory=list)  # most recent first
    reopen_last: bool = True
    thumbnail_size: int = 160  # pixels on screen; the store keeps 256 px thumbnails
    tag_words: list[str] = field(default_factory=list)  # own candidate tags (CLIP models)
    store_root: str = ""  # where collections' stores go; "" = the user data folder
    sort_key: str = "folder"  # all images' order (core.sorting.SORT_KEYS); results: relevance
    sort_descending: bool = False
    fast_clip: bool = False  # CLIP's image model on OpenVINO bf16 (opt-in, experimental)

    def add_recent(self, folder: Path) -> None:
        path = str(folder)
        self.recent_folders = [path] + [f for f in self.recent_folders if f != path]
        del self.recent_folders[MAX_RECENT:]
