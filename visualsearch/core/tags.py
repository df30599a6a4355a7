"""Tag suggestions: the model's zero-shot vocabulary ranked for one or more images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visualsearch.core.calibration import TAG, Calibration
from visualsearch.core.encoders.base import l2_normalize
from visualsearch.core.encoders.vocabulary import Vocabulary, zero_shot_vocabulary


def tag_vocabulary(encoder, cache_dir: Path, extra_words: Sequence[str] = ()) -> Vocabulary:
    """The ImageNet vocabulary in `encoder`'s space, plus the user's own words.

    Own words need a model whose text and image vectors share one space with the
    vocabulary (CLIP: "a photo of a {word}" like the rest). The built-in model's
    vocabulary is its classifier, which words outside it cannot join: they are refused.
    """
    vocabulary = zero_shot_vocabulary(encoder, cache_dir)
    words = [w.strip() for w in extra_words if w.strip()]
    if not words:
        return vocabulary
    if encoder.classifier is not None:
        raise ValueError(
            "the built-in model suggests tags from its 1,000 ImageNet categories only; "
            "own words need a CLIP model"
        )
    vectors = encoder.embed_text([f"a photo of a {w}" for w in words])
    return Vocabulary([*words, *vocabulary.names], np.concatenate([vectors, vocabulary.matrix]))


def suggest_tags(
    vocabulary: Vocabulary,
    vectors: np.ndarray,
    k: int = 8,
    calibration: Calibration | None = None,
) -> list[tuple[str, float]]:
    """The `k` best words for the images (their mean vector), best first, each with its
    match (core/calibration.py; the cosine when there is no `calibration`)."""
    vectors = np.atleast_2d(np.asarray(vectors, np.float32))
    top = vocabulary.top(l2_normalize(vectors.mean(0)), k)
    if calibration is None:
        return top
    matches = calibration.text(np.array([s for _, s in top]), TAG)
    return [(word, float(m)) for (word, _), m in zip(top, matches, strict=True)]
