"""The model choice: the built-in model, CLIP (downloaded on request, with progress) or
a CLIP checkpoint file. A model that cannot be used falls back to the previous one."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from visualsearch.core.encoders.catalog import CLIP_MODELS, ClipModel
from visualsearch.core.folder import ModelChoice
from visualsearch.qt.collection_controller import CollectionController
from visualsearch.qt.context import Confirm
from visualsearch.qt.widgets import JobStatus
from visualsearch.qt.workers import DownloadJob, JobSlot

CLIP_DEFAULT = ModelChoice(CLIP_MODELS[0].spec)


class ModelController(QObject):
    choice_changed = Signal(object)  # ModelChoice: save it, check the menu
    download_failed = Signal(str)
    message = Signal(str, str)  # text, "info" | "error"

    def __init__(
        self,
        choice: ModelChoice,
        collection: CollectionController,
        status: JobStatus,
        confirm: Confirm,
        dialog_parent: QWidget,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.choice = choice
        self.collection = collection
        self.status = status
        self.confirm = confirm
        self.dialog_parent = dialog_parent
        self.fallback: ModelChoice | None = None  # the model before a switch, until it works
        self.jobs = JobSlot(self)
        collection.model = choice
        collection.indexing_finished.connect(self._forget_fallback)
        collection.indexing_failed.connect(self._index_failed)

    def set_model(self, choice: ModelChoice, fallback: bool = True) -> None:
        if choice == self.choice:
            return
        self.fallback = self.choice if fallback else None
        self.choice = choice
        self.jobs.cancel()  # a CLIP download still running would switch to CLIP when done
        self.choice_changed.emit(choice)
        self.collection.set_model(choice)

    def choose_clip(self, clip: ClipModel = CLIP_MODELS[0]) -> None:
        """A CLIP model: at once when its weights are cached, else offer to download them."""
        from visualsearch.core.encoders.clip import cached_weights

        if cached_weights(clip.arch, clip.tag) is not None:
            self.set_model(ModelChoice(clip.spec))
            return
        self.choice_changed.emit(self.choice)  # the menu: unchanged until the weights are here
        question = (
            f"The CLIP {clip.arch} weights are not on this computer. Download them "
            f"(about {clip.download_mb:,} MB) now? The current model stays in use meanwhile."
        )
        details = f"{clip.arch} {clip.tag}, from the Hugging Face hub into its cache."
        if self.jobs.busy() or not self.confirm(
            self.dialog_parent, "Download CLIP", question, details
        ):
            return
        job = DownloadJob(clip.arch, clip.tag)
        job.progress.connect(self.status.update_progress)
        job.finished.connect(self._on_downloaded)
        job.failed.connect(self._on_download_failed)
        self.status.start("Downloading", unit="MB")
        self.jobs.start(job)

    def _on_downloaded(self, _path: object) -> None:
        self.status.finish()
        job = self.jobs.job  # still held: the slot lets go after this signal
        text = f"CLIP {job.arch} is downloaded; re-indexing with it in the background."
        self.message.emit(text, "info")
        self.set_model(ModelChoice(f"clip:{job.arch}:{job.tag}"))

    def _on_download_failed(self, message: str) -> None:
        self.status.finish()
        reason = message or "cancelled"
        self.message.emit(
            f"CLIP could not be downloaded: {reason} Still using the {self.choice.label()}.",
            "error",
        )
        self.download_failed.emit(reason)

    def choose_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.dialog_parent,
            "CLIP checkpoint (ViT-B-32)",
            str(Path.home()),
            "Checkpoints (*.pt *.pth *.bin *.safetensors)",
        )
        if path:
            self.set_model(ModelChoice(CLIP_DEFAULT.spec, Path(path)))
        else:
            self.choice_changed.emit(self.choice)

    def _forget_fallback(self, report) -> None:
        """The new model worked: a run with it ended. A cancelled run (the one cut short
        by the switch itself) proves nothing."""
        if not report.cancelled:
            self.fallback = None

    def _index_failed(self, message: str) -> None:
        """A run failed: with a new model, go back to the one that worked."""
        fallback, self.fallback = self.fallback, None
        if fallback is not None:
            message += f" Still using the {fallback.label()}."
            self.set_model(fallback, fallback=False)
        self.message.emit(message, "error")
