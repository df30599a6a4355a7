"""The built-in image network on OpenVINO in bfloat16, where the CPU computes it natively.

On CPUs with AMX or AVX-512 BF16 (Intel Xeon since Sapphire Rapids, AMD Zen 4 and later)
this ran the network 2.3–2.8× faster than ONNX Runtime fp32 here (262–306 against
109–112 images/s in two runs of bench/index.py), with vectors that stay faithful: cosine
0.9994 with fp32's on average (worst 0.996) and 97–99.5 % of the 10 nearest neighbours
the same on 252 and 432 real images. ONNX Runtime's static int8 was about as fast but
kept only 93 % of them, and OpenVINO's NNCF int8 92 %. Elsewhere OpenVINO computes
fp32, no faster than ONNX Runtime, so it is not used. The graph is the fp32 one
exported and checked once; the compiled form is cached by OpenVINO in the user cache.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from visualsearch.core.encoders.base import l2_normalize
from visualsearch.core.interrupts import optional_import, raise_if_interrupted

log = logging.getLogger(__name__)

# Its vectors must agree with fp32's to this on the check at load (measured: 0.996 worst)
MIN_COSINE = 0.99


def bf16_runner(
    graph: Path,
    input_shape: tuple[int, ...],
    threads: int,
    cache_dir: Path,
    reference: Callable[[np.ndarray], np.ndarray],
) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function running the ONNX `graph` (one input of `input_shape` a sample) on
    OpenVINO in bf16, or None where OpenVINO is missing, the CPU has no native bf16, or
    its output strays from `reference`'s."""
    ov = optional_import("openvino")
    if ov is None:
        return None
    try:
        core = ov.Core()
        if "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            return None
        config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "bf16"}
        try:
            core.set_property({"CACHE_DIR": str(cache_dir)})  # compiled in 0.08 s, not 0.5
        except Exception as exc:
            log.debug("no OpenVINO model cache: %s", exc)
        request = core.compile_model(str(graph), "CPU", config).create_infer_request()
    except Exception as exc:  # an OpenVINO that cannot load the graph: ONNX Runtime runs it
        raise_if_interrupted(exc)
        log.warning("OpenVINO unusable (%s); running ONNX Runtime", exc)
        return None
    lock = threading.Lock()  # one infer request: calls from the search and indexing threads

    def run(batch: np.ndarray) -> np.ndarray:
        with lock:
            return np.array(request.infer({0: batch})[0], np.float32)

    sample = np.random.default_rng(0).standard_normal((2, *input_shape), np.float32)
    worst = (l2_normalize(run(sample)) * l2_normalize(reference(sample))).sum(axis=1).min()
    if worst < MIN_COSINE:
        log.warning("OpenVINO bf16 strays from fp32 (cosine %.3f); running ONNX Runtime", worst)
        return None
    return run
