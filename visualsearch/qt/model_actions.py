"""The main window's model choice: the built-in model, CLIP (downloaded on request, with
progress) or a CLIP checkpoint file; a model that cannot load falls back to the
previous one. A mixin of MainWindow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from visualsearch.core.encoders.clip import DEFAULT_ARCH as CLIP_ARCH
from visualsearch.core.encoders.clip import DEFAULT_TAG as CLIP_TAG
from visualsearch.core.folder import ModelChoice
from visualsearch.qt.workers import DownloadJob


@dataclass(frozen=True)
class ClipModel:
    arch: str
    tag: str
    download_mb: int
    note: str

    @property
    def choice(self) -> ModelChoice:
        return ModelChoice(f"clip:{self.arch}:{self.tag}")


# open_clip's LAION-2B models; sizes of their safetensors files, speed relative to B-32
CLIP_MODELS = (
    ClipModel(CLIP_ARCH, CLIP_TAG, 605, "free-form text, fast"),
    ClipModel("ViT-B-16", "laion2b_s34b_b88k", 599, "finer detail, ~3x slower"),
    ClipModel("ViT-L-14", "laion2b_s32b_b82k", 1710, "best, ~12x slower"),
)
CLIP_DEFAULT = CLIP_MODELS[0].choice


class ModelActions:
    def set_model(self, choice: ModelChoice, fallback: bool = True) -> None:
        if choice == self.model_choice:
            return
        self._fallback_model = self.model_choice if fallback else None
        self.model_choice = choice
        self.settings.model_spec = choice.spec
        self.settings.model_weights = str(choice.weights or "")
        self.ctx.settings.save(self.settings)
        self._sync_model_actions()
        self.history.clear()
        if self.target is not None:
            self.open_folder(self.target.folder)  # vectors per model are kept: back is instant

    def choose_clip(self, clip: ClipModel = CLIP_MODELS[0]) -> None:
        """A CLIP model: at once when its weights are cached, else offer to download them."""
        from visualsearch.core.encoders.clip import cached_weights

        if cached_weights(clip.arch, clip.tag) is not None:
            self.set_model(clip.choice)
            return
        self._sync_model_actions()  # unchanged until the weights are here
        question = (
            f"The CLIP {clip.arch} weights are not on this computer. Download them "
            f"(about {clip.download_mb:,} MB) now? The current model stays in use meanwhile."
        )
        details = f"{clip.arch} {clip.tag}, from the Hugging Face hub into its cache."
        if self.download_jobs.busy() or not self.ctx.confirm(
            self, "Download CLIP", question, details
        ):
            return
        job = DownloadJob(clip.arch, clip.tag)
        job.progress.connect(self.indexing.update_progress)
        job.finished.connect(self._on_downloaded)
        job.failed.connect(self._on_download_failed)
        self.indexing.start("Downloading", unit="MB")
        self.download_jobs.start(job)

    def _on_downloaded(self, _path: object) -> None:
        self.indexing.finish()
        job = self.download_jobs.job  # still held: the slot lets go after this signal
        self.show_info(f"CLIP {job.arch} is downloaded; re-indexing with it in the background.")
        self.set_model(ModelChoice(f"clip:{job.arch}:{job.tag}"))

    def _on_download_failed(self, message: str) -> None:
        self.indexing.finish()
        reason = message or "cancelled"
        self.show_error(
            f"CLIP could not be downloaded: {reason} Still using the {self.model_choice.label()}."
        )
        self.download_failed.emit(reason)

    def choose_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "CLIP checkpoint (ViT-B-32)",
            str(Path.home()),
            "Checkpoints (*.pt *.pth *.bin *.safetensors)",
        )
        if path:
            self.set_model(ModelChoice(CLIP_DEFAULT.spec, Path(path)))
        else:
            self._sync_model_actions()

    def _sync_model_actions(self) -> None:
        c = self.model_choice
        self.builtin_model_action.setChecked(c.spec == "builtin")
        for action in self.clip_actions:
            action.setChecked(c.weights is None and action.data() == c.spec)
        self.checkpoint_action.setChecked(c.weights is not None)
        if hasattr(self, "model_button"):
            self.model_button.setText(c.label())
