"""Arrays in, arrays out: a 2-D layout (UMAP), clusters (k-means), their names from
the model's zero-shot vocabulary, and representatives. No store, no Qt.

`vectors` may be a numpy array or any array-like that reads rows when indexed (a
`vector_file.RowVectors`): above a few tens of thousands of images everything here goes
through them in chunks, so a million images never sit in memory as float32.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from visualsearch.core.calibration import CONFIDENT, TAG, Calibration
from visualsearch.core.encoders.base import l2_normalize
from visualsearch.core.encoders.vocabulary import Vocabulary
from visualsearch.core.neighbours import knn, linked_groups, similar_pairs

PCA_DIMS = 50  # UMAP's neighbour search on 50 PCA dims instead of 1280: same map, 10x less work
LAYOUT_SAMPLE = 20_000  # above this many images UMAP is fitted on a sample (see layout_2d)
LAYOUT_NEIGHBOURS = 15
LAYOUT_EPOCHS = 200  # UMAP's own choice above 10,000 points; enough for a browsing map
KMEANS_EXACT_LIMIT = 20_000  # above: MiniBatchKMeans
MUST_LINK_LIMIT = 20_000  # above, near-duplicates are not pre-grouped before clustering
K_SAMPLE = 2_000  # vectors used to choose k
PCA_FIT_SAMPLE = 50_000  # above: PCA is fitted on this many vectors and applied in chunks
CHUNK = 16_384  # vectors read at once (84 MB of float32 at 1280-d)


def chunks(vectors, size: int | None = None):
    """(first row, float32 rows) for consecutive blocks of `vectors` (CHUNK rows)."""
    size = size or CHUNK
    for lo in range(0, len(vectors), size):
        yield lo, np.asarray(vectors[lo : lo + size], np.float32)


def reduce(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """Unit vectors projected on their first principal components, re-normalised."""
    n, dim = vectors.shape
    dims = min(PCA_DIMS, n - 1, dim)
    if dims < 2:
        return l2_normalize(np.asarray(vectors, np.float32))
    from sklearn.decomposition import PCA

    pca = PCA(dims, random_state=seed)
    if n <= PCA_FIT_SAMPLE:
        return l2_normalize(pca.fit_transform(np.asarray(vectors, np.float32)).astype(np.float32))
    pca.fit(vectors[np.linspace(0, n - 1, PCA_FIT_SAMPLE).astype(np.int64)])
    reduced = np.empty((n, dims), np.float32)
    for lo, chunk in chunks(vectors):
        reduced[lo : lo + len(chunk)] = pca.transform(chunk)
    return l2_normalize(reduced)


def _knn(data: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows of `data` (unit rows) for each query, with Euclidean distances."""
    idx, sims = knn(data, queries, k)
    return idx, np.sqrt(np.clip(2.0 - 2.0 * sims, 0.0, None))


def layout_2d(
    vectors: np.ndarray,
    seed: int = 0,
    sample_limit: int = LAYOUT_SAMPLE,
    reduced: np.ndarray | None = None,
) -> np.ndarray:
    """(n, 2) UMAP coordinates: seeded, PCA-initialised, on PCA-reduced vectors.

    The neighbour graph is computed exactly here and handed to UMAP: its own
    approximate search (pynndescent) spent ~35 s compiling on every start. Above
    `sample_limit` images UMAP is fitted on a random sample and every other image
    is placed at the distance-weighted mean of its nearest sampled neighbours,
    which keeps 100,000 images within seconds and memory bounded. `reduced`: `reduce`'s
    answer, when the caller has it.
    """
    n = len(vectors)
    if n == 0:
        return np.zeros((0, 2), np.float32)
    if n < 4:  # UMAP needs a few points; a line is honest for two or three
        return np.column_stack([np.arange(n), np.zeros(n)]).astype(np.float32)
    reduced = reduce(vectors, seed) if reduced is None else reduced
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, sample_limit, replace=False)) if n > sample_limit else None
    fit = reduced if sample is None else reduced[sample]
    k = min(LAYOUT_NEIGHBOURS, len(fit) - 1)
    knn_idx, knn_dist = _knn(fit, fit, k)

    import umap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state": seeded on purpose
        model = umap.UMAP(
            n_components=2,
            n_neighbors=k,
            min_dist=0.1,
            init="pca" if len(fit) > k + 1 else "random",
            random_state=seed,
            n_epochs=LAYOUT_EPOCHS,
            precomputed_knn=(knn_idx, knn_dist, None),
        )
        coords_fit = model.fit_transform(fit).astype(np.float32)
    if sample is None:
        return coords_fit
    coords = np.empty((n, 2), np.float32)
    coords[sample] = coords_fit
    rest = np.setdiff1d(np.arange(n), sample)
    coords[rest] = place(fit, coords_fit, reduced[rest])
    return coords


