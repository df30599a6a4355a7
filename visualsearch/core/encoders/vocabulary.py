"""Label vocabularies for zero-shot naming and text: the 1000 ImageNet classes (names
from timm), placed in each model's vector space."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from visualsearch.core.encoders.base import cache_array, l2_normalize, load_unit_rows


def _timm_info() -> Path:
    """timm's ImageNet data files, found without importing timm (which imports
    torchvision and torch: 2.3 s)."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("timm is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "_info"


@cache
def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet-1k classes' WordNet ids in classifier order, e.g. 'n02123045'."""
    wnids = (_timm_info() / "imagenet_synsets.txt").read_text().split()
    if len(wnids) != 1000:
        raise RuntimeError(f"expected 1000 ImageNet classes, found {len(wnids)}")
    return wnids


@cache
def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in classifier order, e.g. 'tabby, tabby cat'."""
    lemmas = {}
    for line in (_timm_info() / "imagenet_synset_to_lemma.txt").read_text().splitlines():
        synset, _, lemma = line.partition("\t")
        lemmas[synset] = lemma
    return [lemmas[s] for s in imagenet_wnids()]


@dataclass(frozen=True)
class Concept:
    """A WordNet concept above ImageNet classes: "dog" above the 118 breeds."""

    names: tuple[str, ...]
    classes: tuple[int, ...]  # classifier rows it covers


@cache
def imagenet_concepts() -> list[Concept]:
    """The concepts that cover two or more ImageNet classes, from the WordNet hierarchy
    shipped beside this module (made by scripts/imagenet_hierarchy.py)."""
    data = json.loads(Path(__file__).with_name("imagenet_hierarchy.json").read_text("utf-8"))
    return [Concept(tuple(c["names"]), tuple(c["classes"])) for c in data["concepts"]]


@dataclass(frozen=True)
class Vocabulary:
    """Words in a model's vector space: `vectors @ matrix.T` ranks them for each image."""

    names: list[str]  # short display names ("tabby", "espresso")
    matrix: np.ndarray  # (V, dim)

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        return np.asarray(vectors, np.float32) @ self.matrix.T

    def top(self, vector: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        scores = self.scores(vector)
        best = np.argsort(-scores, kind="stable")[:k]
        return [(self.names[i], float(scores[i])) for i in best]


def display_name(class_name: str) -> str:
    """'tabby, tabby cat' → 'tabby cat', 'lynx, catamount' → 'lynx': the first synonym,
    or the second where it spells the first out."""
    parts = [p.strip() for p in class_name.split(",") if p.strip()]
    if len(parts) > 1 and parts[0].lower() in parts[1].lower():
        return parts[1]
    return parts[0]


def zero_shot_vocabulary(encoder, cache_dir: Path) -> Vocabulary:
    """The ImageNet classes in `encoder`'s space.

    The built-in model has them already: its classifier's rows (image · row = the
    class logit, less a bias), scaled to unit length so that every model's scores are
    cosines (core/calibration.py reads them as such). Other models embed
    "a photo of a {name}" once; the result is cached per model id.
    """
    names = [display_name(n) for n in imagenet_class_names()]
    classifier = encoder.classifier
    if classifier is not None:
        return Vocabulary(names, l2_normalize(classifier))
    from visualsearch.core.store import slug

    path = Path(cache_dir) / "vocabulary" / f"imagenet-{slug(encoder.id)}.npy"
    cached = load_unit_rows(path, (len(names), encoder.dim))
    if cached is not None:
        return Vocabulary(names, cached)
    prompts = [f"a photo of a {n}" for n in names]
    matrix = np.concatenate(
        [encoder.embed_text(prompts[i : i + 100]) for i in range(0, len(prompts), 100)]
    )
    cache_array(path, matrix.astype(np.float32))
    return Vocabulary(names, matrix)
