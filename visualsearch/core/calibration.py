"""Scores that mean the same for every model: a match from 0 to 1, the measured chance
that an image shows what was asked (0.5: as likely as not).

A model's raw cosines have a scale of their own (the built-in model's best "a person"
scored 0.05, CLIP's text matches sit near 0.3, image pairs near 0.8). Each model's scale
is read off real photos: the cosines of the reference photos (the 36 real photos that
ship in scikit-image and foolbox) with its 1000 ImageNet words, and with each other;
nearly all of those pairs do not match, so their median says where "no match" lies for
that model. A text-image score becomes a z (how many spreads above that median); an
image-image cosine the share of the way from that median to 1 (the same image), so that
an image is always a sure match of itself, however alike a model finds all images. A
logistic fitted on labelled real photos turns either into a chance
(bench/calibration.py). The mapping rises with the cosine, so a ranking is never
changed, only read.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from visualsearch.core.encoders.base import cache_array, embed_files, load_unit_rows

log = logging.getLogger(__name__)

# A MAD scaled to be a normal distribution's standard deviation.
MAD_TO_SIGMA = 1.4826
MIN_SPREAD = 1e-3  # a model whose cosines barely vary (random weights) still divides


@dataclass(frozen=True)
class Fit:
    """A logistic on the z: chance = 1 / (1 + exp(-(slope·z + offset)))."""

    slope: float
    offset: float

    def chance(self, z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.slope * np.asarray(z, np.float64) + self.offset)))

    def z_of(self, chance: float) -> float:
        c = min(max(chance, 1e-9), 1 - 1e-9)
        return (math.log(c / (1 - c)) - self.offset) / self.slope


# Fitted with the built-in model by bench/calibration.py (which prints these; a test
# refits them and checks that they still hold):
# - a text query: 24 everyday queries × 36 real photos, 44 of the 864 pairs relevant
#   (AUC 0.991; at 0.5 precision 0.89, recall 0.75);
TEXT_QUERY = Fit(1.396, -5.926)
# - a tag: 20 labelled ImageNet photos × 1000 words, the photo's own class relevant
#   (AUC 0.9997; at 0.5 precision 0.84, recall 0.80): one word of 1000 is right, so a
#   tag needs a far higher z than a query;
TAG = Fit(1.122, -10.654)
# - an image query: the 36 photos' pairs, photos of the same subject relevant (9 pairs:
#   the two dogs, the three birds…; AUC 0.952; at 0.5 precision 0.50, recall 0.11): the
#   fewest labels, the roughest fit. Its 50 % point is a third of the way from the
#   median to 1 (the built-in model's cosine 0.50); a near-duplicate (0.9) is 0.999.
IMAGE_QUERY = Fit(14.533, -5.125)

# Tags and cluster names are confident from this match (at 0.5: 16 of the 20 ImageNet
# photos' own class named, and no word for the scikit-image photos of things ImageNet
# has no class for: coins, grass, the moon).
CONFIDENT = 0.5


@dataclass(frozen=True)
class Calibration:
    """One model's scale: where its text-image and image-image cosines of unmatched
    pairs lie (median), and how far the text-image ones spread (a robust sigma)."""

    text_centre: float
    text_spread: float
    image_centre: float

    @classmethod
    def measure(cls, reference: np.ndarray, words: np.ndarray) -> Calibration:
        """From unit vectors of the reference photos and of the vocabulary's words."""
        reference = np.asarray(reference, np.float32)
        text = (reference @ _unit(words).T).ravel()
        pairs = (reference @ reference.T)[np.triu_indices(len(reference), 1)]
        return cls(*_centre_spread(text), float(np.median(pairs[np.isfinite(pairs)])))

    def text(self, cosines: np.ndarray, fit: Fit = TEXT_QUERY) -> np.ndarray:
        """The match of text-image scores (a text query's, or with TAG a word's)."""
        return fit.chance((np.asarray(cosines) - self.text_centre) / self.text_spread)

    def image(self, cosines: np.ndarray) -> np.ndarray:
        """The match of image-image cosines (a find-similar query's)."""
        return IMAGE_QUERY.chance(self.image_share(cosines))

    def image_share(self, cosines: np.ndarray) -> np.ndarray:
        """How far image-image cosines lie from the unmatched median (0) to 1 (1)."""
        return (np.asarray(cosines) - self.image_centre) / max(1 - self.image_centre, MIN_SPREAD)

    def text_cosine(self, match: float, fit: Fit = TEXT_QUERY) -> float:
        """The text-image score whose match is `match` (the inverse of `text`)."""
        return self.text_centre + fit.z_of(match) * self.text_spread

    def image_cosine(self, match: float) -> float:
        """The image-image cosine whose match is `match` (the inverse of `image`)."""
        return self.image_centre + IMAGE_QUERY.z_of(match) * max(1 - self.image_centre, MIN_SPREAD)


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def _centre_spread(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    centre = float(np.median(values))
    spread = float(np.median(np.abs(values - centre))) * MAD_TO_SIGMA
    return centre, max(spread, MIN_SPREAD)


def reference_photos() -> list[Path]:
    """The real photos every model's scale is read from (empty without the packages)."""
    from visualsearch.core.sample import imagenet_photos, skimage_photos

    return skimage_photos() + imagenet_photos()


def reference_vectors(encoder, cache_dir: Path) -> np.ndarray | None:
    """The reference photos' vectors in `encoder`'s space, encoded once and cached per
    model; None when the photos are not installed or none can be read."""
    from visualsearch.core.store import slug

    photos = reference_photos()
    if not photos:
        return None
    path = Path(cache_dir) / "calibration" / f"reference-{slug(encoder.id)}.npy"
    cached = load_unit_rows(path, (len(photos), encoder.dim))
    if cached is not None:
        return cached
    vectors, failed = embed_files(encoder, photos)
    for photo, exc in failed:  # a damaged install: the others still give the scale
        log.warning("reference photo %s not read: %s", photo, exc)
    if len(vectors) < 2:
        return None
    if len(vectors) == len(photos):
        cache_array(path, vectors)
    return vectors


def calibration(encoder, cache_dir: Path) -> Calibration | None:
    """`encoder`'s scale (None when no reference photos are installed)."""
    from visualsearch.core.encoders.vocabulary import zero_shot_vocabulary

    reference = reference_vectors(encoder, cache_dir)
    if reference is None:
        return None
    return Calibration.measure(reference, zero_shot_vocabulary(encoder, cache_dir).matrix)