PLACE_FALLOFF = 0.25


def place(
    laid_out: np.ndarray, coords: np.ndarray, new: np.ndarray, k: int = LAYOUT_NEIGHBOURS
) -> np.ndarray:
    """(m, 2) positions for `new` unit vectors on a map of `laid_out` ones at `coords`:
    the weighted mean of their k nearest laid-out neighbours, so that an image lands
    among the images most like it without the map moving. A neighbour's weight falls
    off with how much farther it is than the nearest one (e⁻¹ for each PLACE_FALLOFF
    of that distance): with weights of 1 / distance, a near copy of a photo among 35
    unlike ones got 13 % of its placement from the photo and could land mid-map."""
    k = min(k, len(laid_out))
    idx, dist = _knn(laid_out, new, k)
    scale = np.maximum(dist[:, :1] * PLACE_FALLOFF, 1e-3)
    weights = np.exp(-(dist - dist[:, :1]) / scale)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.einsum("nk,nkd->nd", weights, coords[idx]).astype(np.float32)


@dataclass
class Clustering:
    labels: np.ndarray  # (n,) cluster of each image, 0..k-1
    centres: np.ndarray  # (k, dim) unit vectors
    auto: bool  # k was chosen automatically

    @property
    def k(self) -> int:
        return len(self.centres)

    def sizes(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.k)


MAX_CLUSTERS = 40  # a list of clusters stays something a person reads through
# Version of the automatic-k rule: a cached automatic clustering made by another rule
# is made again (the layout is kept). 1: silhouette (to issue 11); 2: linkage cut.
K_RULE = 2
# How much more alike than two images of the collection on average the images of one
# cluster must be: mean + CUT_FRACTION × (1 - mean). Measured by bench/cluster_k.py on
# real photos with the built-in model, adjusted Rand index against the photos' subjects
# (sample collection of 36 photos + 12 copies / the photos with 6 variants each / with 5
# other shots each / 8 subjects of 12 images, mean of 5 draws): this cut 0.97 / 0.97 /
# 0.97 / 0.995; the former "smallest k within 5 % of the best silhouette, k <= n/3"
# 0.27 / 0.33 / 0.33 / 0.39 (it chose 11 clusters for 35 subjects); the best silhouette
# with k <= n/2 0.41 / 0.40 / 0.43 / 0.63; the best Davies-Bouldin 0.41 / 0.44 / 0.79 /
# 0.68; sqrt(n/2), dendrogram-gap rules and the gap statistic below 0.4 on average.
# Fractions 0.3 to 0.5 average within 0.01 of 0.35. Weak spot: CIFAR-10's 32-pixel
# photos, whose vectors barely tell the classes apart, score 0.17 (Davies-Bouldin 0.48).
# Relative to the mean, the cut follows a model whose similarities sit higher (CLIP's
# do) instead of holding one model's scale.
CUT_FRACTION = 0.35


