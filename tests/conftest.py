"""Shared fixtures: isolated user folders, real photos, the real built-in model."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# Before anything reads them: keep tests away from the user's real folders and
# make sure no Hugging Face cache (CLIP weights) can leak in from this machine.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="visualsearch-tests-"))
os.environ["XDG_DATA_HOME"] = str(_SESSION_HOME / "data")
os.environ["XDG_CACHE_HOME"] = str(_SESSION_HOME / "cache")
os.environ["XDG_CONFIG_HOME"] = str(_SESSION_HOME / "config")
os.environ["HF_HOME"] = str(_SESSION_HOME / "hf")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# and away from the user's desktop session (file manager hand-offs go through D-Bus)
os.environ["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={_SESSION_HOME}/no-bus"

import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from visualsearch.core.sample import VARIANTS, imagenet_photos, skimage_photos  # noqa: E402
from visualsearch.core.settings import AppPaths  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def app_paths() -> AppPaths:
    return AppPaths(
        _SESSION_HOME / "data" / "visualsearch", _SESSION_HOME / "cache" / "visualsearch"
    )


@pytest.fixture(scope="session")
def builtin_encoder(app_paths):
    from visualsearch.core.encoders.builtin import BuiltinEncoder

    return BuiltinEncoder(cache_dir=app_paths.cache_dir)


@pytest.fixture(scope="session")
def photos_dir(tmp_path_factory) -> Path:
    """Real photos only: skimage's and foolbox's labelled ImageNet ones."""
    d = tmp_path_factory.mktemp("photos")
    sources = skimage_photos() + imagenet_photos()
    assert len(sources) >= 30, "scikit-image and foolbox photos are needed for the tests"
    for p in sources:
        shutil.copy2(p, d / p.name)
    return d


def near_duplicate(img: Image.Image) -> Image.Image:
    """Cropped by 10 %, resized to 70 %, JPEG-compressed at quality 40."""
    import io

    w, h = img.size
    crop = img.convert("RGB").crop((w // 20, h // 20, w - w // 20, h - h // 20))
    small = crop.resize((max(1, crop.width * 7 // 10), max(1, crop.height * 7 // 10)))
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=40)
    buf.seek(0)
    return Image.open(buf)


@pytest.fixture(scope="session")
def photos_with_copies_dir(tmp_path_factory) -> Path:
    """The photos plus, for each, a near-duplicate copy under copies/ and a few variants."""
    d = tmp_path_factory.mktemp("photos_copies")
    (d / "copies").mkdir()
    for p in skimage_photos() + imagenet_photos():
        shutil.copy2(p, d / p.name)
        with Image.open(p) as img:
            near_duplicate(img).save(d / "copies" / f"{p.stem}-copy.jpg")
    with Image.open(next(p for p in skimage_photos() if p.stem == "chelsea")) as img:
        for name, make in VARIANTS.items():
            (d / "copies" / f"chelsea-{name}.jpg").write_bytes(make(img.convert("RGB")))
    return d


def distinct_images(dest: Path, n: int, size: int = 320) -> list[Path]:
    """`n` different real-photo crops (different content, so no vector is shared)."""
    dest.mkdir(parents=True, exist_ok=True)
    sources = [Image.open(p).convert("RGB") for p in skimage_photos()[:8]]
    out = []
    for i in range(n):
        src = sources[i % len(sources)]
        step = i // len(sources)
        box = (step * 7 % 60, step * 11 % 60, src.width - step * 5 % 60, src.height - step * 3 % 60)
        path = dest / f"img_{i:03d}.jpg"
        src.crop(box).resize((size, size)).save(path, quality=90)
        out.append(path)
    return out


@pytest.fixture
def tmpfs_disks(tmp_path):
    """Mounts a tmpfs of the size asked for (`tmpfs_disks("2m")`): another filesystem,
    and a real disk that fills up; each is unmounted afterwards. Skips where it cannot
    mount (not root)."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        try:
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", where],
                check=True,
                capture_output=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            pytest.skip(f"cannot mount a tmpfs here: {exc}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", where], check=True)


@pytest.fixture
def small_disk(tmpfs_disks):
    """A 1 MB tmpfs: a real disk that fills up."""
    return tmpfs_disks("1m")


def fill_disk(disk: Path) -> None:
    """Write to `disk` until it has no space left."""
    with open(disk / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
        while f.write(b"x" * 4096):
            pass
