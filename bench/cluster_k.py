"""Which rule for the number of clusters agrees best with what the photos show?

Real photos (scikit-image's and foolbox's labelled ImageNet ones) are embedded with the
real built-in model, together with their near-duplicate VARIANTS and FRAMINGS (other
shots of the same scene); each image's subject is the photo it came from (the two
ImageNet jeeps share one). Every candidate rule picks k for several collections made
from them, the map's clustering (analysis.cluster, copies linked first as the map does)
runs with that k, and the adjusted Rand index against the subjects is printed with the
k chosen. Prints figures from one run; no pass/fail.

    python bench/cluster_k.py [--cache vectors.npz]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from importlib import util
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score

from visualsearch.core import analysis
from visualsearch.core.collection_map import CLUSTER_LINK_SLACK
from visualsearch.core.encoders.base import l2_normalize
from visualsearch.core.imageio import decode
from visualsearch.core.sample import labelled_sample

Rule = Callable[[np.ndarray, np.ndarray], int]  # (points, weights) -> k


def cifar10_photos() -> list[Path]:
    spec = util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(Path(next(iter(spec.submodule_search_locations)), "data").glob("cifar10_*.png"))


def embed(cache: Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Vectors, subjects, kinds ('photo', 'variant', 'shot') and the model's threshold."""
    if cache is not None and cache.exists():
        with np.load(cache) as d:
            return d["vectors"], d["subjects"], d["kinds"], float(d["threshold"])
    from visualsearch.core.encoders.builtin import BuiltinEncoder

    encoder = BuiltinEncoder(cache_dir=Path.home() / ".cache" / "visualsearch")
    items = labelled_sample(variants=True, framings=True)
    rows = []
    for start in range(0, len(items), 16):
        batch = [encoder.preprocess(decode(b).image) for _, b, _ in items[start : start + 16]]
        rows.append(encoder.embed_images(np.stack(batch)))
    kinds = ["shot" if "-shot" in n else "variant" if "-" in n else "photo" for n, _, _ in items]
    subjects = [s for _, _, s in items]
    for path in cifar10_photos():  # different photos of one class, 32 × 32 pixels
        rows.append(encoder.embed_images(encoder.preprocess(decode(path.read_bytes()).image)[None]))
        subjects.append(f"cifar10 class {path.stem.rsplit('_', 1)[1]}")
        kinds.append("cifar")
    vectors = np.concatenate(rows)
    subjects, kinds = np.array(subjects), np.array(kinds)
    threshold = encoder.near_duplicate_threshold
    if cache is not None:
        np.savez(cache, vectors=vectors, subjects=subjects, kinds=kinds, threshold=threshold)
    return vectors, subjects, kinds, threshold


# -- the candidate rules: each sees what analysis.choose_k sees (copies grouped) -------------


def _curve(points: np.ndarray, cap: int, score) -> dict[int, float]:
    from sklearn.cluster import KMeans

    reduced = analysis.reduce(points)
    out = {}
    for k in range(2, max(2, min(40, cap)) + 1):
        if k >= len(points):
            break
        labels = KMeans(k, n_init=1, random_state=0).fit_predict(reduced)
        if len(set(labels)) > 1:
            out[k] = float(score(reduced, labels))
    return out


