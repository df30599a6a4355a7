"""Inference backends for both models, side by side (called by bench/index.py).

For each backend: E (images/s of the encoder alone, batches of BATCH preprocessed real
photos, best of REPS) and fidelity against the fp32 reference: mean and worst cosine,
the overlap of each image's 10 nearest neighbours, and precision@10 (neighbours of the
same subject), on 252 real images (36 photos, 6 near-copies each) and on 432 (also 5
other framings each). For CLIP, whose real weights cannot reach this machine, only the
agreement of the vectors is meaningful (random weights).

OpenVINO and NNCF are measured when installed (`pip install openvino nncf`); they are
not dependencies of the product.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from visualsearch.core.encoders.base import l2_normalize
from visualsearch.core.imageio import decode
from visualsearch.core.model_evaluation import nearest_rows, neighbour_overlap
from visualsearch.core.sample import labelled_sample

BATCH = 32
REPS = 3
Run = Callable[[np.ndarray], np.ndarray]


def photo_sets(preprocess, side: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name → (preprocessed images, subjects)."""
    sets = {}
    for name, framings in (("252", False), ("432", True)):
        items = labelled_sample(variants=True, framings=framings)
        x = np.stack([preprocess(decode(data, min_side=side).image) for _, data, _ in items])
        sets[name] = (x.astype(np.float32), np.array([s for _, _, s in items]))
    return sets


def images_per_second(run: Run, x: np.ndarray) -> float:
    batch = np.ascontiguousarray(x[:BATCH])
    run(batch)  # warm-up: first-call allocations, kernel choice
    best = float("inf")
    for _ in range(REPS):
        started = time.perf_counter()
        run(batch)
        best = min(best, time.perf_counter() - started)
    return BATCH / best


def _batched(run: Run, x: np.ndarray) -> np.ndarray:
    return l2_normalize(np.concatenate([run(x[i : i + BATCH]) for i in range(0, len(x), BATCH)]))


def fidelity(run: Run, reference: Run, x: np.ndarray, subjects: np.ndarray) -> dict[str, float]:
    ref, got = _batched(reference, x), _batched(run, x)
    cos = (ref * got).sum(axis=1)

    a, b = nearest_rows(ref), nearest_rows(got)
    return {
        "cos": float(cos.mean()),
        "worst": float(cos.min()),
        "top10": neighbour_overlap(ref, got),
        "p10": float((subjects[b] == subjects[:, None]).mean()),
        "p10_ref": float((subjects[a] == subjects[:, None]).mean()),
    }


def calibration_batch(preprocess: Callable, side: int) -> np.ndarray:
    """The sample photos (36 real ones), preprocessed for the model."""
    from visualsearch.core.imageio import decode
    from visualsearch.core.sample import imagenet_photos, skimage_photos

    photos = skimage_photos() + imagenet_photos()
    if not photos:
        raise RuntimeError("no calibration photos: scikit-image and foolbox are needed")
    images = [decode(p.read_bytes(), min_side=side).image for p in photos]
    return np.stack([preprocess(image) for image in images]).astype(np.float32)


def quantize_int8(
    fp32: Path, tmp: Path, input_name: str, calibration: np.ndarray, reference: np.ndarray
) -> bool:
    """ONNX Runtime's static int8 (QDQ, per-channel int8 weights, uint8 activations,
    calibrated on `calibration`) of the graph at `fp32`, written to `tmp`."""
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Photos(CalibrationDataReader):
        def __init__(self) -> None:
            self._left = iter(range(len(calibration)))

        def get_next(self):
            i = next(self._left, None)
            return None if i is None else {input_name: calibration[i : i + 1]}

    prepared = tmp.with_name(tmp.name + ".pre")
    try:
        quant_pre_process(str(fp32), str(prepared))
        quantize_static(
            str(prepared),
            str(tmp),
            Photos(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    finally:
        prepared.unlink(missing_ok=True)
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = session.run(None, {input_name: calibration})[0]
    cosines = (l2_normalize(got) * l2_normalize(reference)).sum(axis=1)
    return bool(cosines.mean() > 0.9 and cosines.min() > 0.5)  # a sane graph


def onnx_session(path: Path, threads: int) -> Run:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def openvino_runs(onnx: Path, calibration: np.ndarray, threads: int, transformer: bool):
    """OpenVINO fp32, bf16 (where the CPU computes it natively) and NNCF int8; {} when
    OpenVINO or NNCF is not installed."""
    try:
        import nncf
        import openvino as ov
    except ImportError:
        return {}
    core = ov.Core()

    def compiled(model, precision: str | None) -> Run:
        config = {"INFERENCE_NUM_THREADS": threads}
        if precision:
            config["INFERENCE_PRECISION_HINT"] = precision
        c = core.compile_model(model, "CPU", config)
        return lambda x: c(x)[0]

    quantized = nncf.quantize(
        core.read_model(str(onnx)),
        nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))]),
        subset_size=len(calibration),
        model_type=nncf.ModelType.TRANSFORMER if transformer else None,
    )
    runs = {"OpenVINO fp32": compiled(core.read_model(str(onnx)), "f32")}
    if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        runs["OpenVINO bf16"] = compiled(core.read_model(str(onnx)), "bf16")
    return runs | {"OpenVINO int8 (NNCF)": compiled(quantized, "f32")}


