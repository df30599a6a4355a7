"""A collection ready for queries: the store's vectors for one model plus an index."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from visualsearch.core import imageio
from visualsearch.core.calibration import Calibration, calibration
from visualsearch.core.encoders.base import Encoder, ModelInfo, l2_normalize
from visualsearch.core.integrity import valid_vectors
from visualsearch.core.store import Store
from visualsearch.core.vector_file import LiveVectors
from visualsearch.core.vector_index import ANNOY_THRESHOLD, VectorIndex, open_index


class Scorer(Protocol):
    """Unit image vectors → their scores for a query, finer than one vector's cosine
    (the built-in model's text_scorer)."""

    width: int  # the cost of scoring one image (class rows it is compared with)

    def __call__(self, vectors: np.ndarray) -> np.ndarray: ...


# Candidates a Scorer ranks again: at least RESCORED, and as many as RESCORE_BUDGET
# image × class-row cosines allow up to RESCORED_MAX (2,000 against the 398 classes of
# "an animal" took 12–23 ms here, 2 cores). A small collection is ranked whole; beyond
# RESCORED_MAX, an image the query vector ranks lower than that is not found.
RESCORED = 2000
RESCORE_BUDGET = 4_000_000
RESCORED_MAX = 20_000


def rescored(want: int, scorer: Scorer) -> int:
    """How many of the best candidates `scorer` ranks again when `want` are asked for:
    the same for every `want` up to it, so asking for more never reorders the first."""
    return max(want, RESCORED, min(RESCORED_MAX, RESCORE_BUDGET // max(scorer.width, 1)))


def ranked_again(rows: np.ndarray, vectors: np.ndarray, rescore: Scorer):
    """`rows` ordered by the scores `rescore` gives their `vectors`, and those scores;
    a row whose score is not a number (a damaged vector) is left out."""
    scores = rescore(vectors)
    order = np.argsort(-scores, kind="stable")
    order = order[np.isfinite(scores[order])]
    return rows[order], scores[order]


@dataclass(frozen=True)
class Hit:
    rank: int  # 1-based
    path: Path  # absolute
    score: float  # cosine similarity (1.0 = same direction), or a query's match (0 to 1)
    cosine: float | None = None  # beside a match: the cosine it was read from

    def as_dict(self) -> dict:
        found = {"rank": self.rank, "path": str(self.path), "score": round(self.score, 6)}
        if self.cosine is not None:
            found["cosine"] = round(self.cosine, 6)
        return found


class NotIndexed(RuntimeError):
    pass


class Collection:
    """Read-only view for searching; open it after indexing.

    The vectors stay on disk (a memory-mapped `VectorFile`); opening reads the catalog's
    paths, appends the vectors of new contents to the file and maps the index segments
    that the background maintenance built. `index_threshold` is where segments take over
    from exact search.
    """

    def __init__(
        self,
        root: Path,
        store: Store,
        encoder: Encoder | ModelInfo,
        index_threshold: int = ANNOY_THRESHOLD,
        cache_dir: Path | None = None,
    ) -> None:
        """A `ModelInfo` in place of the encoder serves what needs only the stored
        vectors (not text queries or images from outside). With `cache_dir` (where the
        model's reference vectors are cached), queries score matches, not cosines."""
        self.root = Path(root).expanduser().resolve()
        self.store = store
        self.encoder = encoder
        self.generation = store.generation
        found = LiveVectors(store, encoder.id, encoder.dim)
        self.vectors = found.file
        self.paths: list[str] = found.paths
        self.rows = found.rows  # each path's row in the vector file
        self._row_of: dict[str, int] | None = None  # made on first use (0.9 s at 1M)
        # path rows ordered by vector-file row: a hit (a row) → the paths holding it
        self.by_row = np.argsort(self.rows, kind="stable")
        self.sorted_rows = self.rows[self.by_row]
        self.live_rows = found.unique_rows()
        self.index: VectorIndex = open_index(store, self.vectors, self.live_rows, index_threshold)
        self._cache_dir = cache_dir
        self._calibration: Calibration | bool | None = False  # False: not looked up yet

    @property
    def calibration(self) -> Calibration | None:
        """The model's scale (core/calibration.py), looked up on first use: None when
        the collection was opened without a cache folder or with no encoder."""
        if self._calibration is False:
            usable = self._cache_dir is not None and not isinstance(self.encoder, ModelInfo)
            self._calibration = calibration(self.encoder, self._cache_dir) if usable else None
        return self._calibration

    @property
    def _row(self) -> dict[str, int]:
        if self._row_of is None:
            self._row_of = {p: i for i, p in enumerate(self.paths)}
        return self._row_of

    def vectors_of(self, path_rows: np.ndarray) -> np.ndarray:
        """Float32 vectors of some paths (by their index in `paths`)."""
        return self.vectors.read(self.rows[np.asarray(path_rows, np.int64)])

    def path_rows(self, rows: np.ndarray) -> list[np.ndarray]:
        """For each vector-file row, the indices in `paths` of the files holding it."""
        lo = np.searchsorted(self.sorted_rows, rows, "left")
        hi = np.searchsorted(self.sorted_rows, rows, "right")
        return [self.by_row[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]

    def __len__(self) -> int:
        return len(self.paths)

    def __contains__(self, rel: object) -> bool:
        """Whether the catalog key `rel` has a vector in this collection."""
        return rel in self._row

    def relative(self, path: Path) -> str | None:
        """The catalog key of `path` if it lies inside the collection."""
        try:
            rel = Path(os.path.abspath(Path(path).expanduser())).relative_to(self.root)
        except ValueError:
            try:
                rel = Path(path).expanduser().resolve().relative_to(self.root)
            except ValueError:
                return None
        return rel.as_posix()

    def search_vector(
        self,
        query: np.ndarray,
        k: int = 20,
        exclude: set[str] | None = None,
        min_score: float | None = None,
        rescore: Scorer | None = None,
    ) -> list[Hit]:
        """Nearest images to a unit query vector; with `rescore`, the best candidates
        (`rescored` of them) ranked again by the scores it gives their vectors."""
        if len(self.paths) == 0:
            raise NotIndexed(f"no images indexed with {self.encoder.id} in {self.root}")
        exclude = exclude or set()
        q = l2_normalize(np.asarray(query, np.float32).reshape(-1))
        want = k + len(exclude)
        rows, scores = self.index.search(q, rescored(want, rescore) if rescore else want)
        if rescore is not None:
            rows, scores = ranked_again(*self.vectors.read_sound(rows), rescore)
        hits: list[Hit] = []
        for holders, score in zip(self.path_rows(rows), scores.tolist(), strict=True):
            if min_score is not None and score < min_score:
                break
            for i in holders.tolist():
                rel = self.paths[i]
                if rel not in exclude and len(hits) < k:
                    hits.append(Hit(len(hits) + 1, self.root / rel, float(score)))
            if len(hits) == k:
                break
        return hits

    def search_text(self, text: str, k: int = 20, min_score: float | None = None) -> list[Hit]:
        if not text.strip():
            raise ValueError("empty text query")
        vector = self.encoder.embed_text([text])[0]
        return self.search_vector(vector, k, min_score=min_score, rescore=self.text_scorer(text))

    def text_scorer(self, text: str) -> Scorer | None:
        """The encoder's finer scoring of `text`, if it has one (the built-in model)."""
        make = getattr(self.encoder, "text_scorer", None)
        return make(text) if make is not None else None

    def image_vector(self, path: Path) -> tuple[np.ndarray, str | None]:
        """The vector of any image file: stored if it is in the collection, else encoded now."""
        rel = self.relative(path)
        if rel is not None and rel in self._row:
            record = self.store.record(rel)
            st = os.stat(self.root / rel)
            if record and record.size == st.st_size and record.mtime_ns == st.st_mtime_ns:
                stored = self.vectors_of(np.array([self._row[rel]]))
                if valid_vectors(stored)[0]:  # else damaged: encoded from the file below
                    return stored[0], rel
        return self.embed_image_bytes(imageio.read_bytes(path)), rel

    def embed_image_bytes(self, data: bytes) -> np.ndarray:
        """The vector of an encoded image that is not a file (pasted from the clipboard)."""
        decoded = imageio.decode(data, min_side=self.encoder.input_size)
        pixels = self.encoder.preprocess(decoded.image)[None]
        return self.encoder.embed_images(pixels)[0]

    def similar_to(self, path: Path, k: int = 20, include_self: bool = False) -> list[Hit]:
        """Images most like the image at `path`, which may live outside the collection."""
        vector, rel = self.image_vector(path)
        exclude = {rel} if rel is not None and not include_self else set()
        return self.search_vector(vector, k, exclude=exclude)
