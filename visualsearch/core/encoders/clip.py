"""open_clip models: weights from the Hugging Face cache or a local checkpoint file.

Nothing here downloads: with no cached weights and no checkpoint the constructor
fails at once with a message saying how to get them (never random weights).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from visualsearch.core.encoders.base import ModelUnavailable, default_threads, l2_normalize
from visualsearch.core.encoders.devices import (
    autocast,
    batch_size,
    half_precision,
    resolve_device,
    torch_forward,
)
from visualsearch.core.encoders.jpeg_on_device import JpegOnDevice, decoder_for

DEFAULT_ARCH = "ViT-B-32"
DEFAULT_TAG = "laion2b_s34b_b79k"


def _checkpoint_digest(path: Path) -> str:
    """Cheap identity of a (large) checkpoint: size plus its first and last MiB."""
    h = hashlib.blake2b(digest_size=8)
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        if size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read())
    return h.hexdigest()


def hub_files(arch: str, tag: str) -> tuple[str, tuple[str, ...]]:
    """(Hub repository, weight files, best first) of a pretrained tag, as open_clip reads
    them: the safetensors file before the pickled one it stands for. ("", ()) if none."""
    import open_clip
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    hub = (open_clip.get_pretrained_cfg(arch, tag) or {}).get("hf_hub", "")
    if not hub:
        return "", ()
    # "org/name/" means the default file, "org/name/file.bin" that file
    repo, filename = os.path.split(hub)
    filename = filename or HF_WEIGHTS_NAME
    if filename == HF_WEIGHTS_NAME:
        return repo, (HF_SAFE_WEIGHTS_NAME, filename)
    if filename.endswith((".bin", ".pth")):
        return repo, (filename[:-4] + ".safetensors", filename)
    return repo, (filename,)


def cached_weights(arch: str, tag: str) -> Path | None:
    """The cached weights file for a pretrained tag, or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    repo, files = hub_files(arch, tag)
    for filename in files:
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str) and os.path.exists(found):
            return Path(found)
    return None


