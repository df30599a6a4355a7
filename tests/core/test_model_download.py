"""Getting CLIP weights: the network check and the download honour the user's hub
settings (HF_ENDPOINT, proxies, HF_HUB_OFFLINE), and the pickled weights file is
taken when a repository has no safetensors file.

Everything is served from 127.0.0.1: a stand-in hub (or mirror, or proxy) runs in a
thread. Settings that huggingface_hub reads once at import are given to a fresh
Python process, as a user's environment would be."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ARCH, TAG = "ViT-B-32", "laion2b_s34b_b79k"
REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# where nothing listens: a mirror that is down
CLOSED_PORT_URL = "http://127.0.0.1:9"


@dataclass
class FakeHub:
    """What a hub, a mirror or a proxy in front of one answers, and what it was asked."""

    files: dict[str, bytes] = field(default_factory=dict)  # "repo/file" → content
    requests: list[str] = field(default_factory=list)
    url: str = ""


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the test output clean
            pass

        def do_CONNECT(self) -> None:  # an HTTPS proxy asked for a tunnel: refuse it
            hub.requests.append(f"CONNECT {self.path}")
            self.send_response(502)
            self.end_headers()

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def do_GET(self) -> None:
            self._answer(with_body=True)

        def _answer(self, with_body: bool) -> None:
            hub.requests.append(f"{self.command} {self.path}")
            repo, sep, rest = self.path.lstrip("/").partition("/resolve/")
            if not sep:  # the front page, directly or through a proxy
                self._send(200, b"hub", {}, with_body)
                return
            content = hub.files.get(f"{repo}/{rest.partition('/')[2]}")
            if content is None:
                self._send(404, b"not found", {"X-Error-Code": "EntryNotFound"}, with_body)
                return
            headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha1(content).hexdigest()}"'}
            self._send(200, content, headers, with_body)

        def _send(self, status: int, body: bytes, headers: dict, with_body: bool) -> None:
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            if with_body:
                self.wfile.write(body)

    return Handler


@contextmanager
def _serving(state: FakeHub) -> Iterator[FakeHub]:
    """`state` answered by a server on 127.0.0.1, in a thread, while the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with _serving(FakeHub()) as state:
        yield state


def _user_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """A user's environment: none of the test session's hub or proxy settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("HF_", "TRANSFORMERS_")) and "PROXY" not in k.upper()
    }
    return {**env, "HF_HOME": str(tmp_path / "hf"), **settings}


def _run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )


CHECK = """
from visualsearch.core.encoders.base import ModelUnavailable
from visualsearch.core.encoders.download import check_network
try:
    check_network()
    print("reachable")
except ModelUnavailable as exc:
    print("refused:", exc)