def choose_k(vectors: np.ndarray, seed: int = 0) -> int:
    """How many groups of alike images the collection holds: the clusters of an
    average-linkage tree cut where a cluster's images stop being, on average, at least
    mean + CUT_FRACTION × (1 - mean) alike (mean: the similarity of two images of the
    collection on average); at most MAX_CLUSTERS, found on a sample of at most
    K_SAMPLE vectors, so that 100,000 images cost what 2,000 do.
    """
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    n = len(vectors)
    if n < 2:
        return 1
    rng = np.random.default_rng(seed)
    picked = np.arange(n) if n <= K_SAMPLE else np.sort(rng.choice(n, K_SAMPLE, replace=False))
    sample = np.asarray(vectors[picked], np.float32)
    m = len(sample)
    sims = sample @ sample.T
    np.fill_diagonal(sims, 1.0)
    mean = float((sims.sum(dtype=np.float64) - m) / (m * (m - 1)))
    cut = mean + CUT_FRACTION * (1.0 - mean)
    distances = squareform(np.clip(1.0 - sims, 0.0, 2.0), checks=False)
    heights = linkage(distances.astype(np.float64), "average")[:, 2]
    k = m - int(np.sum(heights <= 1.0 - cut))
    return int(np.clip(k, 1, MAX_CLUSTERS))


def near_duplicate_groups(
    vectors: np.ndarray, threshold: float, neighbours: int = 10
) -> np.ndarray:
    """(n,) group ids: images joined by a chain of similarities >= `threshold`, found
    among each image's nearest neighbours (never an n × n matrix)."""
    return linked_groups(len(vectors), *similar_pairs(vectors, threshold, neighbours))


def cluster(
    vectors: np.ndarray,
    k: int | None = None,
    seed: int = 0,
    previous_centres: np.ndarray | None = None,
    must_link: float | None = None,
    reduced: np.ndarray | None = None,
) -> Clustering:
    """k-means on unit vectors; k chosen by `choose_k` when not given.

    Clusters are numbered by size, largest first, unless `previous_centres` with the
    same k are given: then each new cluster takes the number of the old one it is
    closest to, so colours and names stay put when the collection changes a little.

    With `must_link` (the model's near-duplicate similarity), copies of a photo are
    grouped first and clustered as one weighted point, so they always share a
    cluster: k-means alone split a photo from its cropped copy (similarity 0.76)
    at some k on the test photos.

    Above KMEANS_EXACT_LIMIT images, mini-batch k-means runs on the PCA-reduced vectors
    (`reduced`, else computed) and the centres are the means of the full vectors, read
    in chunks: 1M × 1280-d never needs its 5 GB of float32.
    """
    n, dim = len(vectors), vectors.shape[1]
    auto = k is None
    if n == 0:
        return Clustering(np.zeros(0, np.int64), np.zeros((0, dim), np.float32), auto)
    if n > KMEANS_EXACT_LIMIT:
        labels, k = _minibatch_labels(vectors, k, seed, reduced)
    else:
        vectors = np.asarray(vectors, np.float32)
        labels, k = _exact_labels(vectors, k, seed, must_link)
    sums = np.zeros((k, dim), np.float64)
    for lo, chunk in chunks(vectors):
        part = labels[lo : lo + len(chunk)]
        sums += (np.arange(k)[:, None] == part[None, :]).astype(np.float32) @ chunk
    empty = ~sums.any(1)  # a cluster k-means left empty keeps a direction of its own
    sums[empty] = np.eye(k, dim)[empty]
    centres = l2_normalize(sums.astype(np.float32))
    if previous_centres is not None and previous_centres.shape == centres.shape:
        from scipy.optimize import linear_sum_assignment

        _, mapping = linear_sum_assignment(-(previous_centres @ centres.T))
        order = mapping  # new cluster mapping[i] takes old number i
    else:
        order = np.argsort(-np.bincount(labels, minlength=k), kind="stable")
    remap = np.empty(k, np.int64)
    remap[order] = np.arange(k)
    return Clustering(remap[labels], centres[order], auto)


