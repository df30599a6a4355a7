"""Label vocabularies for zero-shot text: the 1000 ImageNet classes (names from timm)."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in classifier order, e.g. 'tabby, tabby cat'."""
    info = resources.files("timm") / "data" / "_info"
    synsets = (info / "imagenet_synsets.txt").read_text().split()
    lemmas = {}
    for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines():
        synset, _, lemma = line.partition("\t")
        lemmas[synset] = lemma
    names = [lemmas[s] for s in synsets]
    if len(names) != 1000:
        raise RuntimeError(f"expected 1000 ImageNet classes, found {len(names)}")
    return names
