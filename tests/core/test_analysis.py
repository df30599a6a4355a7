"""Layout, clusters, names and export on real photos with the built-in model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from visualsearch.cli import main as cli_main
from visualsearch.core import analysis
from visualsearch.core.collection_map import build_map, rename_cluster
from visualsearch.core.encoders.base import l2_normalize
from visualsearch.core.export import folder_name
from visualsearch.core.indexing import index_folder
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
