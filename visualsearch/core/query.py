"""Queries as values (text, an image file, image bytes), how to run one against a
collection, and the Back/Forward history of them. No Qt: the window and tests share it."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from visualsearch.core.collection import Collection, Hit


@dataclass(frozen=True)
class TextQuery:
    text: str

    def label(self) -> str:
        return f"“{self.text}”"


@dataclass(frozen=True)
class ImageQuery:
    """Images like the file at `path` (inside the collection or not)."""

    path: Path

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


Query = TextQuery | ImageQuery | ImageDataQuery | SelectionQuery


@dataclass
class QueryResult:
    query: Query
    hits: list[Hit]
    seconds: float
    missing: int = 0  # hits dropped because their file is gone since the last index run


def run_query(
    collection: Collection, query: Query, k: int = 200, min_score: float | None = None
) -> QueryResult:
    """Run `query`; the query image itself is left out, and so are files deleted since indexing."""
    started = time.perf_counter()
    exclude: set[str] = set()
    if isinstance(query, TextQuery):
        if not query.text.strip():
            raise ValueError("empty text query")
        vector = collection.encoder.embed_text([query.text])[0]
    elif isinstance(query, ImageQuery):
        vector, rel = collection.image_vector(query.path)
        if rel is not None:
            exclude.add(rel)
    elif isinstance(query, ImageDataQuery):
        vector = collection.embed_image_bytes(query.data)
    elif isinstance(query, SelectionQuery):
        if not query.paths:
            raise ValueError("select some images first")
        vectors = []
        for path in query.paths:
            v, rel = collection.image_vector(path)
            vectors.append(v)
            if rel is not None:
                exclude.add(rel)
        vector = np.mean(vectors, axis=0)
    else:  # pragma: no cover - a new query type must be handled here
        raise TypeError(f"unknown query {query!r}")
    hits = collection.search_vector(np.asarray(vector), k, exclude=exclude, min_score=min_score)
    kept = [h for h in hits if os.path.exists(h.path)]
    kept = [Hit(i + 1, h.path, h.score) for i, h in enumerate(kept)]
    return QueryResult(query, kept, time.perf_counter() - started, len(hits) - len(kept))


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
