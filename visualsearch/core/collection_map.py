"""A collection's map: layout, clusters and their names, cached in its store per model
and recomputed only when the collection changed (or another k is asked for)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from visualsearch.core import analysis
from visualsearch.core.encoders.vocabulary import zero_shot_vocabulary
from visualsearch.core.progress import NullProgress, Progress
from visualsearch.core.store import Store, slug

log = logging.getLogger(__name__)

CACHE_VERSION = 5
CLUSTER_LINK_SLACK = 0.05


@dataclass
class CollectionMap:
    paths: list[str]  # catalog paths, in the store's order
    vectors: np.ndarray  # (n, dim), for "more like these" and representatives
    coords: np.ndarray  # (n, 2) layout
    clustering: analysis.Clustering
    suggested: list[str]  # names from the model's vocabulary
    names: list[str]  # what the user sees: their own name where they gave one
    representatives: list[list[int]]  # rows closest to each centre
    scores: np.ndarray  # (n,) similarity to the image's cluster centre

    @property
    def labels(self) -> np.ndarray:
        return self.clustering.labels

    def members(self, cluster: int) -> list[int]:
        return np.flatnonzero(self.clustering.labels == cluster).tolist()


def _cache_path(store: Store, model: str) -> Path:
    return store.directory / f"map-{slug(model)}.npz"


def _names_key(model: str) -> str:
    return f"cluster_names:{model}"


def build_map(
    store: Store,
    encoder,
    cache_dir: Path,
    k: int | None = None,
    progress: Progress | None = None,
) -> CollectionMap:
    """The map of everything indexed with `encoder` in `store`, from cache when current."""
    progress = progress or NullProgress()
    loaded = store.load_vector_set(encoder.id, encoder.dim)
    paths, vectors = loaded.paths, loaded.matrix
    cached = _load_cache(store, encoder.id)
    # keyed by the content, not by the store's change counter: a reset catalog counts from 0
    fresh = cached is not None and cached["content"] == loaded.key and cached["n"] == len(paths)

    if fresh:
        coords = cached["coords"]
    else:
        progress.report(0, 3, f"Laying out {len(paths):,} images…")
        coords = analysis.layout_2d(vectors)
    if progress.cancelled():
        raise InterruptedError("cancelled")

    same_k = cached is not None and (
        (k is None and cached["auto"]) or (k is not None and cached["k"] == k)
    )
    reused = fresh and same_k
    if reused:
        clustering = analysis.Clustering(cached["labels"], cached["centres"], cached["auto"])
    else:
        progress.report(1, 3, "Finding clusters…")
        previous = cached["centres"] if cached is not None else None
        threshold = getattr(encoder, "near_duplicate_threshold", None)
        clustering = analysis.cluster(
            vectors,
            k=k,
            previous_centres=previous,
            # looser than for duplicates: two photos this alike belong in one cluster
            # anyway, and harder edits (crop + resize + JPEG q40: 0.75) stay with theirs
            must_link=None if threshold is None else threshold - CLUSTER_LINK_SLACK,
        )

    progress.report(2, 3, "Naming clusters…")
    vocabulary = zero_shot_vocabulary(encoder, cache_dir)
    suggested = analysis.name_clusters(clustering, vocabulary) if clustering.k else []
    if not reused:
        _save_cache(store, encoder.id, loaded.key, len(paths), coords, clustering)
    names = list(suggested)
    own = json.loads(store.get_meta(_names_key(encoder.id)) or "{}")
    if own.get("k") == clustering.k:
        for i, name in own.get("names", {}).items():
            if int(i) < len(names) and name.strip():
                names[int(i)] = name.strip()
    progress.report(3, 3, "Map ready")
    return CollectionMap(
        paths,
        vectors,
        coords,
        clustering,
        suggested,
        names,
        analysis.representatives(vectors, clustering),
        analysis.centre_scores(vectors, clustering) if len(paths) else np.zeros(0, np.float32),
    )


def rename_cluster(store: Store, model: str, k: int, cluster: int, name: str) -> None:
    """Keep the user's name for a cluster; it holds while k stays the same (clusters keep
    their numbers across small changes of the collection, see analysis.cluster)."""
    own = json.loads(store.get_meta(_names_key(model)) or "{}")
    if own.get("k") != k:
        own = {"k": k, "names": {}}
    own["names"][str(cluster)] = name
    store.set_meta(_names_key(model), json.dumps(own))


def _load_cache(store: Store, model: str) -> dict | None:
    """The cached map, or None when there is none or it is damaged (then it is rebuilt)."""
    path = _cache_path(store, model)
    try:
        # our own file object: np.load leaks the one it opens when a damaged .npz fails
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as data:
            if int(data["version"]) != CACHE_VERSION:
                return None
            cache = {
                "content": str(data["content"]),
                "n": int(data["n"]),
                "coords": data["coords"],
                "labels": data["labels"],
                "centres": data["centres"],
                "auto": bool(data["auto"]),
                "k": len(data["centres"]),
            }
    except FileNotFoundError:
        return None
    except Exception as exc:  # a torn or garbled file: zipfile, zlib, numpy header errors…
        log.warning("map cache %s is damaged (%s); it is computed again", path.name, exc)
        return None
    n, k = cache["n"], cache["k"]
    if (
        cache["coords"].shape != (n, 2)
        or cache["labels"].shape != (n,)
        or not np.isfinite(cache["coords"]).all()
        or (n and not 0 <= cache["labels"].min() <= cache["labels"].max() < k)
    ):
        return None
    return cache


def _save_cache(store, model, content, n, coords, clustering) -> None:
    """Written under a name of its own, then renamed: concurrent saves never mix."""
    path = _cache_path(store, model)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(
                fh,
                version=CACHE_VERSION,
                content=content,
                n=n,
                coords=coords,
                labels=clustering.labels,
                centres=clustering.centres,
                auto=clustering.auto,
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
