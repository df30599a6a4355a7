"""Labelled real images that ship in packages, written as files in one subfolder per
label: scikit-image's `lfw_subset` (100 faces, 100 non-faces) and scikit-learn's
handwritten digits scaled up. Used by the sorting tests and bench/sort.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def faces(dest: Path) -> Path:
    """dest/face/*.png and dest/not a face/*.png: 100 each, 25×25 grey shown at 100×100."""
    from skimage.data import lfw_subset

    for i, pixels in enumerate(lfw_subset()):
        folder = dest / ("face" if i < 100 else "not a face")
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray((pixels * 255).astype(np.uint8)).resize((100, 100))
        image.save(folder / f"lfw_{i:03d}.png")
    return dest


def digits(dest: Path, per_digit: int = 30) -> Path:
    """dest/<digit>/*.png: the first `per_digit` of each of the ten, dark on light."""
    from sklearn.datasets import load_digits

    data = load_digits()
    taken = dict.fromkeys(range(10), 0)
    for i, (pixels, digit) in enumerate(zip(data.images, data.target, strict=True)):
        if taken[int(digit)] >= per_digit:
            continue
        taken[int(digit)] += 1
        folder = dest / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        grey = (255 - pixels * 255 / 16).astype(np.uint8)
        Image.fromarray(grey).resize((96, 96), Image.Resampling.NEAREST).save(
            folder / f"digit_{i:04d}.png"
        )
    return dest