def silhouette_rule(tolerance: float, divisor: int) -> Rule:
    """Smallest k within `tolerance` (relative) of the best silhouette, k <= n/divisor."""
    from sklearn.metrics import silhouette_score

    def rule(points, weights):
        scores = _curve(points, len(points) // divisor, silhouette_score)
        if not scores:
            return 1
        best = max(scores.values())
        return min(k for k, v in scores.items() if v >= best - tolerance * abs(best))

    return rule


def index_rule(name: str, divisor: int = 2) -> Rule:
    """Best Calinski-Harabasz (highest) or Davies-Bouldin (lowest) index."""
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

    def rule(points, weights):
        if name == "ch":
            scores = _curve(points, len(points) // divisor, calinski_harabasz_score)
            return max(scores, key=scores.get) if scores else 1
        scores = _curve(points, len(points) // divisor, davies_bouldin_score)
        return min(scores, key=scores.get) if scores else 1

    return rule


def sqrt_rule(of_images: bool) -> Rule:
    """The rule of thumb k = sqrt(n / 2), n counting images or photos (copies grouped)."""

    def rule(points, weights):
        n = weights.sum() if of_images else len(points)
        return max(1, min(40, round(float(np.sqrt(n / 2)))))

    return rule


def _linkage(points: np.ndarray, method: str) -> np.ndarray:
    from scipy.cluster.hierarchy import linkage

    if method == "ward":
        return linkage(analysis.reduce(points), "ward")
    return linkage(points, method, metric="cosine")


def gap_rule(method: str, divisor: int = 2) -> Rule:
    """The k before the largest jump in the dendrogram's merge heights."""

    def rule(points, weights):
        n = len(points)
        if n < 4:
            return 1
        heights = _linkage(points, method)[:, 2]  # merge i leaves n - 1 - i clusters
        ks = range(2, max(2, min(40, n // divisor)) + 1)
        # going from k clusters to k - 1 costs heights[n - k]; the one before, heights[n - k - 1]
        jumps = {k: heights[n - k] - heights[n - k - 1] for k in ks if n - k - 1 >= 0}
        return max(jumps, key=jumps.get) if jumps else 1

    return rule


def cut_rule(similarity: float | None = None, fraction: float | None = None) -> Rule:
    """Average-linkage clusters whose images are on average at least `similarity` alike,
    or (with `fraction`) at least mean + fraction × (1 - mean), mean being the
    similarity of two of the collection's images on average."""

    def rule(points, weights):
        if len(points) < 2:
            return 1
        cut = similarity
        if cut is None:
            sims = points @ points.T
            mean = (sims.sum() - np.trace(sims)) / (len(points) * (len(points) - 1))
            cut = mean + fraction * (1.0 - mean)
        heights = _linkage(points, "average")[:, 2]
        return int(min(40, max(1, len(points) - np.sum(heights <= 1.0 - cut))))

    return rule


def gap_statistic(divisor: int = 2, refs: int = 5) -> Rule:
    """Tibshirani's gap statistic: smallest k with gap(k) >= gap(k+1) - s(k+1)."""
    from sklearn.cluster import KMeans

    def rule(points, weights):
        reduced = analysis.reduce(points)
        rng = np.random.default_rng(0)
        lo, hi = reduced.min(0), reduced.max(0)
        ks = [k for k in range(1, max(2, min(40, len(points) // divisor)) + 2) if k < len(points)]

        def log_w(x, k):
            return np.log(KMeans(k, n_init=1, random_state=0).fit(x).inertia_ + 1e-12)

        ref_data = [rng.uniform(lo, hi, reduced.shape) for _ in range(refs)]
        gap, s = {}, {}
        for k in ks:
            ref = np.array([log_w(r, k) for r in ref_data])
            gap[k] = ref.mean() - log_w(reduced, k)
            s[k] = ref.std() * np.sqrt(1 + 1 / refs)
        for k in ks[:-1]:
            if gap[k] >= gap[k + 1] - s[k + 1]:
                return k
        return ks[-1]

    return rule


def current_rule(points, weights):
    return analysis.choose_k(points)


RULES: dict[str, Rule] = {
    "old: smallest k ≥ 95 % best silhouette, k ≤ n/3": silhouette_rule(0.05, 3),
    "best silhouette, k ≤ n/3": silhouette_rule(0.0, 3),
    "best silhouette, k ≤ n/2": silhouette_rule(0.0, 2),
    "smallest k ≥ 99 % best silhouette, k ≤ n/2": silhouette_rule(0.01, 2),
    "best Calinski-Harabasz, k ≤ n/2": index_rule("ch"),
    "best Davies-Bouldin, k ≤ n/2": index_rule("db"),
    "sqrt(images / 2)": sqrt_rule(True),
    "sqrt(photos / 2)": sqrt_rule(False),
    "dendrogram gap, average cosine": gap_rule("average"),
    "dendrogram gap, Ward": gap_rule("ward"),
    "gap statistic": gap_statistic(),
    "average-linkage cut at similarity 0.4": cut_rule(0.4),
    "average-linkage cut at similarity 0.5": cut_rule(0.5),
    "average-linkage cut at mean + 0.2 (1 - mean)": cut_rule(fraction=0.2),
    "average-linkage cut at mean + 0.3 (1 - mean)": cut_rule(fraction=0.3),
    "average-linkage cut at mean + 0.35 (1 - mean)": cut_rule(fraction=0.35),
    "average-linkage cut at mean + 0.4 (1 - mean)": cut_rule(fraction=0.4),
    "average-linkage cut at mean + 0.5 (1 - mean)": cut_rule(fraction=0.5),
    "analysis.choose_k (as the code now stands)": current_rule,
}


# -- the collections ------------------------------------------------------------------------


def collections(subjects: np.ndarray, kinds: np.ndarray) -> list[tuple[str, list[np.ndarray]]]:
    """(name, row sets): each row set is one collection; several are averaged."""
    photo, variant, shot = kinds == "photo", kinds == "variant", kinds == "shot"
    rng = np.random.default_rng(0)
    names = np.unique(subjects[kinds != "cifar"])
    # the sample collection: every photo, two variants of six of them
    sample = photo.copy()
    first = {}
    for i in np.flatnonzero(variant):
        first.setdefault(subjects[i], []).append(i)
    for s in list(first)[:6]:
        sample[first[s][:2]] = True

    def few(count: int, draws: int) -> list[np.ndarray]:
        out = []
        for _ in range(draws):
            chosen = rng.choice(names, count, replace=False)
            out.append(np.flatnonzero(np.isin(subjects, chosen)))
        return out

    return [
        ("sample collection (36 photos, 12 copies)", [np.flatnonzero(sample)]),
        ("photos + 6 variants each", [np.flatnonzero(photo | variant)]),
        ("photos + 5 other shots each", [np.flatnonzero(photo | shot)]),
        ("photos + variants + shots", [np.flatnonzero(photo | variant | shot)]),
        ("8 subjects, all images (5 draws)", few(8, 5)),
        ("16 subjects, all images (3 draws)", few(16, 3)),
        ("CIFAR-10 samples (tiny), subject = class", [np.flatnonzero(kinds == "cifar")]),
    ]


def evaluate(rule: Rule, vectors, subjects, rows, must_link) -> tuple[float, int]:
    x = vectors[rows]
    groups = analysis.near_duplicate_groups(x, must_link)
    count = int(groups.max()) + 1
    weights = np.bincount(groups, minlength=count)
    points = np.zeros((count, x.shape[1]), np.float32)
    np.add.at(points, groups, x)
    k = int(rule(l2_normalize(points), weights))
    labels = analysis.cluster(x, k=k, must_link=must_link).labels
    return adjusted_rand_score(subjects[rows], labels), k


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, help="keep the vectors in this .npz between runs")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    t = time.perf_counter()
    vectors, subjects, kinds, threshold = embed(args.cache)
    must_link = threshold - CLUSTER_LINK_SLACK
    print(
        f"{len(vectors)} images of {len(np.unique(subjects))} subjects embedded "
        f"({time.perf_counter() - t:.0f} s); copies linked at similarity {must_link:.2f}\n"
    )
    sets = collections(subjects, kinds)
    for i, (name, rowsets) in enumerate(sets):
        n = np.mean([len(r) for r in rowsets])
        subj = np.mean([len(np.unique(subjects[r])) for r in rowsets])
        print(f"  [{i + 1}] {name}: {n:.0f} images, {subj:.0f} subjects")
    header = "".join(f"{f'[{i + 1}] ARI   k':>14}" for i in range(len(sets)))
    print(f"\n{'rule':<46}{header}{'mean ARI':>10}{'time':>7}")
    for rule_name, rule in RULES.items():
        t = time.perf_counter()
        cells, aris = [], []
        for _, rowsets in sets:
            got = [evaluate(rule, vectors, subjects, rows, must_link) for rows in rowsets]
            ari = float(np.mean([a for a, _ in got]))
            ks = [k for _, k in got]
            k_text = str(ks[0]) if len(set(ks)) == 1 else f"~{np.mean(ks):.0f}"
            cells.append(f"{ari:>9.3f}{k_text:>5}")
            aris.append(ari)
        elapsed = time.perf_counter() - t
        print(f"{rule_name:<46}{''.join(cells)}{np.mean(aris):>10.3f}{elapsed:>6.1f}s")


if __name__ == "__main__":
    main()