def _exact_labels(
    vectors: np.ndarray, k: int | None, seed: int, must_link: float | None
) -> tuple[np.ndarray, int]:
    n = len(vectors)
    if must_link is not None and 1 < n <= MUST_LINK_LIMIT:
        groups = near_duplicate_groups(vectors, must_link)
    else:
        groups = np.arange(n)
    count = int(groups.max()) + 1
    if count == n:  # no copies to group: no second copy of the vectors either
        weights, points = None, vectors
    else:
        weights = np.bincount(groups, minlength=count).astype(np.float32)
        points = np.zeros((count, vectors.shape[1]), np.float32)
        np.add.at(points, groups, vectors)
        points = l2_normalize(points)
    k = choose_k(points, seed) if k is None else int(k)
    k = max(1, min(k, count))
    if k == 1:
        return np.zeros(n, np.int64), 1
    from sklearn.cluster import KMeans

    km = KMeans(k, n_init=4, random_state=seed)
    return km.fit_predict(points, sample_weight=weights).astype(np.int64)[groups], k


def _minibatch_labels(
    vectors: np.ndarray, k: int | None, seed: int, reduced: np.ndarray | None
) -> tuple[np.ndarray, int]:
    from sklearn.cluster import MiniBatchKMeans

    k = max(1, min(choose_k(vectors, seed) if k is None else int(k), len(vectors)))
    if k == 1:
        return np.zeros(len(vectors), np.int64), 1
    points = reduce(vectors, seed) if reduced is None else reduced
    km = MiniBatchKMeans(k, n_init=3, batch_size=4096, random_state=seed)
    return km.fit_predict(points).astype(np.int64), k


def representatives(
    vectors: np.ndarray,
    clustering: Clustering,
    per_cluster: int = 4,
    scores: np.ndarray | None = None,
) -> list[list[int]]:
    """For each cluster, the rows of its images closest to its centre, closest first
    (`scores`: `centre_scores`' answer, when the caller has it)."""
    scores = centre_scores(vectors, clustering) if scores is None else scores
    order = np.lexsort((-scores, clustering.labels))  # by cluster, then closest; stable
    starts = np.searchsorted(clustering.labels[order], np.arange(clustering.k + 1))
    return [order[a : min(a + per_cluster, b)].tolist() for a, b in pairwise(starts)]


def centre_scores(vectors: np.ndarray, clustering: Clustering) -> np.ndarray:
    """Each image's similarity to its own cluster's centre."""
    scores = np.empty(len(vectors), np.float32)
    for lo, chunk in chunks(vectors):
        own = clustering.labels[lo : lo + len(chunk)]
        scores[lo : lo + len(chunk)] = (chunk @ clustering.centres.T)[np.arange(len(own)), own]
    return scores


def name_clusters(
    clustering: Clustering, vocabulary: Vocabulary, calibration: Calibration | None = None
) -> list[str]:
    """A name per cluster: the vocabulary word closest to its centre; a name already
    given to a larger cluster gets the next-best word instead. With `calibration`, a
    word that is not a confident tag of the centre ends in "?" ("tabby?"): a guess."""
    scores = l2_normalize(clustering.centres) @ vocabulary.matrix.T
    taken: set[str] = set()
    names = []
    for c in np.argsort(-clustering.sizes(), kind="stable"):
        for i in np.argsort(-scores[c], kind="stable")[:10]:
            if vocabulary.names[i] not in taken:
                break
        name = vocabulary.names[i]
        name = name if name not in taken else f"{name} {c + 1}"
        taken.add(name)
        if calibration is not None and calibration.text(scores[c, i], TAG) < CONFIDENT:
            name += "?"
        names.append((c, name))
    return [name for _, name in sorted(names)]
