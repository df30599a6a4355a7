"""Duplicate groups, keepers and odd ones out, on real photos with the built-in model."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visualsearch.core.duplicates import (
    DuplicateGroup,
    find_duplicates,
    group_dicts,
    odd_ones_out,
    outlier_scores,
    presets,
    suggest_keeper,
    write_groups_csv,
)
from visualsearch.core.image_detail import ImageDetail
from visualsearch.core.indexing import index_folder
from visualsearch.core.neighbours import self_knn
from visualsearch.core.sample import VARIANTS, imagenet_photos, skimage_photos
from visualsearch.core.store import FileRecord, Store
from visualsearch.core.trash import move_to_trash, trash_listing


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


def test_keeper_tie_breaks_camera_then_oldest_then_largest_then_lossless():
    a = FileRecord("a.jpg", 100, 5, "h1", 400, 300, "JPEG")
    c = FileRecord("c.jpg", 200, 5, "h3", 400, 300, "JPEG")
    assert suggest_keeper([a, c]) == (1, "largest file (0.0 MB)")
    d = FileRecord("d.jpg", 100, 9, "h1", 400, 300, "JPEG", taken="2019:01:01 10:00:00")
    assert suggest_keeper([a, d]) == (1, "oldest (taken 2019:01:01 10:00:00)")
    e = FileRecord("e.png", 100, 5, "h4", 400, 300, "PNG")
    assert suggest_keeper([a, e]) == (1, "lossless format")
    same = ImageDetail(400, 300, 0.7, 0.7, None)
    camera = ImageDetail(400, 300, 0.7, 0.7, "Canon EOS 5D")
    assert suggest_keeper([d, c], [same, camera]) == (1, "camera EXIF")
    assert suggest_keeper([d, c], [None, same]) == (1, "the others cannot be read")


def _photo(stem: str) -> Path:
    return next(p for p in skimage_photos() + imagenet_photos() if p.stem == stem)


def _upscaled_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.resize((img.width * 2, img.height * 2), Image.Resampling.BICUBIC).save(buf, "PNG")
    return buf.getvalue()


def _record(root: Path, rel: str) -> FileRecord:
    path = root / rel
    st = path.stat()
    with Image.open(path) as img:
        w, h, fmt = img.width, img.height, img.format
    return FileRecord(rel, st.st_size, st.st_mtime_ns, _hash(path), w, h, fmt)


def _hash(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _keeper(root: Path, rels: list[str]) -> tuple[str, DuplicateGroup]:
    """find_duplicates on `rels` as one group (identical vectors): the keeper and group."""
    records = [_record(root, rel) for rel in rels]
    vectors = np.tile(np.eye(1, 8, dtype=np.float32), (len(rels), 1))
    (group,) = find_duplicates(vectors, records, 0.9, root=root)
    return group.members[0].path, group


@pytest.mark.parametrize(
    "stem", ["chelsea", "astronaut", "coffee", "motorcycle_left", "rocket", "imagenet_06_609"]
)
def test_original_is_kept_over_upscaled_recompressed_and_cropped_copies(tmp_path, stem):
    """All with the same date and no EXIF: only what the pixels hold tells them apart. The
    2× upscale has the most pixels, the JPEG q25 copy the strongest 8-px block edges."""
    original = _photo(stem)
    shutil.copy(original, tmp_path / original.name)
    with Image.open(original) as img:
        rgb = img.convert("RGB")
    (tmp_path / f"{stem}-2x.png").write_bytes(_upscaled_png(rgb))
    (tmp_path / f"{stem}-q25.jpg").write_bytes(VARIANTS["q25"](rgb))
    (tmp_path / f"{stem}-crop.jpg").write_bytes(VARIANTS["crop"](rgb))
    rels = sorted(p.name for p in tmp_path.iterdir())
    for rel in rels:
        os.utime(tmp_path / rel, ns=(1_500_000_000 * 10**9, 1_500_000_000 * 10**9))
    keeper, group = _keeper(tmp_path, rels)
    assert keeper == original.name, group.keep_reason
    assert "most detail" in group.keep_reason
    assert f"{stem}-2x.png is {2 * rgb.width} × {2 * rgb.height} but upscaled" in (
        group.keep_reason
    )


def test_original_is_kept_over_every_later_copy_and_a_link(tmp_path):
    """The sample variants, a 2× upscale and a link to the original, made after it."""
    for stem in ("chelsea", "coffee", "rocket", "imagenet_00_243", "imagenet_10_541"):
        root = tmp_path / stem
        (root / "copies").mkdir(parents=True)
        original = _photo(stem)
        shutil.copy2(original, root / original.name)  # keeps the photo's older date
        with Image.open(original) as img:
            rgb = img.convert("RGB")
        (root / "copies" / "2x.png").write_bytes(_upscaled_png(rgb))
        for name, make in VARIANTS.items():
            (root / "copies" / f"{name}.jpg").write_bytes(make(rgb))
        (root / "a-link.jpg").symlink_to(root / original.name)
        rels = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix]
        keeper, group = _keeper(root, rels)
        assert keeper == original.name, (stem, group.keep_reason)
        link = group.members.index(next(r for r in group.members if r.path == "a-link.jpg"))
        assert group.protected[link] == f"a link to {original.name}"
        assert [bool(p) for p in group.protected].count(True) == 1


def test_links_and_files_outside_the_folder_are_never_kept_nor_trashed(tmp_path):
    """`best/a.jpg` links to `2019/IMG_0001.jpg`; `elsewhere/` is a linked folder whose
    files lie outside the opened folder. Only the real upscaled copy may go."""
    root, outside = tmp_path / "photos", tmp_path / "outside"
    (root / "2019").mkdir(parents=True)
    (root / "best").mkdir()
    outside.mkdir()
    shutil.copy2(_photo("chelsea"), root / "2019" / "IMG_0001.jpg")
    (root / "best" / "a.jpg").symlink_to(root / "2019" / "IMG_0001.jpg")
    shutil.copy2(_photo("chelsea"), outside / "b.png")
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)
    with Image.open(_photo("chelsea")) as img:
        (root / "2019" / "big.png").write_bytes(_upscaled_png(img.convert("RGB")))
    rels = ["best/a.jpg", "elsewhere/b.png", "2019/big.png", "2019/IMG_0001.jpg"]
    keeper, group = _keeper(root, rels)
    assert keeper == "2019/IMG_0001.jpg" and "the real file, not a link" in group.keep_reason
    assert _keeper(root, ["best/a.jpg", "2019/IMG_0001.jpg"])[0] == "2019/IMG_0001.jpg"
    why = dict(zip([r.path for r in group.members], group.protected, strict=True))
    assert why["best/a.jpg"] == "a link to 2019/IMG_0001.jpg"
    assert why["elsewhere/b.png"].startswith("reached through the linked folder elsewhere")
    assert why["2019/big.png"] == "" and why["2019/IMG_0001.jpg"] == ""

    before = {p: p.read_bytes() for p in (outside / "b.png", root / "2019" / "IMG_0001.jpg")}
    asked = [root / "best" / "a.jpg", root / "elsewhere" / "b.png", root / "2019" / "big.png"]
    listing = trash_listing(asked, root)
    assert listing[0] == f"not moved: {asked[0]} (a link to 2019/IMG_0001.jpg)"
    assert listing[1].startswith(f"not moved: {asked[1]} (reached through the linked folder")
    assert str(outside / "b.png") in listing[1] and listing[2] == str(asked[2])
    moved, failed = move_to_trash(asked, root)
    assert moved == [root / "2019" / "big.png"]
    assert [p for p, _ in failed] == asked[:2]
    assert all(why.startswith("not moved: ") for _, why in failed)
    assert (root / "best" / "a.jpg").is_symlink() and (root / "elsewhere").is_symlink()
    assert {p: p.read_bytes() for p in before} == before
    moved, failed = move_to_trash([outside / "b.png"], root)
    assert moved == [] and "outside the folder" in failed[0][1]


def test_grouping_memory_stays_bounded_for_thousands_of_identical_images():
    """4,000 identical vectors form one group: its weakest link comes from the neighbour
    lists, not from a 4,000 × 4,000 matrix (64 MB)."""
    import tracemalloc

    n = 4000
    vectors = np.tile(np.eye(1, 32, dtype=np.float32), (n, 1))
    records = [FileRecord(f"{i:05d}.jpg", 100, i, None, 10, 10, "JPEG") for i in range(n)]
    find_duplicates(vectors[:10], records[:10], 0.9)  # imports and warm-up
    tracemalloc.start()
    try:
        groups = find_duplicates(vectors, records, 0.9)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(groups) == 1 and len(groups[0].rows) == n
    assert groups[0].similarity == pytest.approx(1.0)
    assert peak < 16e6, f"peak {peak / 1e6:.0f} MB"


@pytest.mark.parametrize("threshold", [-1.0, 1.5, float("nan")])
def test_thresholds_outside_zero_to_one_are_refused(threshold):
    vectors = np.eye(3, 4, dtype=np.float32)
    records = [FileRecord(f"{i}.jpg", 1, 1) for i in range(3)]
    with pytest.raises(ValueError, match="threshold must be from 0 to 1"):
        find_duplicates(vectors, records, threshold)


def test_cli_refuses_a_threshold_outside_zero_to_one(tmp_path, app_paths, capsys):
    from visualsearch.cli import main as cli_main

    assert cli_main(["duplicates", str(tmp_path), "--threshold", "-1"], paths=app_paths) == 1
    err = capsys.readouterr().err
    assert err == "visualsearch: error: the similarity threshold must be from 0 to 1, not -1.0\n"


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
    ranked = odd_ones_out(vectors, limit=len(odd))
    assert {Path(paths[r]).stem for r, _ in ranked} == {p.stem for p in odd}
    scores = outlier_scores(vectors)
    assert [s for _, s in ranked] == sorted(scores, reverse=True)[: len(odd)]
    everyone = odd_ones_out(vectors)  # no limit: every image, the oddest first
    assert sorted(r for r, _ in everyone) == list(range(len(paths)))
    assert [s for _, s in everyone] == sorted(scores, reverse=True)


def test_the_json_groups_and_the_csv_rows_are_the_same_data(copies_collection, tmp_path):
    """The CLI's JSON, its table and the window's CSV list the same groups and keepers."""
    import csv
    import json

    paths, vectors, records, _ = copies_collection
    groups = find_duplicates(vectors, records, 0.9)
    data = group_dicts(groups)
    assert json.loads(json.dumps(data)) == data  # plain data, ready for JSON
    assert len(data) == len(groups) >= 10
    for g, d in zip(groups, data, strict=True):
        assert [im["path"] for im in d["images"]] == [paths[r] for r in g.rows]
        assert d["keep"] == paths[g.rows[0]] and d["reason"] == g.keep_reason
        assert d["images"][0]["bytes"] == records[g.rows[0]].size
    root = Path("/photos")
    with open(write_groups_csv(groups, root, tmp_path / "dups.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(len(d["images"]) for d in data)
    keepers = [r for r in rows if r["keep"] == "yes"]
    assert [r["path"] for r in keepers] == [str(root / d["keep"]) for d in data]
    assert [r["reason"] for r in keepers] == [d["reason"] for d in data]
    assert [r["similarity"] for r in keepers] == [f"{d['similarity']:.4f}" for d in data]


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
    assert chelsea["keep"] == "chelsea.png" and "most detail" in chelsea["reason"]
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
