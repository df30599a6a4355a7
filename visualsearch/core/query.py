"""Queries as values (text with -words, an image file, image bytes, a selection, an image
steered by text), how to run one against a collection, and the Back/Forward history.
No Qt: the window, the CLI and tests share it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from visualsearch.core.calibration import Calibration
from visualsearch.core.collection import Collection, Hit, Scorer, ranked_again, rescored
from visualsearch.core.encoders.base import l2_normalize
from visualsearch.core.sorting import in_folder


@dataclass(frozen=True)
class TextQuery:
    text: str

    def label(self) -> str:
        return f"“{self.text}”"


@dataclass(frozen=True)
class ImageQuery:
    """Images like the file at `path` (inside the collection or not); with `include_self`
    the image itself is listed too (first, when it is in the collection)."""

    path: Path
    include_self: bool = False

    def label(self) -> str:
        return f"like {self.path.name}"


@dataclass(frozen=True)
class ImageDataQuery:
    """Images like an image that is not a file, such as one pasted from the clipboard."""

    data: bytes = field(repr=False)
    name: str = "pasted image"

    def label(self) -> str:
        return f"like the {self.name}"


@dataclass(frozen=True)
class SelectionQuery:
    """ "More like these": images like the mean of several images of the collection."""

    paths: tuple[Path, ...]

    def label(self) -> str:
        return (
            f"like these {len(self.paths)}" if len(self.paths) > 1 else f"like {self.paths[0].name}"
        )


@dataclass(frozen=True)
class MixQuery:
    """An image query steered by text: "like this photo + at night"."""

    base: ImageQuery | ImageDataQuery | SelectionQuery
    text: str
    text_weight: float = 0.5

    def label(self) -> str:
        return f"{self.base.label()} + “{self.text}”"


Query = TextQuery | ImageQuery | ImageDataQuery | SelectionQuery | MixQuery

NEGATIVE_WEIGHT = 0.5  # how hard a "-word" pushes away; 1.0 would swamp the positive words


def parse_text(text: str) -> tuple[str, list[str]]:
    """'beach -people -"red car"' → ('beach', ['people', 'red car'])."""
    import shlex

    try:
        words = shlex.split(text)
    except ValueError:  # an unbalanced quote: take the words as they are
        words = text.split()
    positive = [w for w in words if not w.startswith("-") or w == "-"]
    negative = [w[1:].strip() for w in words if w.startswith("-") and len(w) > 1]
    return " ".join(positive), [w for w in negative if w]


class _Steered:
    """A text's scores steered away from its -words', as `text_vector` steers its vector."""

    def __init__(self, positive: Scorer, negative: list[Scorer]) -> None:
        self.positive, self.negative = positive, negative
        self.width = positive.width + sum(n.width for n in negative)

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        away = np.mean([n(vectors) for n in self.negative], axis=0)
        return self.positive(vectors) - NEGATIVE_WEIGHT * away


def text_scorer(collection: Collection, text: str) -> Scorer | None:
    """The encoder's finer scoring of a text query (None when it has none): its words,
    less its -words' as `text_vector` does."""
    positive, negative = parse_text(text)
    scorer = collection.text_scorer(positive) if positive else None
    if scorer is None or not negative:
        return scorer
    return _Steered(scorer, [collection.text_scorer(w) for w in negative])


def text_vector(encoder, text: str) -> np.ndarray:
    """The query vector of a text; words after a minus sign are steered away from."""
    positive, negative = parse_text(text)
    if not positive:
        raise ValueError(
            "empty text query"
            if not negative
            else "a query needs words to look for, not only -words"
        )
    vectors = encoder.embed_text([positive, *negative])
    vector = vectors[0]
    if negative:
        vector = vector - NEGATIVE_WEIGHT * vectors[1:].mean(0)
    return l2_normalize(vector)


@dataclass
class QueryResult:
    query: Query
    hits: list[Hit]
    seconds: float
    missing: int = 0  # hits dropped because their file is gone since the last index run
    best_score: float | None = None  # the best match, even when below the minimum score
    candidates: int = 0  # images the query was ranked against (its own images left out)
    more: bool = False  # matches beyond these hits: ask again with a larger k to see them


def query_vector(collection: Collection, query: Query) -> tuple[np.ndarray, set[str]]:
    """The unit query vector, and the collection's images the query is made of (left out)."""
    exclude: set[str] = set()
    if isinstance(query, TextQuery):
        return text_vector(collection.encoder, query.text), exclude
    if isinstance(query, ImageQuery):
        vector, rel = collection.image_vector(query.path)
        return vector, {rel} if rel is not None and not query.include_self else exclude
    if isinstance(query, ImageDataQuery):
        return collection.embed_image_bytes(query.data), exclude
    if isinstance(query, SelectionQuery):
        if not query.paths:
            raise ValueError("select some images first")
        vectors = []
        for path in query.paths:
            v, rel = collection.image_vector(path)
            vectors.append(v)
            if rel is not None:
                exclude.add(rel)
        mean = np.mean(vectors, axis=0)
        return l2_normalize(mean), exclude
    if isinstance(query, MixQuery):
        image, exclude = query_vector(collection, query.base)
        text = text_vector(collection.encoder, query.text)
        w = min(max(query.text_weight, 0.0), 1.0)
        mixed = (1.0 - w) * image + w * text
        return l2_normalize(mixed), exclude
    raise TypeError(f"unknown query {query!r}")