def builtin_backends(cache_dir: Path, threads: int) -> tuple[dict[str, Run], Callable, int]:
    """name → run for the built-in model's image network; its preprocess and side."""
    import torch

    from visualsearch.core.encoders.builtin import INPUT_SIZE, BuiltinEncoder

    fp32 = BuiltinEncoder(cache_dir, threads=threads, use_openvino=False)
    fp32.embed_images(np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32))  # the export
    features = fp32._features

    def pytorch(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return features(torch.from_numpy(x)).numpy()

    models = (cache_dir / "models").glob("efficientnet-lite2-features-*.onnx")
    (onnx,) = list(models)
    int8 = Path(tempfile.mkdtemp(prefix="vs-bench-int8-")) / "int8.onnx"
    calibration = calibration_batch(fp32.preprocess, INPUT_SIZE)
    reference = fp32.embed_images(calibration)
    assert quantize_int8(onnx, int8, "pixels", calibration, reference)
    runs = {
        "PyTorch fp32": pytorch,
        "ONNX Runtime fp32": lambda x: fp32._session.run(None, {"pixels": x})[0],
        "ONNX Runtime int8 (static QDQ)": onnx_session(int8, threads),
    }
    runs |= openvino_runs(onnx, calibration, threads, transformer=False)
    return runs, fp32.preprocess, INPUT_SIZE


def clip_backends(weights: Path, threads: int) -> tuple[dict[str, Run], Callable, int]:
    """name → run for CLIP ViT-B-32's image tower; its preprocess and side. The ONNX graph
    is the one the product exports for its opt-in fast path."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from visualsearch.core.encoders.clip import ClipEncoder

    work = Path(tempfile.mkdtemp(prefix="vs-bench-clip-"))
    encoder = ClipEncoder(weights=weights, threads=threads, fast=True, cache_dir=work)
    side = encoder.input_size
    encoder.embed_images(np.zeros((1, 3, side, side), np.float32))  # exports the tower
    (onnx,) = (work / "models").glob("*-image-tower.onnx")
    int8 = work / "image-tower-int8.onnx"
    quantize_dynamic(str(onnx), str(int8), weight_type=QuantType.QInt8)
    runs = {
        "PyTorch fp32": encoder._torch_images,
        "ONNX Runtime fp32": onnx_session(onnx, threads),
        "ONNX Runtime int8 (dynamic)": onnx_session(int8, threads),
    }
    calibration = calibration_batch(encoder.preprocess, side)
    runs |= openvino_runs(onnx, calibration, threads, transformer=True)
    return runs, encoder.preprocess, side


def compare(name: str, runs: dict[str, Run], preprocess, side: int, used: str) -> None:
    """Print E and fidelity of every backend against the first (the fp32 reference)."""
    sets = photo_sets(preprocess, side)
    reference = runs["ONNX Runtime fp32"] if "ONNX Runtime fp32" in runs else next(iter(runs))
    print(f"\n{name}: backends (E: images/s of the encoder alone, batch {BATCH})")
    print("| backend | E | cosine mean / worst | top-10 overlap 252 / 432 | precision@10 252 |")
    print("|---|---|---|---|---|")
    for backend, run in runs.items():
        e = images_per_second(run, sets["252"][0])
        small = fidelity(run, reference, *sets["252"])
        large = fidelity(run, reference, *sets["432"])
        mark = " **(used)**" if backend == used else ""
        print(
            f"| {backend}{mark} | {e:.1f} | {small['cos']:.4f} / {small['worst']:.3f} | "
            f"{small['top10']:.3f} / {large['top10']:.3f} | "
            f"{small['p10']:.3f} (fp32 {small['p10_ref']:.3f}) |",
            flush=True,
        )
