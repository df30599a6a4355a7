"""A folder opened for work, the same way from the CLI and the window: where its store
lives, which model it uses, and an indexing run that records what it did."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from visualsearch.core.calibration import calibration
from visualsearch.core.encoders import default_model_spec
from visualsearch.core.indexing import IndexOptions, IndexReport, RemoteEncoding, index_folder
from visualsearch.core.progress import Progress
from visualsearch.core.store import FileRecord, Store, default_store_dir

log = logging.getLogger(__name__)


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


def open_store(
    folder: Path, data_dir: Path, store_dir: Path | None = None, create: bool = True
) -> Store:
    """The store of `folder`: `store_dir`, or its default place under the user data dir.
    With `create=False` a folder never indexed raises StoreMissing and nothing is made."""
    return Store(store_dir or default_store_dir(folder, data_dir), root=folder, create=create)


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
    cache_dir: Path | None = None,
    remote: RemoteEncoding | None = None,
) -> IndexReport:
    """`index_folder`, then remember the model and the scan's problems in the store.
    With `cache_dir`, a run that encoded images also measures the model's scale once
    (core/calibration.py: its reference photos, 0.85 s with the built-in model, and
    CLIP's vocabulary), so that the first query does not wait for it. `remote`: read and
    encode the files elsewhere (a Ray cluster)."""
    report = index_folder(folder, store, encoder, progress, options, on_commit, remote)
    if cache_dir is not None and report.encoded and not report.cancelled:
        try:
            calibration(encoder, cache_dir)
        except Exception as exc:  # a cache: the first query makes it again
            log.warning("the model's reference photos were not encoded: %s", exc)
    store.set_meta("model_spec", model.spec)
    store.set_meta("model_weights", str(model.weights) if model.weights else "")
    if options is None or options.only is None:  # a run over some paths saw only theirs
        store.set_meta("scan_problems", json.dumps(report.problems))
    return report


def scan_problems(store: Store) -> list[tuple[str, str]]:
    return [tuple(p) for p in json.loads(store.get_meta("scan_problems") or "[]")]


# Folders whose indexing reads the whole system or its programs' files, not a collection
_SYSTEM_FOLDERS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/lib",
        "/lib64",
        "/opt",
        "/proc",
        "/run",
        "/sbin",
        "/sys",
        "/usr",
        "/var",
        "/home",
        "/Users",
        "/System",
        "/Library",
        "/Applications",
    }
)


def system_folder_warning(folder: Path) -> str:
    """A warning when `folder` is a system root rather than a folder of one's images."""
    real = os.path.realpath(folder)
    anchor = Path(real).anchor
    if real in _SYSTEM_FOLDERS or real == anchor.rstrip("\\/") or real == anchor:
        return (
            f"{real} is a system folder: indexing it reads every image file on this computer, "
            "program icons included, and may take hours. Choose the folder of your pictures "
            "instead; Ctrl+C stops, and what was indexed is kept."
        )
    return ""
