"""Where a model runs: a GPU when there is one (CUDA, or Apple's MPS), else the CPU.

"auto" looks for a GPU's traces first and imports PyTorch (1.2 s) only where one could
be: on a computer with none, the built-in model keeps running on ONNX Runtime or
OpenVINO without PyTorch ever being loaded.
"""

from __future__ import annotations

import ctypes.util
import glob
import os
import platform
import sys

import numpy as np

from visualsearch.core.encoders.base import ModelUnavailable

CHOICES = ("auto", "cpu", "cuda", "mps")
_LINUX_GPU_TRACES = ("/proc/driver/nvidia", "/dev/dxg")
# Images per batch on the CPU (bench/index.py: EfficientNet-Lite2 in ONNX Runtime ran 91
# img/s at batch 8, 61 at 16), and on a GPU. There 256 runs the encoder alone faster (on an
# H100: 6,800 against 5,900 img/s for the built-in model, 19,500 against 8,000 for CLIP
# ViT-B-32), but indexing is bound by reading and decoding at ~150 img/s, and 64 decoded
# 12 MP photos already take 2.3 GB of GPU memory (bench/gpu.py).
CPU_BATCH, GPU_BATCH = 8, 64


def gpu_possible() -> bool:
    """Whether this computer could have a GPU that PyTorch uses, without importing it."""
    if sys.platform == "darwin":
        return platform.machine() == "arm64"  # Apple silicon: MPS
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False  # the user hid every GPU
    if sys.platform.startswith("linux"):  # an NVIDIA driver's devices, or WSL2's GPU
        return bool(glob.glob("/dev/nvidia*")) or any(map(os.path.exists, _LINUX_GPU_TRACES))
    return ctypes.util.find_library("nvcuda") is not None  # Windows' CUDA driver


def resolve_device(choice: str = "auto") -> str:
    """'auto' → 'cuda' or 'mps' where PyTorch can use one, else 'cpu'. A GPU asked for
    by name that is not usable raises ModelUnavailable saying why."""
    choice = (choice or "auto").strip().lower()
    kind = choice.partition(":")[0]
    if kind not in CHOICES:
        raise ModelUnavailable(f"unknown device {choice!r}: use one of {', '.join(CHOICES)}")
    if kind == "cpu" or (kind == "auto" and not gpu_possible()):
        return "cpu"
    import torch

    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if kind == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if kind == "cuda" and not cuda:
        build = "has no CUDA support" if torch.version.cuda is None else "finds no NVIDIA GPU"
        raise ModelUnavailable(
            f"--device {choice}: this PyTorch ({torch.__version__}) {build}. Install a CUDA "
            "build of PyTorch (pytorch.org), or use --device cpu"
        )
    if kind == "mps" and not mps:
        raise ModelUnavailable("--device mps: Apple's Metal GPU is not available here")
    if kind == "cuda" and choice != "cuda":
        index = choice.partition(":")[2]
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise ModelUnavailable(
                f"--device {choice}: this computer has {torch.cuda.device_count()} CUDA GPU(s), "
                "counted from cuda:0"
            )
    return choice


def batch_size(device: str) -> int:
    """Images per batch when indexing with a model on `device`."""
    return CPU_BATCH if device == "cpu" else GPU_BATCH


def half_precision(device: str) -> bool:
    """float16 on a CUDA GPU: 1.5x (built-in) and 2.1x (CLIP ViT-B-32) float32's speed on an
    H100, and as faithful to the CPU's float32 vectors (lowest cosine 1.0000 on the 36 real
    photos, top-10 overlap 1.000, against 0.997 for float32, which runs convolutions in
    TF32): bench/gpu.py."""
    return device.startswith("cuda")


def autocast(device: str, half: bool):
    """float16 autocast on CUDA where `half`, else nothing."""
    import contextlib

    import torch

    if half and device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def torch_forward(fn, batch, device: str, half: bool) -> np.ndarray:
    """`fn` (a PyTorch model's forward) of a batch (a numpy array, or a tensor made on
    the device) on `device`, under `autocast`, as a float32 numpy array."""
    import torch

    x = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(batch)
    x = x.to(device, dtype=torch.float32, non_blocking=True)
    with torch.inference_mode(), autocast(device, half):
        return fn(x).float().cpu().numpy()
