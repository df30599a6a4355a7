"""Match calibration (core/calibration.py) with the built-in model on the 36 real
photos: the model's scale, the three logistic fits refitted beside the ones the code
carries, and what the minimum-match box keeps, before (raw cosines) and now.

    python bench/calibration.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from sklearn.metrics import brier_score_loss, roc_auc_score

from tests.calibration_sets import (
    fit,
    image_pairs,
    photos,
    precision_recall,
    tag_pairs,
    text_query_pairs,
)
from visualsearch.core import calibration as cal
from visualsearch.core.encoders.builtin import BuiltinEncoder


def main() -> None:
    cache = Path(os.environ.get("VS_BENCH_CACHE", tempfile.mkdtemp(prefix="vs-bench-cal-")))
    encoder = BuiltinEncoder(cache_dir=cache)
    ph = photos(encoder, cache)
    s = ph.scale
    print(f"built-in model, {len(ph.names)} reference photos")
    print(f"scale: text-image median {s.text_centre:.4f} spread {s.text_spread:.4f}; ", end="")
    print(f"image-image median {s.image_centre:.4f}\n")

    text, tags, images = (
        text_query_pairs(encoder, ph),
        tag_pairs(encoder, ph, cache),
        image_pairs(ph),
    )
    rows = [
        ("text query", text, (text.scores - s.text_centre) / s.text_spread, cal.TEXT_QUERY),
        ("tag", tags, (tags.scores - s.text_centre) / s.text_spread, cal.TAG),
        ("image query", images, s.image_share(images.scores), cal.IMAGE_QUERY),
    ]
    print(
        "| fit | pairs (matching) | AUC | refit slope, offset | in the code | Brier | "
        "precision / recall at 0.5 |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, pairs, z, carried in rows:
        refit = fit(z, pairs.relevant)
        chance = carried.chance(z)
        p, r = precision_recall(chance, pairs.relevant, 0.5)
        print(
            f"| {name} | {len(z)} ({int(pairs.relevant.sum())}) | "
            f"{roc_auc_score(pairs.relevant, z):.3f} | {refit.slope}, {refit.offset} | "
            f"{carried.slope}, {carried.offset} | {brier_score_loss(pairs.relevant, chance):.4f} "
            f"| {p:.2f} / {r:.2f} |"
        )

    print("\nThe minimum box on the 24 everyday queries (share of the matching photos kept,")
    print("and how many of the kept ones match), before (raw scores) and now (matches):")
    print("| box | before: precision / recall | now: precision / recall |")
    print("|---|---|---|")
    matches = cal.TEXT_QUERY.chance(rows[0][2])
    for at in (0.1, 0.3, 0.5, 0.7, 0.9):
        bp, br = precision_recall(text.scores, text.relevant, at)
        np_, nr = precision_recall(matches, text.relevant, at)
        print(f"| {at} | {bp:.2f} / {br:.2f} | {np_:.2f} / {nr:.2f} |")
    own = np.flatnonzero(tags.relevant)
    confident = cal.TAG.chance(rows[1][2][own]) >= cal.CONFIDENT
    print(
        f"\nTags: the photo's own class is a confident tag for {int(confident.sum())} of "
        f"{len(own)} labelled photos"
    )


if __name__ == "__main__":
    main()