class ClipEncoder:
    """An open_clip model on a GPU where there is one (`device`), else the CPU."""

    # A common choice for CLIP image embeddings; not measured here (no real weights
    # offline), so duplicate finding with CLIP shows its threshold for the user to move.
    near_duplicate_threshold = 0.90
    classifier = None  # tags come from "a photo of a {word}" prompts, own words welcome

    def __init__(
        self,
        arch: str = DEFAULT_ARCH,
        tag: str | None = DEFAULT_TAG,
        weights: Path | None = None,
        device: str = "auto",
        threads: int | None = None,
        fast: bool = False,
        cache_dir: Path | None = None,
    ) -> None:
        """`fast` (opt-in): the image tower on OpenVINO in bf16 where the CPU computes bf16
        natively, exported once into `cache_dir` (3.5× on random weights, bench/index.py;
        not yet checked on real CLIP weights, which cannot reach the test machines).
        `device`: "auto" (a GPU where there is one), "cpu", "cuda" or "mps"; on CUDA the
        model runs in float16 and JPEGs are decoded there too."""
        import open_clip
        import torch

        if arch not in open_clip.list_models():
            raise ModelUnavailable(
                f"unknown CLIP architecture {arch!r}; known ones include "
                + ", ".join(m for m in open_clip.list_models() if m.startswith("ViT-B"))
            )
        if weights is not None:
            weights = Path(weights).expanduser()
            if not weights.is_file():
                raise ModelUnavailable(f"checkpoint file not found: {weights}")
            source = weights
            self.id = f"clip:{arch}:file-{_checkpoint_digest(weights)}"
        else:
            tag = tag or DEFAULT_TAG
            if tag not in open_clip.list_pretrained_tags_by_model(arch):
                raise ModelUnavailable(
                    f"{arch} has no pretrained weights named {tag!r}; available: "
                    + ", ".join(open_clip.list_pretrained_tags_by_model(arch))
                )
            source = cached_weights(arch, tag)
            if source is None:
                repo, files = hub_files(arch, tag)
                raise ModelUnavailable(
                    f"the CLIP weights {arch}/{tag} are not on this computer. Download "
                    f"{' or '.join(files) or 'them'} from the Hugging Face repository {repo} "
                    f"and pass it with --weights FILE, or use --model builtin, which works "
                    f"offline."
                )
            self.id = f"clip:{arch}:{tag}"
        self.threads = threads or default_threads()
        torch.set_num_threads(self.threads)
        device = resolve_device(device)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                arch, pretrained=str(source), device=device
            )
        except Exception as exc:
            raise ModelUnavailable(f"cannot load CLIP weights from {source}: {exc}") from exc
        model.eval()
        self._model = model
        self._preprocess = preprocess
        self._tokenizer = open_clip.get_tokenizer(arch)
        self.device = device
        self.arch = arch
        self.dim = int(open_clip.get_model_config(arch)["embed_dim"])
        size = model.visual.image_size
        self.input_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self._fast = fast and cache_dir is not None and device == "cpu"
        cfg = open_clip.get_model_preprocess_cfg(model)
        self._jpeg: JpegOnDevice | None = decoder_for(
            device,
            self.input_size,
            cfg.get("mean", open_clip.OPENAI_DATASET_MEAN),
            cfg.get("std", open_clip.OPENAI_DATASET_STD),
        )
        self._cache_dir = cache_dir
        self._fast_run = None
        self._fast_lock = threading.Lock()

    @property
    def backend(self) -> str:
        if self._fast and self._load_fast() is not None:
            return "openvino bf16"
        return f"pytorch ({self.device}{', float16' if self._half else ''})"

    @property
    def batch_size(self) -> int:
        """Images per batch when indexing (devices.batch_size)."""
        return batch_size(self.device)

    @property
    def _half(self) -> bool:
        return half_precision(self.device)

    def jpeg_decoder(self) -> JpegOnDevice | None:
        """Decodes JPEGs into this model's input on its GPU; None on the CPU."""
        return self._jpeg

    def _load_fast(self):
        """The image tower on OpenVINO bf16 (None: not possible here; PyTorch runs)."""
        with self._fast_lock:
            if self._fast_run is None:
                self._fast_run = fast_image_tower(self, self._cache_dir) or False
            return self._fast_run or None

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return self._preprocess(image).numpy()

    def embed_images(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        fast = self._load_fast() if self._fast else None
        if fast is not None:
            return l2_normalize(fast(np.ascontiguousarray(batch, dtype=np.float32)))
        return l2_normalize(self._torch_images(batch))

    def _torch_images(self, batch) -> np.ndarray:
        return torch_forward(self._model.encode_image, batch, self.device, self._half)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with torch.inference_mode(), autocast(self.device, self._half):
            tokens = self._tokenizer(list(texts)).to(self.device)
            return l2_normalize(self._model.encode_text(tokens).float().cpu().numpy())


def fast_image_tower(encoder: ClipEncoder, cache_dir: Path):
    """CLIP's image tower exported to ONNX once (checked against PyTorch) and run by
    OpenVINO in bf16; None where the CPU has no native bf16 or a step fails."""
    import torch

    from visualsearch.core.encoders.onnx_cache import cached_session, export_checked
    from visualsearch.core.encoders.openvino_bf16 import bf16_runner
    from visualsearch.core.store import slug

    side = encoder.input_size
    path = Path(cache_dir) / "models" / f"{slug(encoder.id)}-image-tower.onnx"

    class Tower(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model.encode_image(x)

    def export(tmp: Path) -> bool:
        sample = np.random.default_rng(0).standard_normal((2, 3, side, side), np.float32)
        tower = Tower(encoder._model).eval()
        return export_checked(tower, sample, tmp, 1e-3, "CLIP's image tower")

    if cached_session(path, export, encoder.threads) is None:
        return None
    return bf16_runner(
        path, (3, side, side), encoder.threads, Path(cache_dir) / "openvino", encoder._torch_images
    )
