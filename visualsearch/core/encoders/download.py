"""Downloading CLIP weights into the Hugging Face cache, with progress and cancel.

Checks the network first and fails within seconds when there is none — never a
retry loop, never random weights. The check and the download use huggingface_hub's
own HTTP client and settings, so `HF_ENDPOINT` (a mirror), the proxy variables and
`HF_HUB_OFFLINE` mean the same to both."""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlsplit

from visualsearch.core.encoders.base import ModelUnavailable
from visualsearch.core.progress import NullProgress, Progress

CONNECT_TIMEOUT_S = 3.0
ANSWER_TIMEOUT_S = 5.0


def weights_source(arch: str, tag: str) -> tuple[str, tuple[str, ...]]:
    """(Hub repository, weight files to try, best first) of a pretrained open_clip tag."""
    from visualsearch.core.encoders.clip import hub_files

    repo, files = hub_files(arch, tag)
    if not repo:
        raise ModelUnavailable(f"{arch} {tag} has no downloadable weights; use a checkpoint file")
    return repo, files


def hub_endpoint() -> str:
    """The hub (or the mirror HF_ENDPOINT names) that the check and the download ask."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def check_network(timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise ModelUnavailable at once when the hub cannot be reached (or offline mode is on).

    Any HTTP answer below 500 from the endpoint (through the configured proxy, if
    any) counts as reachable: that is all a download needs to start."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if constants.is_offline_mode():
        raise ModelUnavailable("downloads are switched off (HF_HUB_OFFLINE is set)")
    endpoint = hub_endpoint()
    host = urlsplit(endpoint).netloc or endpoint
    advice = "Connect and try again, or load a checkpoint file you have."
    limits = httpx2.Timeout(ANSWER_TIMEOUT_S, connect=timeout)
    try:
        response = get_session().head(endpoint, timeout=limits, follow_redirects=False)
    except httpx2.HTTPError as exc:
        raise ModelUnavailable(
            f"no network: {host} cannot be reached ({exc.__class__.__name__}). {advice}"
        ) from exc
    if response.status_code >= 500:
        raise ModelUnavailable(f"no network: {host} answered HTTP {response.status_code}. {advice}")


class _Cancelled(Exception):
    pass


def _progress_bar(progress: Progress):
    """A tqdm class (huggingface_hub reports through one) that reports to `progress`."""
    from tqdm.auto import tqdm

    class ProgressBar(tqdm):
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

    return ProgressBar


def download_clip_weights(arch: str, tag: str, progress: Progress | None = None) -> Path:
    """Fetch the weights into the Hugging Face cache; report bytes as done/total.

    Like open_clip, takes the safetensors file and falls back to the pickled one
    when the repository has no safetensors file."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    repo, files = weights_source(arch, tag)
    check_network()
    bar = _progress_bar(progress or NullProgress())
    endpoint = hub_endpoint()  # the one the check reached
    for filename in files:
        try:
            path = hf_hub_download(
                repo, filename, tqdm_class=bar, etag_timeout=5, endpoint=endpoint
            )
            return Path(path)
        except _Cancelled as exc:
            raise InterruptedError("download cancelled") from exc
        except EntryNotFoundError:
            continue  # not in this repository: try the next file
        except Exception as exc:  # the hub's own errors: say what failed, keep the current model
            raise ModelUnavailable(f"the download of {arch} {tag} failed: {exc}") from exc
    raise ModelUnavailable(
        f"the download of {arch} {tag} failed: {repo} has none of {', '.join(files)}"
    )
