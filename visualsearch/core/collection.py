"""A collection ready for queries: the store's vectors for one model plus an index."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from visualsearch.core import imageio
from visualsearch.core.encoders.base import Encoder, l2_normalize
from visualsearch.core.store import Store
from visualsearch.core.vector_index import ANNOY_THRESHOLD, VectorIndex, open_index


@dataclass(frozen=True)
class Hit:
    rank: int  # 1-based
    path: Path  # absolute
    score: float  # cosine similarity, 1.0 = same direction

    def as_dict(self) -> dict:
        return {"rank": self.rank, "path": str(self.path), "score": round(self.score, 6)}


class NotIndexed(RuntimeError):
    pass


class Collection:
    """Read-only view for searching; open it after indexing.

    `index_threshold` is where Annoy takes over from exact search; the window passes
    a huge one while an indexing run is still adding vectors, so that a query during
    the run never waits for an Annoy build.
    """

    def __init__(
        self, root: Path, store: Store, encoder: Encoder, index_threshold: int = ANNOY_THRESHOLD
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        self.store = store
        self.encoder = encoder
        self.generation = store.generation
        vectors = store.load_vector_set(encoder.id, encoder.dim)
        self.paths, self.matrix = vectors.paths, vectors.matrix
        self._row = {p: i for i, p in enumerate(self.paths)}
        self.index: VectorIndex = open_index(store, encoder.id, vectors, threshold=index_threshold)

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
    ) -> list[Hit]:
        """Nearest images to a unit query vector."""
        if len(self.paths) == 0:
            raise NotIndexed(f"no images indexed with {self.encoder.id} in {self.root}")
        exclude = exclude or set()
        q = l2_normalize(np.asarray(query, np.float32).reshape(-1))
        rows, scores = self.index.search(q, k + len(exclude))
        hits = []
        for row, score in zip(rows, scores, strict=True):
            rel = self.paths[int(row)]
            if rel in exclude:
                continue
            if min_score is not None and score < min_score:
                break
            hits.append(Hit(len(hits) + 1, self.root / rel, float(score)))
            if len(hits) == k:
                break
        return hits

    def search_text(self, text: str, k: int = 20, min_score: float | None = None) -> list[Hit]:
        if not text.strip():
            raise ValueError("empty text query")
        return self.search_vector(self.encoder.embed_text([text])[0], k, min_score=min_score)

    def image_vector(self, path: Path) -> tuple[np.ndarray, str | None]:
        """The vector of any image file: stored if it is in the collection, else encoded now."""
        rel = self.relative(path)
        if rel is not None and rel in self._row:
            record = self.store.record(rel)
            st = os.stat(self.root / rel)
            if record and record.size == st.st_size and record.mtime_ns == st.st_mtime_ns:
                return self.matrix[self._row[rel]], rel
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
