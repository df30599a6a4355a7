"""Layout, clusters, names and export on real photos with the built-in model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from tests.fakes import FakeEncoder
from visualsearch.cli import main as cli_main
from visualsearch.core import analysis
from visualsearch.core.collection_map import CLUSTER_LINK_SLACK, build_map, rename_cluster
from visualsearch.core.encoders.base import l2_normalize
from visualsearch.core.indexing import index_folder
from visualsearch.core.safe_files import folder_name
from visualsearch.core.sample import subject_of
from visualsearch.core.store import Store


@pytest.fixture(scope="session")
def photo_map(tmp_path_factory, photos_with_copies_dir, builtin_encoder, app_paths):
    store = Store(tmp_path_factory.mktemp("map-store"), root=photos_with_copies_dir)
    index_folder(photos_with_copies_dir, store, builtin_encoder)
    return store, build_map(store, builtin_encoder, app_paths.cache_dir)


def _stem(path: str) -> str:
    """'copies/chelsea-copy.jpg' and 'copies/chelsea-bright.jpg' → 'chelsea'."""
    name = Path(path).stem
    return name.rsplit("-", 1)[0] if path.startswith("copies/") else name


def test_each_photo_shares_a_cluster_with_its_copies(photo_map):
    _, cmap = photo_map
    assert 2 <= cmap.clustering.k <= 40 and cmap.clustering.auto
    cluster_of = dict(zip(cmap.paths, cmap.labels.tolist(), strict=True))
    copies = [p for p in cmap.paths if p.startswith("copies/")]
    assert len(copies) > 30
    for copy in copies:
        original = next(p for p in cmap.paths if "/" not in p and Path(p).stem == _stem(copy))
        assert cluster_of[copy] == cluster_of[original], (copy, original)
    print(f"\n{cmap.clustering.k} clusters: {cmap.names}")


def test_the_cat_cluster_gets_a_cat_name_and_representatives(photo_map):
    _, cmap = photo_map
    cat = cmap.labels[cmap.paths.index("chelsea.png")]
    members = [cmap.paths[r] for r in cmap.members(cat)]
    assert sum(_stem(p) == "chelsea" for p in members) >= len(members) / 2  # a cat cluster
    assert "cat" in cmap.names[cat].lower(), cmap.names[cat]
    reps = [cmap.paths[r] for r in cmap.representatives[cat]]
    assert reps and all(_stem(p) == "chelsea" for p in reps)
    assert len(set(cmap.names)) == len(cmap.names)  # every cluster has its own name


def test_map_is_cached_and_names_the_user_gives_are_kept(photo_map, builtin_encoder, app_paths):
    store, cmap = photo_map
    again = build_map(store, builtin_encoder, app_paths.cache_dir)
    np.testing.assert_array_equal(again.coords, cmap.coords)
    np.testing.assert_array_equal(again.labels, cmap.labels)
    rename_cluster(store, builtin_encoder.id, cmap.clustering.k, 0, "Holiday")
    renamed = build_map(store, builtin_encoder, app_paths.cache_dir)
    assert renamed.names[0] == "Holiday" and renamed.suggested[0] == cmap.suggested[0]
    rename_cluster(store, builtin_encoder.id, cmap.clustering.k, 0, "")  # back to suggested
    fewer = build_map(store, builtin_encoder, app_paths.cache_dir, k=3)
    assert fewer.clustering.k == 3 and not fewer.clustering.auto
    assert fewer.coords.shape == (len(cmap.paths), 2)


def _former_choose_k(points: np.ndarray) -> int:
    """The rule analysis.choose_k had before bench/cluster_k.py measured it: the smallest
    k within 5 % of the best silhouette, 2 <= k <= n/3 (kept here to print its figure)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    reduced = analysis.reduce(points)
    scores = {}
    for k in range(2, max(2, min(40, len(points) // 3)) + 1):
        labels = KMeans(k, n_init=1, random_state=0).fit_predict(reduced)
        scores[k] = silhouette_score(reduced, labels)
    best = max(scores.values())
    return min(k for k, v in scores.items() if v >= best - 0.05 * abs(best))


def _grouped(vectors: np.ndarray, must_link: float) -> np.ndarray:
    """The points analysis.cluster chooses k on: copies of a photo merged into one."""
    groups = analysis.near_duplicate_groups(vectors, must_link)
    points = np.zeros((groups.max() + 1, vectors.shape[1]), np.float32)
    np.add.at(points, groups, vectors)
    return l2_normalize(points)


def test_automatic_k_agrees_with_the_subjects_of_the_photos(photo_map, builtin_encoder):
    """12 clusters for ~37 subjects put an astronaut, a beaker, a chair and a drum in one:
    the number of clusters now comes from a rule measured on labelled photos."""
    _, cmap = photo_map
    subjects = [subject_of(Path(_stem(p))) for p in cmap.paths]
    count = len(set(subjects))
    must_link = builtin_encoder.near_duplicate_threshold - CLUSTER_LINK_SLACK
    ari = adjusted_rand_score(subjects, cmap.labels)
    former_k = _former_choose_k(_grouped(cmap.vectors, must_link))
    former = analysis.cluster(cmap.vectors, k=former_k, must_link=must_link)
    former_ari = adjusted_rand_score(subjects, former.labels)
    print(
        f"\n{count} subjects: now k={cmap.clustering.k}, ARI {ari:.3f}; "
        f"the former rule k={former_k}, ARI {former_ari:.3f}"
    )
    assert cmap.clustering.auto
    assert ari >= 0.8 > former_ari

    # a collection of a few subjects gets a few clusters, not as many as it can hold
    rng = np.random.default_rng(0)
    for few in (rng.choice(sorted(set(subjects)), 8, replace=False) for _ in range(3)):
        rows = np.flatnonzero(np.isin(subjects, few))
        labels = analysis.cluster(cmap.vectors[rows], must_link=must_link).labels
        some = [subjects[r] for r in rows]
        assert adjusted_rand_score(some, labels) >= 0.8, (sorted(few), labels)


def test_choose_k_finds_the_groups_and_stays_bounded_for_many_vectors():
    x, _ = _blobs(30, 12, dim=64)
    assert analysis.choose_k(x) == 12
    assert analysis.choose_k(x[:1]) == 1 and analysis.choose_k(x[:2]) in (1, 2)
    many, _ = _blobs(1_000, 60, dim=64)  # 60,000 vectors: scored on a sample, at most 40
    assert analysis.choose_k(many) == analysis.MAX_CLUSTERS


# pixel colours whose fake-encoder vectors make clear families: red and orange are alike
COLOURS = {
    "red": (255, 0, 0),
    "orange": (255, 128, 0),
    "blue": (0, 0, 255),
    "green": (0, 255, 0),
    "cyan": (0, 255, 255),
}


def _paint(folder: Path, colour: str, count: int) -> None:
    from PIL import Image

    folder.mkdir(exist_ok=True)
    for i in range(count):
        img = Image.new("RGB", (16, 16), COLOURS[colour])
        img.putpixel((0, 0), (i * 7 % 256, 40, 90))  # each file its own content
        img.save(folder / f"{colour}_{i}.png")


def _cluster_of(cmap, prefix: str) -> int:
    clusters = {int(cmap.labels[r]) for r, p in enumerate(cmap.paths) if p.startswith(prefix)}
    assert len(clusters) == 1, (prefix, clusters)
    return clusters.pop()


def _named(cmap, name: str) -> list[int]:
    return [c for c, n in enumerate(cmap.names) if n == name]


@pytest.fixture
def colour_store(tmp_path):
    folder, encoder = tmp_path / "colours", FakeEncoder()
    for colour, count in (("red", 2), ("orange", 4), ("blue", 4), ("green", 4)):
        _paint(folder, colour, count)
    with Store(tmp_path / "store", root=folder) as store:
        index_folder(folder, store, encoder)
        yield folder, store, encoder, tmp_path / "cache"


def _rename(store, encoder, cmap, cluster: int, name: str) -> None:
    members = [cmap.paths[r] for r in cmap.members(cluster)]
    rename_cluster(store, encoder.id, cmap.clustering.k, cluster, name, members=members)


def test_a_renamed_cluster_loses_its_name_when_a_recompute_leaves_few_of_its_images(
    colour_store,
):
    """A cluster renamed "cars and yurts" kept that name after a recompute left it with
    yurts only: the name stuck to the cluster's number."""
    folder, store, encoder, cache = colour_store
    first = build_map(store, encoder, cache, k=3)
    warm = _cluster_of(first, "orange")
    assert warm == _cluster_of(first, "red")  # red and orange together: "cars and yurts"
    _rename(store, encoder, first, warm, "cars and yurts")
    assert _named(build_map(store, encoder, cache, k=3), "cars and yurts") == [warm]

    for p in folder.glob("orange_*"):  # the cars go: the yurts (2 of 6) are left
        p.unlink()
    index_folder(folder, store, encoder)
    after = build_map(store, encoder, cache, k=3)
    assert after.clustering.k == 3 and _cluster_of(after, "red") == warm  # the same number
    assert _named(after, "cars and yurts") == []  # but not the same images: no name
    assert after.names[warm] == after.suggested[warm]
    assert after.lost_names == ["cars and yurts"]
    # most of its images are gone for good: the name is dropped, not reported again
    assert build_map(store, encoder, cache, k=3).lost_names == []


def test_a_renamed_cluster_keeps_its_name_where_its_images_go(colour_store):
    folder, store, encoder, cache = colour_store
    first = build_map(store, encoder, cache, k=3)
    warm = _cluster_of(first, "orange")
    _rename(store, encoder, first, warm, "cars and yurts")
    _rename(store, encoder, first, _cluster_of(first, "blue"), "sea")

    _paint(folder, "cyan", 8)  # a larger new cluster takes the first number
    index_folder(folder, store, encoder)
    grown = build_map(store, encoder, cache, k=4)
    assert _cluster_of(grown, "cyan") == 0 and _cluster_of(grown, "orange") != warm
    assert _named(grown, "cars and yurts") == [_cluster_of(grown, "orange")]
    assert _named(grown, "sea") == [_cluster_of(grown, "blue")] and not grown.lost_names

    split = build_map(store, encoder, cache, k=5)  # red and orange apart: most were orange
    assert _cluster_of(split, "red") != _cluster_of(split, "orange")
    assert _named(split, "cars and yurts") == [_cluster_of(split, "orange")]

    _rename(store, encoder, split, _cluster_of(split, "orange"), "")  # the suggested name back
    again = build_map(store, encoder, cache, k=5)
    assert _named(again, "cars and yurts") == [] and not again.lost_names
    assert _named(again, "sea") == [_cluster_of(again, "blue")]


def test_names_saved_by_cluster_number_are_placed_once_and_then_follow(colour_store):
    """Names saved before they followed their images (by number, for one k) still name
    the cluster they were given to."""
    folder, store, encoder, cache = colour_store
    first = build_map(store, encoder, cache, k=3)
    blue = _cluster_of(first, "blue")
    store.set_meta(f"cluster_names:{encoder.id}", json.dumps({"k": 3, "names": {blue: "sea"}}))
    again = build_map(store, encoder, cache, k=3)
    assert _named(again, "sea") == [blue]
    _paint(folder, "cyan", 8)
    index_folder(folder, store, encoder)
    grown = build_map(store, encoder, cache, k=4)
    assert _named(grown, "sea") == [_cluster_of(grown, "blue")] != [blue]


def _blobs(n_per: int, centres: int, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)) * 3
    labels = np.repeat(np.arange(centres), n_per)
    return l2_normalize(
        (c[labels] + rng.standard_normal((len(labels), dim))).astype(np.float32)
    ), labels


def test_cluster_numbers_stay_when_the_collection_changes_a_little():
    x, truth = _blobs(40, 5)
    first = analysis.cluster(x, k=5)
    assert len(set(zip(first.labels, truth, strict=True))) == 5  # found the five blobs
    more, _ = _blobs(3, 5, seed=1)
    grown = np.concatenate([x[::-1], more])  # other order, a few new images
    second = analysis.cluster(grown, k=5, previous_centres=first.centres, seed=7)
    np.testing.assert_array_equal(second.labels[: len(x)][::-1], first.labels)


def test_layout_is_seeded_and_samples_large_collections():
    x, truth = _blobs(60, 4)
    a = analysis.layout_2d(x)
    b = analysis.layout_2d(x)
    np.testing.assert_array_equal(a, b)
    big = analysis.layout_2d(x, sample_limit=100)  # fit on 100, place the other 140
    assert big.shape == (240, 2) and np.isfinite(big).all()
    centres = np.stack([big[truth == c].mean(0) for c in range(4)])
    own = np.linalg.norm(big - centres[truth], axis=1)
    other = np.min(
        [np.linalg.norm(big - centres[c], axis=1) for c in range(4)] + [np.full(240, np.inf)],
        axis=0,
    )
    assert np.mean(own <= other + 1e-6) > 0.95  # placed points land with their own blob
    assert analysis.layout_2d(x[:2]).shape == (2, 2)
    assert analysis.cluster(x[:1]).k == 1


def test_cli_clusters_and_export(tmp_path, photos_dir, app_paths, capsys):
    assert cli_main(["clusters", str(photos_dir), "-k", "4", "--json"], paths=app_paths) == 0
    clusters = json.loads(capsys.readouterr().out)
    assert len(clusters) == 4 and sum(c["size"] for c in clusters) == len(
        list(photos_dir.iterdir())
    )
    dest = tmp_path / "by-cluster"
    code = cli_main(
        ["export", str(photos_dir), str(dest), "-k", "4", "--clusters", "0,1", "--json"],
        paths=app_paths,
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["written"] == clusters[0]["size"] + clusters[1]["size"]
    assert sorted(Path(f).name for f in out["folders"].values()) == sorted(
        folder_name(c["name"]) for c in clusters[:2]
    )
    args = ["export", str(photos_dir), str(dest), "-k", "4", "--clusters", "0,1"]
    assert cli_main(args, paths=app_paths) == 0  # again: nothing is copied twice
    text = capsys.readouterr().out
    assert f"{out['written']} already there with the same content" in text
    assert "Copied 0 images" in text
    assert (
        cli_main(
            ["export", str(photos_dir), str(dest), "-k", "4", "--clusters", "9"], paths=app_paths
        )
        == 1
    )
    assert "no cluster [9]" in capsys.readouterr().err


def test_an_automatic_clustering_cached_by_the_former_rule_is_made_again(tmp_path, app_paths):
    """An upgraded app showed the former rule's cached 11 clusters ("drum" holding the
    astronaut) for a collection whose map was already cached."""
    from tests.conftest import distinct_images
    from visualsearch.core.collection_map import _cache_path

    folder = tmp_path / "photos"
    distinct_images(folder, 12, size=64)
    encoder = FakeEncoder()
    with Store(tmp_path / "store", root=folder) as store:
        index_folder(folder, store, encoder)
        first = build_map(store, encoder, app_paths.cache_dir)
        path = _cache_path(store, encoder.id)
        with np.load(path) as data:
            old = {key: data[key] for key in data.files if key != "rule"}  # as rule 1 wrote it
        old["labels"] = np.zeros_like(old["labels"])
        old["centres"] = old["centres"][:1]
        np.savez(path, **old)
        again = build_map(store, encoder, app_paths.cache_dir)
    assert again.clustering.k == first.clustering.k > 1  # clustered anew by today's rule
    np.testing.assert_array_equal(again.coords, first.coords)  # the layout was kept


def test_new_images_are_placed_on_the_map_without_laying_it_out_again(
    tmp_path, photos_dir, builtin_encoder, app_paths
):
    """Each new photo used to lay the whole map out again (minutes at 100k, and every
    point moved): new images now land beside the images most like them, in their cluster,
    and the rest stays where it was until a layout is asked for or much has changed."""
    from PIL import Image

    from tests.conftest import near_duplicate

    folder, cache = tmp_path / "photos", app_paths.cache_dir
    shutil.copytree(photos_dir, folder)
    with Store(tmp_path / "store", root=folder) as store:
        index_folder(folder, store, builtin_encoder)
        first = build_map(store, builtin_encoder, cache)
        assert first.placed == 0
        cat = Image.open(folder / "chelsea.png").convert("RGB")
        near_duplicate(cat).save(folder / "new-cat.jpg", quality=80)
        cat.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "new-cat-flipped.jpg")
        index_folder(folder, store, builtin_encoder)
        placed = build_map(store, builtin_encoder, cache)

        assert placed.placed == 2 and len(placed.paths) == len(first.paths) + 2
        where = dict(zip(placed.paths, placed.coords, strict=True))
        before = dict(zip(first.paths, first.coords, strict=True))
        assert all(np.array_equal(where[p], before[p]) for p in first.paths)  # nothing moved
        cluster = dict(zip(placed.paths, placed.labels.tolist(), strict=True))
        spread = np.median(np.linalg.norm(first.coords - first.coords.mean(0), axis=1))
        for new in ("new-cat.jpg", "new-cat-flipped.jpg"):
            assert cluster[new] == cluster["chelsea.png"]
            assert np.linalg.norm(where[new] - where["chelsea.png"]) < spread / 2
        # each image's similarity to its cluster's centre is kept with the map, not
        # computed again over every vector; the new ones' are their own
        direct = analysis.centre_scores(placed.vectors, placed.clustering)
        np.testing.assert_allclose(placed.scores, direct, atol=1e-5)
        cached = build_map(store, builtin_encoder, cache)
        assert cached.placed == 2  # cached as placed
        np.testing.assert_array_equal(cached.scores, placed.scores)

        relaid = build_map(store, builtin_encoder, cache, relayout=True)
        assert relaid.placed == 0 and build_map(store, builtin_encoder, cache).placed == 0

        for p in sorted(folder.glob("imagenet_*"))[:12]:  # a third gone: laid out again
            p.unlink()
        index_folder(folder, store, builtin_encoder)
        assert build_map(store, builtin_encoder, cache).placed == 0


class ChunkedOnly:
    """An array-like that hands out rows only in blocks of at most `limit`: an analysis
    that asked for every vector at once (5 GB at 1M × 1280-d) fails on it."""

    dtype = np.dtype(np.float32)

    def __init__(self, x: np.ndarray, limit: int) -> None:
        self.x, self.limit = x, limit

    @property
    def shape(self):
        return self.x.shape

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index):
        rows = self.x[index]
        assert len(rows) <= self.limit, f"{len(rows)} rows read at once"
        return rows

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("every vector read at once")


def test_large_collections_are_laid_out_and_clustered_in_chunks(monkeypatch):
    """Above the exact k-means limit: PCA fitted on a sample and applied in chunks,
    mini-batch k-means on the reduced vectors, centres from the full vectors in chunks;
    the blobs are still found and laid out apart."""
    monkeypatch.setattr(analysis, "KMEANS_EXACT_LIMIT", 500)
    monkeypatch.setattr(analysis, "PCA_FIT_SAMPLE", 300)
    monkeypatch.setattr(analysis, "CHUNK", 256)
    x, truth = _blobs(300, 4, seed=3)
    rows = ChunkedOnly(x, limit=300)
    clustering = analysis.cluster(rows, k=4)
    assert adjusted_rand_score(truth, clustering.labels) > 0.95
    exact = l2_normalize(np.stack([x[clustering.labels == c].mean(0) for c in range(4)]))
    np.testing.assert_allclose(clustering.centres, exact, atol=1e-5)
    coords = analysis.layout_2d(rows, sample_limit=200)
    assert coords.shape == (1200, 2) and np.isfinite(coords).all()
    centres = np.stack([coords[truth == c].mean(0) for c in range(4)])
    nearest = np.argmin(np.linalg.norm(coords[:, None] - centres[None], axis=2), axis=1)
    assert np.mean(nearest == truth) > 0.95
    scores = analysis.centre_scores(rows, clustering)
    np.testing.assert_allclose(
        scores, np.einsum("nd,nd->n", x, exact[clustering.labels]), atol=1e-5
    )
    reps = analysis.representatives(rows, clustering, scores=scores)
    for c, rep in enumerate(reps):
        best = np.flatnonzero(clustering.labels == c)[np.argsort(-scores[clustering.labels == c])]
        assert rep == best[:4].tolist()


def test_the_map_cache_keeps_paths_that_are_not_utf8(tmp_path):
    """The cached map's paths go through bytes; a name that is not UTF-8 (surrogate
    escapes in Python) comes back as it was, so its image is not laid out again."""
    from visualsearch.core.collection_map import _load_cache
    from visualsearch.core.store import FileRecord

    enc = FakeEncoder()
    store = Store(tmp_path / "store")
    x, _ = _blobs(10, 3, dim=enc.dim)
    names = [f"{i:02d}.jpg" for i in range(29)] + [
        b"caf\xe9.jpg".decode("utf-8", "surrogateescape")
    ]
    recs = [FileRecord(n, 1, 1, f"{i + 1:032x}") for i, n in enumerate(names)]
    store.commit_batch(enc.id, recs, {r.hash: v for r, v in zip(recs, x, strict=True)})
    first = build_map(store, enc, tmp_path / "cache", k=3)
    assert _load_cache(store, enc.id)["paths"] == first.paths and names[-1] in first.paths
    again = build_map(store, enc, tmp_path / "cache", k=3)
    np.testing.assert_array_equal(again.coords, first.coords)
    assert again.placed == 0
    store.close()


def test_a_near_copy_lands_beside_its_original_among_unlike_images():
    """With weights of 1 / distance the 14 unlike neighbours outweighed the original
    (13 % of the placement) and the copy landed near the middle of the map."""
    rng = np.random.default_rng(0)
    laid_out = l2_normalize(rng.standard_normal((36, 64)).astype(np.float32))
    coords = rng.uniform(0, 10, (36, 2)).astype(np.float32)
    copy = l2_normalize(laid_out[0] + 0.6 * l2_normalize(rng.standard_normal(64)))
    assert 0.8 < float(copy @ laid_out[0]) < 0.9  # a re-saved, cropped copy's similarity
    (where,) = analysis.place(laid_out, coords, copy[None].astype(np.float32))
    assert np.linalg.norm(where - coords[0]) < 0.5  # the map is 10 wide
