"""Duplicate groups, keepers and odd ones out, on real photos with the built-in model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visualsearch.core.duplicates import find_duplicates, outlier_scores, presets, suggest_keeper
from visualsearch.core.neighbours import self_knn
from visualsearch.core.pipeline import index_folder
from visualsearch.core.sample import VARIANTS, imagenet_photos, skimage_photos
from visualsearch.core.store import FileRecord, Store


def pair_precision_recall(groups: list[list[str]], truth: dict[str, str]) -> tuple[float, float]:
    """Pairwise precision and recall of `groups` against `truth` (path → its original)."""

    def pairs(group: list[str]) -> set[tuple[str, str]]:
        return {tuple(sorted((a, b))) for i, a in enumerate(group) for b in group[i + 1 :]}

    found = set().union(*(pairs(g) for g in groups)) if groups else set()
    by_original: dict[str, list[str]] = {}
    for path, original in truth.items():
        by_original.setdefault(original, []).append(path)
    true = set().union(*(pairs(g) for g in by_original.values()))
    hit = len(found & true)
    return hit / max(len(found), 1), hit / max(len(true), 1)


@pytest.fixture(scope="session")
def copies_collection(tmp_path_factory, builtin_encoder):
    """Every photo plus three of the six variants of it; the photos are the distractors
    for each other. Also one byte-for-byte copy."""
    folder = tmp_path_factory.mktemp("dups")
    truth: dict[str, str] = {}
    names = list(VARIANTS)
    for i, p in enumerate(skimage_photos() + imagenet_photos()):
        shutil.copy2(p, folder / p.name)
        truth[p.name] = p.stem
        with Image.open(p) as img:
            rgb = img.convert("RGB")
            for v in (names[i % 6], names[(i + 2) % 6], names[(i + 4) % 6]):
                (folder / f"{p.stem}~{v}.jpg").write_bytes(VARIANTS[v](rgb))
                truth[f"{p.stem}~{v}.jpg"] = p.stem
    shutil.copy2(folder / "rocket.jpg", folder / "rocket copy.jpg")
    truth["rocket copy.jpg"] = "rocket"
    store = Store(tmp_path_factory.mktemp("dups-store"), root=folder)
    index_folder(folder, store, builtin_encoder)
    paths, vectors = store.load_vectors(builtin_encoder.id)
    records = [store.record(p) for p in paths]
    return paths, vectors, records, truth


def test_near_duplicate_groups_precision_and_recall(copies_collection, builtin_encoder):
    paths, vectors, records, truth = copies_collection
    threshold = presets(builtin_encoder.near_duplicate_threshold)["near-identical"]
    groups = find_duplicates(vectors, records, threshold)
    precision, recall = pair_precision_recall([[paths[r] for r in g.rows] for g in groups], truth)
    print(
        f"\nnear-identical at {threshold}: {len(groups)} groups, "
        f"precision {precision:.3f}, recall {recall:.3f}"
    )
    assert precision >= 0.95 and recall >= 0.95

    rocket = next(g for g in groups if any(paths[r] == "rocket copy.jpg" for r in g.rows))
    assert {paths[r] for r in rocket.rows} >= {"rocket.jpg", "rocket copy.jpg"}
    assert rocket.similarity >= threshold and rocket.keep_reason
    identical = find_duplicates(vectors, records, presets(0.77)["identical"])
    same_bytes = next(g for g in identical if any(paths[r] == "rocket copy.jpg" for r in g.rows))
    assert "rocket.jpg" in {paths[r] for r in same_bytes.rows}
    assert len(identical) < len(groups)  # stricter: fewer groups
    only_copy = [records[paths.index("rocket.jpg")], records[paths.index("rocket copy.jpg")]]
    group = find_duplicates(
        vectors[[paths.index("rocket.jpg"), paths.index("rocket copy.jpg")]], only_copy, 0.99
    )
    assert len(group) == 1 and group[0].exact and group[0].similarity == 1.0


def test_keeper_is_the_highest_resolution_then_largest_then_oldest():
    a = FileRecord("a.jpg", 100, 5, "h1", 400, 300, "JPEG")
    b = FileRecord("b.jpg", 90, 4, "h2", 800, 600, "JPEG")
    assert suggest_keeper([a, b]) == (1, "highest resolution (800 × 600)")
    c = FileRecord("c.jpg", 200, 9, "h3", 400, 300, "JPEG")
    assert suggest_keeper([a, c])[0] == 1 and "largest file" in suggest_keeper([a, c])[1]
    d = FileRecord("d.jpg", 100, 1, "h1", 400, 300, "JPEG", taken="2019:01:01 10:00:00")
    assert suggest_keeper([a, d]) == (1, "oldest (taken 2019:01:01 10:00:00)")


def test_odd_ones_out_rank_first(tmp_path, builtin_encoder):
    folder = tmp_path / "holiday"
    folder.mkdir()
    similar = [
        p for p in skimage_photos() if p.stem in ("chelsea", "coffee", "astronaut", "rocket")
    ]
    for p in similar:  # four subjects, each with several takes
        with Image.open(p) as img:
            rgb = img.convert("RGB")
            for name, make in VARIANTS.items():
                (folder / f"{p.stem}-{name}.jpg").write_bytes(make(rgb))
    odd = [p for p in skimage_photos() if p.stem in ("page", "hubble_deep_field", "coins")]
    for p in odd:
        shutil.copy2(p, folder / p.name)
    with Store(tmp_path / "store", root=folder) as store:
        index_folder(folder, store, builtin_encoder)
        paths, vectors = store.load_vectors(builtin_encoder.id)
    scores = outlier_scores(vectors)
    top = {Path(paths[i]).stem for i in np.argsort(-scores)[: len(odd)]}
    assert top == {p.stem for p in odd}


def test_self_knn_leaves_out_each_row_itself():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[1] = x[0]  # an exact duplicate must not push a row out of its own list
    idx, sims = self_knn(x, 5)
    assert idx.shape == (50, 5)
    assert all(i not in row for i, row in enumerate(idx))
    assert idx[0, 0] == 1 and idx[1, 0] == 0 and sims[0, 0] == pytest.approx(1.0)
    full = x @ x.T
    np.fill_diagonal(full, -np.inf)
    np.testing.assert_array_equal(
        np.sort(idx[2:], axis=1), np.sort(np.argsort(-full[2:], axis=1)[:, :5], axis=1)
    )


def test_cli_duplicates_outliers_tags_and_steered_search(photos_with_copies_dir, app_paths, capsys):
    import json

    from visualsearch.cli import main as cli_main

    folder = str(photos_with_copies_dir)
    assert cli_main(["duplicates", folder, "--json"], paths=app_paths) == 0
    groups = json.loads(capsys.readouterr().out)
    chelsea = next(g for g in groups if "chelsea.png" in [im["path"] for im in g["images"]])
    assert chelsea["keep"] == "chelsea.png" and "largest file" in chelsea["reason"]
    assert len(chelsea["images"]) >= 5

    assert cli_main(["outliers", folder, "-k", "3", "--json"], paths=app_paths) == 0
    odd = json.loads(capsys.readouterr().out)
    assert len(odd) == 3 and odd[0]["score"] >= odd[2]["score"]

    chelsea_path = str(photos_with_copies_dir / "chelsea.png")
    assert cli_main(["tags", folder, chelsea_path, "--json"], paths=app_paths) == 0
    tags = json.loads(capsys.readouterr().out)
    assert "cat" in tags[0]["tag"]
    assert cli_main(["tags", folder, chelsea_path, "--words", "sofa"], paths=app_paths) == 1
    assert "own words need a CLIP model" in capsys.readouterr().err

    code = cli_main(["search", folder, "a cat", "--like", chelsea_path, "--json"], paths=app_paths)
    assert code == 0
    hits = json.loads(capsys.readouterr().out)
    assert "chelsea" in Path(hits[0]["path"]).name and "chelsea.png" not in [
        Path(h["path"]).name for h in hits
    ]