def run_query(
    collection: Collection,
    query: Query,
    k: int = 200,
    min_score: float | None = None,
    within: str = "",
    keep_missing: bool = False,
) -> QueryResult:
    """Run `query`; the images it is made of are left out, and so are files deleted since
    indexing (more are fetched when deleted files filled the top `k`). With `min_score`,
    weaker matches are dropped: the result may honestly be empty. `within` (a folder of
    the collection, "" = all) ranks only the images under it. `more` says whether
    matches were left out because of `k`. `keep_missing`: files not found are kept (an
    offline root's, answered from its store). When the collection knows its model's
    scale, hits score their match (0 to 1, core/calibration.py) and `min_score` is a
    match too; else both are cosines."""
    if k < 0:  # a slice from the end: "-k -1" showed all but the last matches
        raise ValueError(f"the number of results must be 0 or more, not {k}")
    started = time.perf_counter()
    vector, exclude = query_vector(collection, query)
    vector = np.asarray(vector)
    rescore = text_scorer(collection, query.text) if isinstance(query, TextQuery) else None
    if within:
        search, candidates = _ranking_within(collection, vector, within, exclude, rescore)
    else:
        candidates = len(collection) - sum(1 for rel in exclude if rel in collection)

        def search(want: int) -> list[Hit]:
            return collection.search_vector(vector, want, exclude=exclude, rescore=rescore)

    scale = collection.calibration
    match = None if scale is None else _Match(scale, isinstance(query, TextQuery))
    floor = None if min_score is None else match.cosine(min_score) if match else min_score
    want = k
    while True:
        hits = search(want)
        best = hits[0].score if hits else None
        if floor is not None:
            hits = [h for h in hits if h.score >= floor]
        kept = hits if keep_missing else [h for h in hits if os.path.exists(h.path)]
        exhausted = len(hits) < want or want >= candidates
        if len(kept) >= k or exhausted:
            break
        want = min(want * 4, candidates)
    missing = len(hits) - len(kept)
    more = len(kept) > k or not exhausted
    kept = kept[:k]
    if match is not None:
        best = None if best is None else float(match(np.array([best]))[0])
        matches = match(np.array([h.score for h in kept])).tolist() if kept else []
        kept = [Hit(0, h.path, m, h.score) for h, m in zip(kept, matches, strict=True)]
    kept = [Hit(i + 1, h.path, h.score, h.cosine) for i, h in enumerate(kept)]
    seconds = time.perf_counter() - started
    return QueryResult(query, kept, seconds, missing, best, candidates, more)


@dataclass(frozen=True)
class _Match:
    """A query's cosines read as matches (core/calibration.py), and back."""

    scale: Calibration
    text: bool

    def __call__(self, cosines: np.ndarray) -> np.ndarray:
        return self.scale.text(cosines) if self.text else self.scale.image(cosines)

    def cosine(self, match: float) -> float:
        return self.scale.text_cosine(match) if self.text else self.scale.image_cosine(match)


def _ranking_within(
    collection: Collection,
    vector: np.ndarray,
    folder: str,
    exclude: set[str],
    rescore: Scorer | None = None,
) -> tuple[Callable[[int], list[Hit]], int]:
    """An exact ranking of the images under `folder` (a product with their rows only:
    ~20 ms for 100,000 images; with `rescore`, its best `rescored` ranked again), and
    how many there are. A damaged vector's image is left out."""
    rows = np.array(
        [i for i, p in enumerate(collection.paths) if in_folder(p, folder) and p not in exclude],
        np.int64,
    )
    scores = collection.vectors_of(rows) @ vector.astype(np.float32) if len(rows) else np.zeros(0)
    order = np.argsort(-scores, kind="stable")
    order = order[np.isfinite(scores[order])]

    def search(want: int) -> list[Hit]:
        if rescore is None:
            top, top_scores = order[:want], scores[order[:want]]
        else:
            best = order[: rescored(want, rescore)]
            top, top_scores = ranked_again(best, collection.vectors_of(rows[best]), rescore)
        return [
            Hit(i + 1, collection.root / collection.paths[rows[j]], float(score))
            for i, (j, score) in enumerate(zip(top[:want], top_scores[:want].tolist(), strict=True))
        ]

    return search, len(rows)


class QueryHistory:
    """Back/Forward over queries, as in a web browser. `None` stands for "all images"."""

    def __init__(self) -> None:
        self._items: list[Query | None] = [None]
        self._pos = 0

    @property
    def current(self) -> Query | None:
        return self._items[self._pos]

    def push(self, query: Query | None) -> None:
        if query == self.current:
            return
        del self._items[self._pos + 1 :]
        self._items.append(query)
        self._pos += 1

    def can_go_back(self) -> bool:
        return self._pos > 0

    def can_go_forward(self) -> bool:
        return self._pos < len(self._items) - 1

    def back(self) -> Query | None:
        if self.can_go_back():
            self._pos -= 1
        return self.current

    def forward(self) -> Query | None:
        if self.can_go_forward():
            self._pos += 1
        return self.current

    def clear(self) -> None:
        self._items, self._pos = [None], 0
