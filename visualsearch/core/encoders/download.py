"""Downloading CLIP weights into the Hugging Face cache, with progress and cancel.

Checks the network first and fails within seconds when there is none — never a
retry loop, never random weights."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from visualsearch.core.encoders.base import ModelUnavailable
from visualsearch.core.progress import NullProgress, Progress

HUB_HOST = "huggingface.co"
CONNECT_TIMEOUT_S = 1.5
FILENAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def weights_source(arch: str, tag: str) -> tuple[str, str]:
    """(Hub repository, file name) of a pretrained open_clip tag."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag) or {}
    repo = cfg.get("hf_hub", "").strip("/")
    if not repo:
        raise ModelUnavailable(f"{arch} {tag} has no downloadable weights; use a checkpoint file")
    return repo, FILENAMES[0]


def check_network(host: str = HUB_HOST, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise ModelUnavailable at once when the hub cannot be reached (or offline mode is on)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ModelUnavailable("downloads are switched off (HF_HUB_OFFLINE is set)")
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            pass
    except OSError as exc:
        raise ModelUnavailable(
            f"no network: {host} cannot be reached ({exc.__class__.__name__}). "
            "Connect and try again, or load a checkpoint file you have."
        ) from exc


class _Cancelled(Exception):
    pass


def download_clip_weights(arch: str, tag: str, progress: Progress | None = None) -> Path:
    """Fetch the weights into the Hugging Face cache; report bytes as done/total."""
    progress = progress or NullProgress()
    repo, filename = weights_source(arch, tag)
    check_network()
    from huggingface_hub import hf_hub_download
    from tqdm.auto import tqdm

    class ProgressBar(tqdm):  # huggingface_hub reports through a tqdm class
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)
            self._started = time.monotonic()

        def display(self, *args, **kwargs):
            return True  # nothing on the console

        def update(self, n=1):
            super().update(n)
            if progress.cancelled():
                raise _Cancelled
            rate = self.n / max(time.monotonic() - self._started, 1e-6)
            progress.report(int(self.n), int(self.total or 0), f"{rate / 1e6:.1f} MB/s")

    try:
        path = hf_hub_download(repo, filename, tqdm_class=ProgressBar, etag_timeout=5)
    except _Cancelled as exc:
        raise InterruptedError("download cancelled") from exc
    except Exception as exc:  # the hub's own errors: say what failed, keep the current model
        raise ModelUnavailable(f"the download of {arch} {tag} failed: {exc}") from exc
    return Path(path)
