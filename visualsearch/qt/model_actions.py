"""The main window's model choice: the built-in model, CLIP (downloaded on request, with
progress) or a CLIP checkpoint file; a model that cannot load falls back to the
previous one. A mixin of MainWindow."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from visualsearch.core.encoders.clip import DEFAULT_ARCH as CLIP_ARCH
from visualsearch.core.encoders.clip import DEFAULT_TAG as CLIP_TAG
from visualsearch.core.session import ModelChoice
from visualsearch.qt.workers import DownloadJob, JobThread

CLIP_DEFAULT = ModelChoice(f"clip:{CLIP_ARCH}:{CLIP_TAG}")
CLIP_DOWNLOAD_MB = 605  # ViT-B-32 laion2b_s34b_b79k, safetensors


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

    def choose_clip(self) -> None:
        """CLIP ViT-B-32: at once when its weights are cached, else offer to download them."""
        from visualsearch.core.encoders.clip import cached_weights

        if cached_weights(CLIP_ARCH, CLIP_TAG) is not None:
            self.set_model(CLIP_DEFAULT)
            return
        self._sync_model_actions()  # unchanged until the weights are here
        question = (
            f"The CLIP {CLIP_ARCH} weights are not on this computer. Download them "
            f"(about {CLIP_DOWNLOAD_MB} MB) now? The current model stays in use meanwhile."
        )
        details = f"{CLIP_ARCH} {CLIP_TAG}, from the Hugging Face hub into its cache."
        if not self.ctx.confirm(self, "Download CLIP", question, details):
            return
        if self._download_thread is not None and self._download_thread.running():
            return
        job = DownloadJob(CLIP_ARCH, CLIP_TAG)
        job.progress.connect(self.indexing.update_progress)
        job.finished.connect(self._on_downloaded)
        job.failed.connect(self._on_download_failed)
        job.done.connect(self._on_download_done)
        self.indexing.start("Downloading", unit="MB")
        self._download_thread = JobThread(job)
        self._download_thread.start()

    def _on_downloaded(self, _path: object) -> None:
        self.indexing.finish()
        self.show_info(f"CLIP {CLIP_ARCH} is downloaded; re-indexing with it in the background.")
        self.set_model(CLIP_DEFAULT)

    def _on_download_failed(self, message: str) -> None:
        self.indexing.finish()
        reason = message or "cancelled"
        self.show_error(
            f"CLIP could not be downloaded: {reason} Still using the {self.model_choice.label()}."
        )
        self.download_failed.emit(reason)

    def _on_download_done(self) -> None:
        if self._download_thread is not None:
            self._download_thread.wait()
        self._download_thread = None

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
        self.clip_model_action.setChecked(c.spec != "builtin" and c.weights is None)
        self.checkpoint_action.setChecked(c.weights is not None)
        if hasattr(self, "model_button"):
            self.model_button.setText(c.label())
