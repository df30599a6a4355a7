"""ONNX graphs exported once into the user's cache, verified, and run by ONNX Runtime.

A model is exported from its PyTorch weights the first time it is needed (seconds, with
torch imported); later runs only open the file (0.2 s for the built-in image model, no
torch). A cached file is trusted only when its checksum matches the one written after
the export was checked against PyTorch: a damaged file loads fine and computes NaN.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

from visualsearch.core.integrity import file_checksum
from visualsearch.core.interrupts import optional_import, raise_if_interrupted

log = logging.getLogger(__name__)


def _checksum_path(model: Path) -> Path:
    return model.with_name(model.name + ".sha256")


def _intact(model: Path) -> bool:
    """True if the cached model file is the one that was exported and checked."""
    try:
        return _checksum_path(model).read_text().strip() == file_checksum(model)
    except OSError:
        return False


def cached_session(path: Path, export: Callable[[Path], bool], threads: int):
    """An ONNX Runtime session for the graph cached at `path`, exported first by
    `export(tmp)` when missing or damaged (it returns False when its graph does not
    reproduce PyTorch); None when ONNX Runtime is missing or the graph cannot be made:
    the caller then runs PyTorch."""
    ort = optional_import("onnxruntime")
    if ort is None:
        log.warning("onnxruntime is not installed; models run on PyTorch (slower)")
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    for attempt in (1, 2):
        if not _intact(path):
            if path.exists() or path.is_symlink():
                log.warning("cached ONNX model %s is damaged; exporting it again", path.name)
            if not _remove(path) or not _export_verified(path, export):
                return None
        try:
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # unusable although intact: export again once
            raise_if_interrupted(exc)
            log.warning("cached ONNX model unusable (%s); exporting again", exc)
            if not _remove(path) or attempt == 2:
                return None
    return None


def _remove(path: Path) -> bool:
    """Remove a cached graph; False (and why, in the log) when the cache cannot be
    written: the caller then runs PyTorch."""
    try:
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink(missing_ok=True)
        return True
    except OSError as exc:
        log.warning("cannot replace the cached %s (%s); running PyTorch", path.name, exc)
        return False


def _remove_abandoned(path: Path) -> None:
    """Temporary files a killed export left beside `path` (named `<stem>.<pid>.tmp`)."""
    pattern = re.compile(re.escape(path.stem) + r"\.(\d+)\.tmp")
    for tmp in path.parent.glob(f"{path.stem}.*.tmp"):
        found = pattern.fullmatch(tmp.name)
        if found and not _alive(int(found[1])) and (tmp.is_symlink() or tmp.is_file()):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def _export_verified(path: Path, export: Callable[[Path], bool]) -> bool:
    """Export under a temporary name, then record its checksum and rename it into place:
    a reader never sees half a file, and two processes exporting at once never mix."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(path)
        if not export(tmp):
            return False
        _checksum_path(path).write_text(file_checksum(tmp))
        os.replace(tmp, path)
        return True
    except Exception as exc:
        raise_if_interrupted(exc)
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning("ONNX export of %s failed (%s); running PyTorch", path.name, first_line)
        return False
    finally:
        tmp.unlink(missing_ok=True)


def export_checked(module, sample, tmp: Path, tolerance: float, name: str) -> bool:
    """Export the PyTorch `module` (an image batch "pixels" in, one output, any batch
    size) to ONNX at `tmp`; True if ONNX Runtime reproduces its output on `sample` (a
    float32 array) within `tolerance`."""
    import warnings

    import torch

    batch = torch.from_numpy(sample)
    with torch.inference_mode():
        expected = module(batch).numpy()
    with warnings.catch_warnings():  # tracer chatter about shape inference
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (batch,),
            str(tmp),
            input_names=["pixels"],
            output_names=["output"],
            dynamic_axes={"pixels": {0: "n"}, "output": {0: "n"}},
            opset_version=17,
            dynamo=False,
        )
    return check_export(tmp, {"pixels": sample}, expected, tolerance, name)


def check_export(tmp: Path, inputs: dict, expected, tolerance: float, name: str) -> bool:
    """True when ONNX Runtime running the graph at `tmp` on `inputs` gives `expected`
    (PyTorch's output) within `tolerance`; says so in the log when not."""
    import numpy as np
    import onnxruntime as ort

    got = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"]).run(None, inputs)[0]
    err = float(np.abs(got - expected).max())
    if err > tolerance:
        log.warning("ONNX export of %s differs from PyTorch by %.2g; using PyTorch", name, err)
        return False
    return True
