"""Everyday text queries over the real photos the tests use (scikit-image's 16 and
foolbox's 20 labelled ImageNet photos), each with the photos a person would expect.

The ImageNet photos' relevance follows their labels (a bull mastiff is a dog, an
animal); the scikit-image photos were labelled by looking at them. Used by
tests/core/test_everyday_queries.py and bench/text_search.py.
"""

from __future__ import annotations

from collections.abc import Sequence

DOGS = {"imagenet_00_243.jpg", "imagenet_16_251.jpg"}  # bull mastiff, dalmatian
BIRDS = {"imagenet_14_129.jpg", "imagenet_15_99.jpg", "imagenet_17_22.jpg"}  # spoonbill…
INSECTS = {"imagenet_18_317.jpg", "imagenet_19_305.jpg"}  # leafhopper, dung beetle
JEEPS = {"imagenet_06_609.jpg", "imagenet_07_609.jpg"}
PEOPLE = {"astronaut.png", "camera.png"}  # an astronaut; a man behind a camera

EVERYDAY: dict[str, set[str]] = {
    "a dog": DOGS,
    "a cat": {"chelsea.png"},
    "a bird": BIRDS,
    "an insect": INSECTS,
    "a horse": {"horse.png"},
    "an animal": DOGS | BIRDS | INSECTS | {"chelsea.png", "horse.png"},
    "a vehicle": JEEPS | {"motorcycle_left.png", "rocket.jpg"},
    "a car": JEEPS,
    "a motorbike": {"motorcycle_left.png"},
    "a building": {"imagenet_05_853.jpg", "imagenet_08_915.jpg"},  # thatched house, yurt
    "a tent": {"imagenet_08_915.jpg"},
    "food": {"imagenet_04_949.jpg", "coffee.png"},  # strawberries, a cup of coffee
    "fruit": {"imagenet_04_949.jpg", "imagenet_03_990.jpg"},  # strawberries, buckeyes
    "a drink": {"coffee.png"},
    "a person": PEOPLE,
    "a musical instrument": {"imagenet_10_541.jpg"},  # a drum
    "furniture": {"imagenet_01_559.jpg"},  # a folding chair
    "a shoe": {"imagenet_11_630.jpg"},  # a loafer
    "a weapon": {"imagenet_13_471.jpg"},  # a cannon
    "a carpet": {"imagenet_12_741.jpg"},  # a prayer rug
    "glassware": {"imagenet_02_438.jpg"},  # a beaker
    "coins": {"coins.png"},
    "the moon": {"moon.png"},
    "a camera": {"camera.png"},
}


def average_precision(ranked: Sequence[str], relevant: set[str]) -> float:
    """Mean of the precision at each relevant photo's rank, over all relevant photos."""
    found, total = 0, 0.0
    for rank, name in enumerate(ranked, start=1):
        if name in relevant:
            found += 1
            total += found / rank
    return total / len(relevant)


def evaluate(rankings: dict[str, Sequence[str]]) -> tuple[float, float, dict[str, float]]:
    """(mAP, share of queries whose first photo is right, AP per query) for rankings of
    every photo by each EVERYDAY query."""
    ap = {q: average_precision(rankings[q], relevant) for q, relevant in EVERYDAY.items()}
    first = sum(rankings[q][0] in relevant for q, relevant in EVERYDAY.items())
    return sum(ap.values()) / len(ap), first / len(EVERYDAY), ap
