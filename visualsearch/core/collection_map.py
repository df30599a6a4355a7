"""A collection's map: layout, clusters and their names, cached in its store per model
and recomputed only when the collection changed (or another k is asked for)."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path

import numpy as np

from visualsearch.core import analysis
from visualsearch.core.calibration import calibration
from visualsearch.core.encoders.base import save_npz
from visualsearch.core.encoders.vocabulary import zero_shot_vocabulary
from visualsearch.core.integrity import MAX_SIMILARITY
from visualsearch.core.progress import NullProgress, Progress
from visualsearch.core.store import Store, slug
from visualsearch.core.vector_file import DamagedRows, LiveVectors, RowVectors

log = logging.getLogger(__name__)

# 6: the paths laid out, so that new images can be placed among them; 7: those paths as
# UTF-8 bytes (fixed-width text took 240 MB for 1M paths), and each image's similarity to
# its cluster's centre (a pass over every vector: 5 s of the 14 s a placement took at 1M)
CACHE_VERSION = 7
# New images are placed on the existing map (beside their nearest laid-out neighbours,
# in their nearest cluster) while the images added and removed since the last layout
# stay below this share of the collection; beyond it, or on request, it is laid out again.
PLACE_SHARE = 0.2
# new images are placed among at most this many laid-out ones, as a layout places the
# images it did not fit UMAP on among its sample
PLACE_AMONG = analysis.LAYOUT_SAMPLE
CLUSTER_LINK_SLACK = 0.05
# A name the user gave goes to the cluster that shares at least this much (Jaccard) with
# the images it was given to; with less, no cluster is theirs any more.
NAME_OVERLAP = 0.5


@dataclass
class CollectionMap:
    paths: list[str]  # catalog paths, in the store's order
    vectors: RowVectors  # (n, dim), read from the vector file when indexed
    coords: np.ndarray  # (n, 2) layout
    clustering: analysis.Clustering
    suggested: list[str]  # names from the model's vocabulary
    names: list[str]  # what the user sees: their own name where they gave one
    representatives: list[list[int]]  # rows closest to each centre
    scores: np.ndarray  # (n,) similarity to the image's cluster centre
    lost_names: list[str] = field(default_factory=list)  # user names no cluster took now
    placed: int = 0  # images placed among the others since the last full layout

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
    relayout: bool = False,
) -> CollectionMap:
    """The map of everything indexed with `encoder` in `store`, from cache when current.
    Images added since the cached map are placed on it, not laid out again (see
    PLACE_SHARE); `relayout` lays everything out and clusters it again.

    A row of the vector file found damaged on the way is forgotten, and the map is made
    once more: its content comes back from the catalog's copy (or, if that is damaged
    too, the image is left out until the next run encodes it again)."""
    try:
        return _build_map(store, encoder, cache_dir, k, progress, relayout)
    except DamagedRows as exc:
        log.warning("%s; making the map again with them read from the catalog", exc)
        return _build_map(store, encoder, cache_dir, k, progress, relayout)


def _build_map(
    store: Store,
    encoder,
    cache_dir: Path,
    k: int | None,
    progress: Progress | None,
    relayout: bool,
) -> CollectionMap:
    progress = progress or NullProgress()
    live = LiveVectors(store, encoder.id, encoder.dim)
    paths, vectors, content = live.paths, live.vectors, live.key()
    cached = _load_cache(store, encoder.id)
    if cached is not None and cached["centres"].shape[1] != encoder.dim:
        cached = None  # centres of another size: not this model's map
    # keyed by the content, not by the store's change counter: a reset catalog counts from 0
    fresh = cached is not None and cached["content"] == content and cached["n"] == len(paths)
    reduced = functools.cache(lambda: analysis.reduce(vectors))  # for a layout and k-means
    placed_labels = placed_scores = None
    if fresh and not relayout:
        coords, placed = cached["coords"], cached["placed"]
    elif not relayout and (update := _placed(cached, paths, vectors)) is not None:
        progress.report(0, 3, "Placing the new images on the map…")
        coords, placed_labels, placed_scores, placed = update
    else:
        progress.report(0, 3, f"Laying out {len(paths):,} images…")
        coords, placed = analysis.layout_2d(vectors, reduced=reduced() if paths else None), 0
    if progress.cancelled():
        raise InterruptedError("cancelled")

    same_k = cached is not None and (
        (k is None and cached["auto"] and cached["rule"] == analysis.K_RULE)
        or (k is not None and cached["k"] == k)
    )
    reused = fresh and same_k and not relayout
    scores = None
    if reused:
        clustering = analysis.Clustering(cached["labels"], cached["centres"], cached["auto"])
        scores = cached["scores"]
    elif placed_labels is not None and same_k:
        clustering = analysis.Clustering(placed_labels, cached["centres"], cached["auto"])
        scores = placed_scores
    else:
        progress.report(1, 3, "Finding clusters…")
        previous = cached["centres"] if cached is not None else None
        threshold = encoder.near_duplicate_threshold
        clustering = analysis.cluster(
            vectors,
            k=k,
            previous_centres=previous,
            # looser than for duplicates: two photos this alike belong in one cluster
            # anyway, and harder edits (crop + resize + JPEG q40: 0.75) stay with theirs
            must_link=threshold - CLUSTER_LINK_SLACK,
            reduced=reduced() if len(paths) > analysis.KMEANS_EXACT_LIMIT else None,
        )

    progress.report(2, 3, "Naming clusters…")
    if scores is None:
        scores = analysis.centre_scores(vectors, clustering)
    suggested = []
    if clustering.k:
        vocabulary = zero_shot_vocabulary(encoder, cache_dir)
        scale = calibration(encoder, cache_dir)
        suggested = analysis.name_clusters(clustering, vocabulary, scale)
    if not reused:
        _save_cache(store, encoder.id, content, paths, coords, clustering, scores, placed)
    names, lost = _apply_user_names(store, encoder.id, paths, clustering, suggested, cached, fresh)
    progress.report(3, 3, "Map ready")
    return CollectionMap(
        paths,
        vectors,
        coords,
        clustering,
        suggested,
        names,
        analysis.representatives(vectors, clustering, scores=scores),
        scores,
        lost,
        placed,
    )


def _placed(
    cached: dict | None, paths: list[str], vectors: RowVectors
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """The cached layout with the images added since placed on it and those gone left
    out: (coords, labels, similarities to their cluster's centre, images placed since
    the last layout), or None when the change
    is too large for that (PLACE_SHARE) or there is nothing to place among. They are
    placed among at most PLACE_AMONG laid-out images, spread evenly over the map."""
    if cached is None or cached["paths"] is None:
        return None
    where = dict(zip(cached["paths"], range(len(cached["paths"])), strict=True))
    old_rows = np.fromiter(map(where.get, paths, repeat(-1)), np.int64, len(paths))
    kept = old_rows >= 0
    added = int((~kept).sum())
    changed = added + (len(where) - int(kept.sum()))
    if kept.sum() < 4 or changed > PLACE_SHARE * max(len(paths), 1):
        return None
    coords = np.empty((len(paths), 2), np.float32)
    coords[kept] = cached["coords"][old_rows[kept]]
    labels = np.empty(len(paths), np.int64)
    labels[kept] = cached["labels"][old_rows[kept]]
    scores = np.empty(len(paths), np.float32)
    scores[kept] = cached["scores"][old_rows[kept]]
    if added:
        new, among = np.flatnonzero(~kept), np.flatnonzero(kept)
        if len(among) > PLACE_AMONG:
            among = among[np.linspace(0, len(among) - 1, PLACE_AMONG).astype(np.int64)]
        added_vectors = vectors[new]
        coords[new] = analysis.place(vectors[among], coords[among], added_vectors)
        similar = added_vectors @ cached["centres"].T
        labels[new] = np.argmax(similar, axis=1)
        scores[new] = similar.max(axis=1)
    return coords, labels, scores, cached["placed"] + added


def rename_cluster(
    store: Store,
    model: str,
    k: int,
    cluster: int,
    name: str,
    members: Sequence[str] | None = None,
) -> None:
    """Keep the user's name for a cluster with the paths of its images, `members` (read
    from the cached map when not given): the name follows those images into whichever
    cluster holds them after the map is computed again (see build_map). An empty name
    gives the cluster its suggested name back."""
    if members is None:
        members = _cached_members(store, model, k, cluster)
    chosen = set(members)
    key = _names_key(model)
    for _attempt in range(5):  # a map being named meanwhile never loses this name
        raw = store.get_meta(key)
        entries = [  # a name given to the same images before is replaced
            e for e in _entries(raw) if _jaccard(set(e["members"]), chosen) < NAME_OVERLAP
        ]
        if name.strip() and chosen:
            entries.append({"name": name.strip(), "members": sorted(chosen)})
        if store.replace_meta(key, raw, json.dumps({"entries": entries})):
            return
    raise RuntimeError("the cluster names kept changing while saving; try again")


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def _entries(raw: str | None) -> list[dict]:
    """The stored names, [{"name", "members"}] in the order given; names saved by number
    (before names followed their images) are left to build_map, which can still place
    them once."""
    try:
        own = json.loads(raw or "{}")
    except ValueError:
        return []
    entries = own.get("entries") if isinstance(own, dict) else None
    if not isinstance(entries, list):
        return []
    return [
        e
        for e in entries
        if isinstance(e, dict)
        and isinstance(e.get("name"), str)
        and isinstance(e.get("members"), list)
    ]


def _cached_members(store: Store, model: str, k: int, cluster: int) -> list[str]:
    """The paths of a cluster of the cached map (for callers that do not pass them)."""
    cached = _load_cache(store, model)
    if cached is None or cached["k"] != k:
        return []
    dim = store.vector_dim(model)
    if dim is None or cached["centres"].shape[1] != dim:
        return []
    live = LiveVectors(store, model, dim)
    if cached["content"] != live.key() or cached["n"] != len(live.paths):
        return []
    return [live.paths[r] for r in np.flatnonzero(cached["labels"] == cluster)]


def _apply_user_names(
    store: Store,
    model: str,
    paths: list[str],
    clustering: analysis.Clustering,
    suggested: list[str],
    cached: dict | None,
    fresh: bool,
) -> tuple[list[str], list[str]]:
    """What each cluster is called, and the user's names that no cluster took.

    Each name goes to the cluster that shares the most with the images it was given to
    (Jaccard, at least NAME_OVERLAP), best matches first, one name per cluster; those
    images then become the ones the name follows. A name that matches no cluster is kept
    in the store (it comes back when a later map has those images together again),
    unless most of its images are gone from the collection.
    """
    for _attempt in range(5):  # a rename saved meanwhile is placed, never overwritten
        raw = store.get_meta(_names_key(model))
        names, lost, new = _place_user_names(raw, paths, clustering, suggested, cached, fresh)
        if new is None or store.replace_meta(_names_key(model), raw, new):
            break
    return names, lost


def _place_user_names(
    raw: str | None,
    paths: list[str],
    clustering: analysis.Clustering,
    suggested: list[str],
    cached: dict | None,
    fresh: bool,
) -> tuple[list[str], list[str], str | None]:
    """The names as _apply_user_names places them, and the stored value to write (None
    when it is unchanged)."""
    names = list(suggested)
    entries = _entries(raw)
    if raw and not entries:
        entries = _numbered_names(raw, paths, cached, fresh)
    if not entries:
        return names, [], None
    row_of = {p: i for i, p in enumerate(paths)}
    sizes = clustering.sizes()
    pairs, gone = [], set()
    for e, entry in enumerate(entries):
        members = set(entry["members"])
        rows = [row_of[p] for p in members if p in row_of]
        if len(rows) < NAME_OVERLAP * len(members):
            gone.add(e)
        shared = np.bincount(clustering.labels[rows], minlength=clustering.k)
        jaccard = shared / np.maximum(len(members) + sizes - shared, 1)
        pairs += [(float(jaccard[c]), e, c) for c in np.flatnonzero(jaccard >= NAME_OVERLAP)]
    taken_entries, taken_clusters, changed = set(), set(), False
    for _, e, c in sorted(pairs, key=lambda t: (-t[0], -t[1])):  # ties: the latest name
        if e in taken_entries or c in taken_clusters:
            continue
        taken_entries.add(e)
        taken_clusters.add(c)
        names[c] = entries[e]["name"]
        now = sorted(paths[r] for r in np.flatnonzero(clustering.labels == c))
        if now != sorted(entries[e]["members"]):
            entries[e] = {"name": entries[e]["name"], "members": now}
            changed = True
    lost = [entry["name"] for e, entry in enumerate(entries) if e not in taken_entries]
    entries = [entry for e, entry in enumerate(entries) if e in taken_entries or e not in gone]
    new = json.dumps({"entries": entries})
    return names, lost, new if changed or raw != new else None


def _numbered_names(raw: str, paths: list[str], cached: dict | None, fresh: bool) -> list[dict]:
    """Names saved by cluster number (the former format), as names of the images that
    cluster held in the cached map; without a current cache they cannot be placed."""
    try:
        own = json.loads(raw)
    except ValueError:
        return []
    if not (isinstance(own, dict) and isinstance(own.get("names"), dict)):
        return []
    if not fresh or cached is None or own.get("k") != cached["k"]:
        return []
    out = []
    for i, name in own["names"].items():
        if str(i).isdigit() and isinstance(name, str) and name.strip():
            rows = np.flatnonzero(cached["labels"] == int(i))
            out.append({"name": name.strip(), "members": [paths[r] for r in rows]})
    return out


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
                "scores": data["scores"],
                "centres": data["centres"],
                "auto": bool(data["auto"]),
                "rule": int(data["rule"]) if "rule" in data.files else 1,
                "k": len(data["centres"]),
                "paths": _paths_from_bytes(data["paths"]),
                "placed": int(data["placed"]),
            }
            if _sound(cache):
                return cache
    except FileNotFoundError:
        return None
    except Exception as exc:  # a torn or garbled file: zipfile, zlib, numpy header errors…
        log.warning("map cache %s is damaged (%s); it is computed again", path.name, exc)
        return None
    log.warning("map cache %s does not hold a whole map; it is computed again", path.name)
    return None


def _sound(cache: dict) -> bool:
    """Arrays of the kinds and shapes a map has, with values a map can hold."""
    n, k = cache["n"], cache["k"]
    coords, labels, scores, centres = (cache[a] for a in ("coords", "labels", "scores", "centres"))
    if not (
        coords.dtype.kind == "f"
        and scores.dtype.kind == "f"
        and centres.dtype.kind == "f"
        and labels.dtype.kind in "iu"
        and len(cache["paths"]) == n
        and coords.shape == (n, 2)
        and labels.shape == (n,)
        and scores.shape == (n,)
        and centres.ndim == 2
    ):
        return False
    return bool(
        np.isfinite(coords).all()
        and np.isfinite(centres).all()
        and np.all(np.abs(scores) <= MAX_SIMILARITY)
        and (not n or 0 <= labels.min() <= labels.max() < k)
    )


def _paths_as_bytes(paths: list[str]) -> np.ndarray:
    """Paths as one array of UTF-8 bytes, each ended by NUL (a name never holds one);
    names that are not UTF-8 keep their bytes (surrogate escapes)."""
    joined = "".join(p + "\0" for p in paths).encode("utf-8", "surrogateescape")
    return np.frombuffer(joined, np.uint8)


def _paths_from_bytes(data: np.ndarray) -> list[str]:
    text = data.astype(np.uint8).tobytes().decode("utf-8", "surrogateescape")
    return text.split("\0")[:-1]


def _save_cache(store, model, content, paths, coords, clustering, scores, placed=0) -> None:
    save_npz(
        _cache_path(store, model),
        version=CACHE_VERSION,
        content=content,
        n=len(paths),
        paths=_paths_as_bytes(paths),
        placed=placed,
        coords=coords,
        labels=clustering.labels,
        scores=scores,
        centres=clustering.centres,
        auto=clustering.auto,
        rule=analysis.K_RULE,
    )