"""

# The repro of the bug: the built-in text model loaded first (one text search), then
# Model ▸ CLIP ▸ Yes. Logging as the window sets it up.
TEXT_THEN_CHECK = (
    """
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
from visualsearch.core.encoders.builtin import BuiltinEncoder
encoder = BuiltinEncoder(cache_dir=sys.argv[1], use_onnx=False)
assert encoder.embed_text(["a photo of a cat"]).shape == (1, encoder.dim)
logging.getLogger("visualsearch.test").warning("our own warning")
"""
    + CHECK
)


def _text_then_check(app_paths, env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", TEXT_THEN_CHECK, str(app_paths.cache_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def after_text_search(app_paths, tmp_path_factory):
    """A process that ran a text search, then checked the network against a local hub."""
    tmp_path = tmp_path_factory.mktemp("text-then-check")
    with _serving(FakeHub()) as hub:
        yield _text_then_check(app_paths, _user_env(tmp_path, HF_ENDPOINT=hub.url))


def test_the_text_model_does_not_switch_downloads_off(after_text_search):
    assert after_text_search.returncode == 0, after_text_search.stderr
    assert after_text_search.stdout.strip().endswith("reachable"), after_text_search.stdout


def test_loading_the_text_model_prints_no_info_lines(after_text_search):
    assert after_text_search.returncode == 0, after_text_search.stderr
    assert "INFO sentence_transformers" not in after_text_search.stderr
    assert "WARNING visualsearch.test: our own warning" in after_text_search.stderr


def test_the_users_offline_setting_is_still_honoured(app_paths, tmp_path, hub):
    env = _user_env(tmp_path, HF_HUB_OFFLINE="1", HF_ENDPOINT=hub.url)
    done = _text_then_check(app_paths, env)
    assert done.returncode == 0, done.stderr
    assert "refused: downloads are switched off (HF_HUB_OFFLINE is set)" in done.stdout
    assert hub.requests == []  # nothing dialled


def test_the_check_asks_the_mirror_in_hf_endpoint(tmp_path, hub):
    done = _run(CHECK, _user_env(tmp_path, HF_ENDPOINT=hub.url))
    assert done.stdout.strip() == "reachable", done.stdout + done.stderr
    assert hub.requests == ["HEAD /"]

    down = _run(CHECK, _user_env(tmp_path, HF_ENDPOINT=CLOSED_PORT_URL))
    assert down.stdout.startswith("refused: no network: 127.0.0.1:9 cannot be reached")


def test_the_check_goes_through_the_proxy(tmp_path, hub):
    # a mirror only the proxy can resolve: reachable through it, never dialled directly
    done = _run(CHECK, _user_env(tmp_path, HF_ENDPOINT="http://hub.invalid", HTTP_PROXY=hub.url))
    assert done.stdout.strip() == "reachable", done.stdout + done.stderr
    assert hub.requests == ["HEAD http://hub.invalid/"]

    # HTTPS to the hub: a tunnel is asked of the proxy (this one refuses it)
    refused = _run(
        CHECK, _user_env(tmp_path, HF_ENDPOINT="https://hub.invalid", HTTPS_PROXY=hub.url)
    )
    assert hub.requests[-1] == "CONNECT hub.invalid:443"
    assert refused.stdout.startswith("refused: no network: hub.invalid cannot be reached")


@pytest.fixture
def online_hub(hub, tmp_path, monkeypatch) -> FakeHub:
    """This process's huggingface_hub pointed at the local hub, with its own cache."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # as read at import, unset
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    return hub


def test_a_repository_without_safetensors_gives_the_pickled_weights(online_hub):
    from visualsearch.core.encoders.clip import cached_weights
    from visualsearch.core.encoders.download import download_clip_weights
    from visualsearch.core.progress import NullProgress

    class Recorder(NullProgress):
        def __init__(self) -> None:
            self.reports: list[tuple[int, int]] = []

        def report(self, done: int, total: int, message: str = "") -> None:
            self.reports.append((done, total))

    assert cached_weights(ARCH, TAG) is None
    weights = b"pickled weights" * 1000
    online_hub.files[f"{REPO}/open_clip_pytorch_model.bin"] = weights
    progress = Recorder()
    path = download_clip_weights(ARCH, TAG, progress)
    assert path.name == "open_clip_pytorch_model.bin" and path.read_bytes() == weights
    assert progress.reports[-1] == (len(weights), len(weights))
    tried = [r.split("/")[-1] for r in online_hub.requests if r.startswith("HEAD /laion")]
    assert tried == ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    assert cached_weights(ARCH, TAG) == path  # and the cache lookup finds it


def test_the_safetensors_file_is_preferred(online_hub):
    from visualsearch.core.encoders.clip import cached_weights
    from visualsearch.core.encoders.download import download_clip_weights

    online_hub.files[f"{REPO}/open_clip_model.safetensors"] = b"safe"
    online_hub.files[f"{REPO}/open_clip_pytorch_model.bin"] = b"pickled"
    path = download_clip_weights(ARCH, TAG)
    assert path.name == "open_clip_model.safetensors"
    assert cached_weights(ARCH, TAG) == path


def test_a_repository_with_neither_file_fails_with_both_names(online_hub):
    from visualsearch.core.encoders.base import ModelUnavailable
    from visualsearch.core.encoders.download import download_clip_weights

    with pytest.raises(ModelUnavailable, match=r"has none of open_clip_model\.safetensors"):
        download_clip_weights(ARCH, TAG)
