"""A folder opened for work, the same way from the CLI and the window: where its store
lives, which model it uses, and an indexing run that records what it did."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from visualsearch.core.encoders import default_model_spec
from visualsearch.core.pipeline import IndexOptions, IndexReport, index_folder
from visualsearch.core.progress import Progress
from visualsearch.core.store import FileRecord, Store, default_store_dir


@dataclass(frozen=True)
class ModelChoice:
    """A model spec ('builtin', 'clip:ViT-B-32:openai') and, for CLIP, a checkpoint file."""

    spec: str
    weights: Path | None = None

    def label(self) -> str:
        if self.spec == "builtin":
            return "Built-in model (offline)"
        arch = self.spec.split(":")[1] if ":" in self.spec else "ViT-B-32"
        return f"CLIP {arch}" + (f" ({self.weights.name})" if self.weights else "")


def open_store(folder: Path, data_dir: Path, store_dir: Path | None = None) -> Store:
    """The store of `folder`: `store_dir`, or its default place under the user data dir."""
    return Store(store_dir or default_store_dir(folder, data_dir), root=folder)


def remembered_model(store: Store) -> ModelChoice:
    """What the collection was last indexed with, else CLIP if downloaded, else builtin."""
    spec = store.get_meta("model_spec")
    if spec:
        weights = store.get_meta("model_weights")
        return ModelChoice(spec, Path(weights) if weights else None)
    return ModelChoice(default_model_spec())


def index_and_record(
    folder: Path,
    store: Store,
    encoder,
    model: ModelChoice,
    progress: Progress | None = None,
    options: IndexOptions | None = None,
    on_commit: Callable[[list[FileRecord]], None] | None = None,
) -> IndexReport:
    """`index_folder`, then remember the model and the scan's problems in the store."""
    report = index_folder(folder, store, encoder, progress, options, on_commit=on_commit)
    store.set_meta("model_spec", model.spec)
    store.set_meta("model_weights", str(model.weights) if model.weights else "")
    store.set_meta("scan_problems", json.dumps(report.problems))
    return report


def scan_problems(store: Store) -> list[tuple[str, str]]:
    return [tuple(p) for p in json.loads(store.get_meta("scan_problems") or "[]")]
