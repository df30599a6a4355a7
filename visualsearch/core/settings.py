"""Where visualsearch keeps its data, and user settings (typed; Qt only adapts them)."""

from __future__ import annotations

from dataclasses import dataclass
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
