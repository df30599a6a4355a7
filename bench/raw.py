"""Camera RAW files: reading the embedded preview against developing the sensor data,
on a 24 MP DNG (6000 × 4000 12-bit mosaic, full-size JPEG preview; tests/raw_files.py
writes it as cameras lay it out). Prints seconds per file from one run; no pass/fail.

    python bench/raw.py
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rawpy
from PIL import Image

from tests.raw_files import write_dng
from visualsearch.core import imageio
from visualsearch.core.sample import skimage_photos

RUNS = 3


def best(fn) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    (photo,) = [p for p in skimage_photos() if p.name == "astronaut.png"]
    upright = Image.open(photo).convert("RGB").resize((6000, 4000))
    path = Path(tempfile.mkdtemp()) / "IMG_24MP.dng"
    write_dng(path, upright, orientation=1, preview_side=6000, sensor_width=6000)
    data = path.read_bytes()
    print(f"24 MP DNG, {len(data) / 1e6:.0f} MB, best of {RUNS}")

    def develop(half: bool):
        with rawpy.imread(io.BytesIO(data)) as raw:
            raw.postprocess(half_size=half, use_camera_wb=True, output_bps=8)

    figures = {
        "preview, decoded for the model (260 px, as indexing does)": lambda: imageio.decode(
            data, min_side=260
        ),
        "preview, decoded for a thumbnail (256 px)": lambda: imageio.decode(data, min_side=256),
        "preview, decoded whole (the viewer)": lambda: imageio.decode(data),
        "developed at half size (LibRaw)": lambda: develop(True),
        "developed whole (LibRaw)": lambda: develop(False),
    }
    base = None
    for name, fn in figures.items():
        seconds = best(fn)
        base = base or seconds
        print(f"| {name} | {seconds:.3f} s | {seconds / base:.0f}× |")


if __name__ == "__main__":
    main()
