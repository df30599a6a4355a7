"""Damaged data is found and rebuilt, never trusted: vectors, the map cache, the catalog."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.conftest import distinct_images
from tests.fakes import FakeEncoder
from visualsearch.core.collection import Collection
from visualsearch.core.collection_map import _cache_path, _load_cache, _save_cache, build_map
from visualsearch.core.indexing import index_folder
from visualsearch.core.store import CATALOG, FileRecord, Store, StoreError


@pytest.fixture
def indexed(tmp_path):
    folder = tmp_path / "photos"
    distinct_images(folder, 30, size=64)
    store = Store(tmp_path / "store", root=folder)
    encoder = FakeEncoder()
    index_folder(folder, store, encoder)
    yield folder, store, encoder
    store.close()


def _set_blob(store: Store, path: str, blob: bytes) -> None:
    with store.conn:
        store.conn.execute(
            "UPDATE vectors SET vector=? WHERE hash=(SELECT hash FROM files WHERE path=?)",
            (blob, path),
        )


def test_vector_blobs_of_the_wrong_length_shift_nothing_and_are_encoded_again(indexed):
    """Blobs 2 bytes too long or too short used to shift every later vector by one value."""
    folder, store, encoder = indexed
    paths, clean = store.load_vectors(encoder.id)
    good = {p: v for p, v in zip(paths, clean, strict=True)}
    for p, extra in ((paths[3], b"\0\0"), (paths[10], b"")):
        blob = np.asarray(good[p], np.float16).tobytes()
        _set_blob(store, p, blob + extra if extra else blob[:-2])

    col = Collection(folder, store, encoder)
    assert len(col) == len(paths) - 2
    for p, row in zip(col.paths, col.vectors_of(np.arange(len(col))), strict=True):
        np.testing.assert_array_equal(row, good[p])  # every other vector still its own
    report = index_folder(folder, store, encoder)
    assert report.encoded == 2  # the damaged ones, and only those
    assert len(store.load_vectors(encoder.id)[0]) == len(paths)


def test_a_nan_vector_is_dropped_and_outlier_scores_stay_finite(indexed):
    from visualsearch.core.duplicates import collection_odd_ones_out

    folder, store, encoder = indexed
    paths, _ = store.load_vectors(encoder.id)
    _set_blob(store, paths[0], np.full(encoder.dim, np.nan, np.float16).tobytes())
    col = Collection(folder, store, encoder)
    assert paths[0] not in col.paths
    assert np.isfinite([score for _, score in collection_odd_ones_out(col)]).all()
    assert index_folder(folder, store, encoder).encoded == 1


def test_the_store_refuses_to_keep_a_nan_vector(tmp_path):
    store = Store(tmp_path / "s")
    with pytest.raises(ValueError, match="finite unit"):
        store.commit_batch(
            "m", [FileRecord("a.jpg", 1, 1, "h")], {"h": np.full(8, np.nan, np.float32)}
        )
    assert store.counts()["files"] == 0  # nothing of that batch was written


def test_a_damaged_map_cache_is_computed_again(indexed, tmp_path):
    _folder, store, encoder = indexed
    first = build_map(store, encoder, tmp_path / "cache")
    path = _cache_path(store, encoder.id)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # torn write
    again = build_map(store, encoder, tmp_path / "cache")  # was: BadZipFile, every time
    np.testing.assert_array_equal(again.labels, first.labels)
    assert _load_cache(store, encoder.id) is not None  # and saved whole again


def test_concurrent_map_saves_never_mix(indexed, tmp_path):
    """Two saves at once used one fixed temporary name, so their bytes interleaved."""
    _folder, store, encoder = indexed
    cmap = build_map(store, encoder, tmp_path / "cache")
    big = np.random.default_rng(0).standard_normal((200_000, 2)).astype(np.float32)
    errors = []

    def save(coords):
        try:
            for _ in range(5):
                _save_cache(
                    store,
                    encoder.id,
                    "key",
                    [f"{i}" for i in range(len(coords))],
                    coords,
                    cmap.clustering,
                    np.zeros(len(coords), np.float32),
                )
        except Exception as exc:  # pragma: no cover - the failure being tested
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(c,)) for c in (big, big[:150_000])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with np.load(_cache_path(store, encoder.id)) as data:  # a whole file of one save
        assert len(data["coords"]) in (200_000, 150_000)
    assert not list(store.directory.glob("*.tmp*"))


def test_a_reset_catalog_does_not_reuse_another_collections_map(tmp_path):
    """The map cache was keyed by the store's change counter, which a new catalog counts
    again from zero: another folder with as many images got the old layout."""
    store_dir, encoder = tmp_path / "store", FakeEncoder()
    a, b = tmp_path / "a", tmp_path / "b"
    distinct_images(a, 24, size=64)
    b.mkdir()
    for i, p in enumerate(distinct_images(tmp_path / "b-src", 24, size=48)):
        p.rename(b / f"other_{i:03d}.jpg")
    with Store(store_dir, root=a) as store:
        index_folder(a, store, encoder)
        old = build_map(store, encoder, tmp_path / "cache")
    for name in (CATALOG, CATALOG + "-wal", CATALOG + "-shm"):
        (store_dir / name).unlink(missing_ok=True)
    with Store(store_dir, root=b) as store:
        index_folder(b, store, encoder)
        new = build_map(store, encoder, tmp_path / "cache")
        assert new.paths[0].startswith("other_")
        assert not np.array_equal(new.coords, old.coords)


def test_a_damaged_catalog_says_how_to_recover_in_one_line(tmp_path):
    store_dir = tmp_path / "store"
    Store(store_dir).close()
    (store_dir / CATALOG).write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError) as err:
        Store(store_dir)
    message = str(err.value)
    assert "damaged" in message and "move" in message and "image folder is" in message
    assert "\n" not in message


def test_garbled_model_caches_are_rebuilt(builtin_encoder, app_paths, tmp_path):
    """Damaged bytes in an exported graph (the image or the text network) loaded fine and
    computed NaN vectors; NaN in the cached prompt vectors made every text query NaN."""
    import shutil

    from visualsearch.core.encoders.builtin import BuiltinEncoder

    x = np.random.default_rng(3).standard_normal((2, 3, 260, 260)).astype(np.float32)
    expected = builtin_encoder.embed_images(x)  # both graphs and the prompts are cached now
    builtin_encoder.embed_text(["a cat"])
    models = tmp_path / "cache" / "models"
    shutil.copytree(app_paths.cache_dir / "models", models)
    graphs = sorted([*models.glob("efficientnet-*.onnx"), *models.glob("minilm-*.onnx")])
    assert [g.name.split("-")[0] for g in graphs] == ["efficientnet", "minilm"]
    garbled = {}
    for graph in graphs:
        data = bytearray(graph.read_bytes())
        for pos in range(len(data) // 3, len(data) * 2 // 3, 509):
            data[pos] ^= 0xFF  # inside the weights: the graph still parses
        graph.write_bytes(bytes(data))
        garbled[graph] = bytes(data)
    (prompts,) = models.glob("minilm-prompts-*.npy")
    np.save(prompts, np.full(np.load(prompts).shape, np.nan, np.float32))

    repaired = BuiltinEncoder(cache_dir=tmp_path / "cache")
    assert repaired.backend == builtin_encoder.backend != "pytorch"
    np.testing.assert_allclose(repaired.embed_images(x), expected, atol=1e-4)
    texts = ["a photo of a cat", "a cup of coffee"]
    np.testing.assert_allclose(
        repaired.embed_text(texts), builtin_encoder.embed_text(texts), atol=1e-5
    )
    assert all(graph.read_bytes() != data for graph, data in garbled.items())  # exported again


class _NaNEncoder(FakeEncoder):
    """A damaged model: NaN for every image, or only for the dark ones."""

    def __init__(self, only_dark: bool = False) -> None:
        super().__init__()
        self.only_dark = only_dark

    def embed_images(self, batch: np.ndarray) -> np.ndarray:
        out = super().embed_images(batch)
        dark = batch.reshape(len(batch), -1).mean(1) < 0.05
        out[dark if self.only_dark else slice(None)] = np.nan
        return out


def test_a_model_computing_nan_stops_the_run_and_stores_nothing(tmp_path):
    from visualsearch.core.encoders.base import ModelUnavailable

    folder = tmp_path / "photos"
    distinct_images(folder, 10, size=64)
    store = Store(tmp_path / "store", root=folder)
    with pytest.raises(ModelUnavailable, match="damaged"):
        index_folder(folder, store, _NaNEncoder())
    assert store.counts()["files"] == 0 and not store.vector_counts()
    assert index_folder(folder, store, FakeEncoder()).encoded == 10  # a sound model: all


def test_an_image_the_model_gives_nan_for_is_skipped_with_a_reason(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    distinct_images(folder, 6, size=64)
    Image.new("RGB", (64, 64), (5, 5, 5)).save(folder / "dark.jpg")
    store = Store(tmp_path / "store", root=folder)
    report = index_folder(folder, store, _NaNEncoder(only_dark=True))
    assert report.encoded == 6 and report.failed == 1
    assert report.errors == [("dark.jpg", "the model computed no valid vector for this image")]
    assert np.isfinite(store.load_vectors(FakeEncoder.id)[1]).all()


def test_replace_meta_never_overwrites_a_change_made_in_between(tmp_path):
    """Cluster names are saved by read-modify-write from two threads (a rename, a map
    being named): the second write must see that the first changed the value."""
    with Store(tmp_path / "store") as store:
        assert store.replace_meta("names", None, "a")
        assert not store.replace_meta("names", None, "b")  # it exists now
        other = Store(tmp_path / "store")
        assert other.replace_meta("names", "a", "from the other thread")
        other.close()
        assert not store.replace_meta("names", "a", "stale")  # read "a", but it changed
        assert store.get_meta("names") == "from the other thread"


def test_a_store_from_a_newer_version_is_refused_and_a_half_made_one_opens(tmp_path):
    """The check of the schema version hung off the new store-identity check: a store
    written by a newer visualsearch was opened whenever it had no identity yet, and a
    store whose identity was written but not its version (two opens at once on a new
    catalog: the window's search thread and its indexing run) raised TypeError."""
    import sqlite3

    with Store(tmp_path / "newer"):
        pass
    with sqlite3.connect(tmp_path / "newer" / CATALOG) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
        db.execute("DELETE FROM meta WHERE key='store_id'")
    with pytest.raises(StoreError, match="newer visualsearch"):
        Store(tmp_path / "newer")

    with Store(tmp_path / "half") as store:
        identity = store.identity
    with sqlite3.connect(tmp_path / "half" / CATALOG) as db:
        db.execute("DELETE FROM meta WHERE key='schema_version'")
    with Store(tmp_path / "half") as store:
        assert store.identity == identity and store.get_meta("schema_version") == "1"


@pytest.mark.parametrize(
    "field, value",
    [
        ("scores", np.array(["a"] * 30)),  # text: TypeError
        ("labels", np.zeros(30, np.float64)),  # float labels: TypeError
        ("centres", np.ones((3, 96), np.float32)),  # another model's size: matmul error
        ("scores", np.full(30, 7.0, np.float32)),  # not a similarity
    ],
)
def test_a_loadable_but_wrong_map_cache_is_computed_again(indexed, tmp_path, field, value):
    """Caches that np.load reads but that are not a map crashed the map instead of being
    made again; a cache with centres of another size made `rename_cluster` open the
    vector file at that size, which dropped every sound vector of the catalog."""
    from visualsearch.core.collection_map import rename_cluster

    _folder, store, encoder = indexed
    first = build_map(store, encoder, tmp_path / "cache", k=3)
    path = _cache_path(store, encoder.id)
    with np.load(path) as data:
        saved = dict(data)
    saved[field] = value
    with open(path, "wb") as fh:
        np.savez(fh, **saved)
    vectors = len(store.load_vectors(encoder.id)[0])
    rename_cluster(store, encoder.id, 3, 0, "mine")  # members read from the cache
    assert len(store.load_vectors(encoder.id)[0]) == vectors == 30
    again = build_map(store, encoder, tmp_path / "cache", k=3)
    assert again.clustering.k == 3 and len(again.paths) == len(first.paths)
    assert np.all(np.abs(again.scores) <= 1.01)


def test_vectors_of_another_size_are_refused_not_dropped(indexed):
    """Opening a model's vectors at a size they do not have read every one as damaged
    and dropped it from the catalog: they are refused with the reason instead."""
    from visualsearch.core.vector_file import LiveVectors

    _folder, store, encoder = indexed
    with pytest.raises(ValueError, match="48 values, not 96"):
        LiveVectors(store, encoder.id, 96)
    assert len(store.load_vectors(encoder.id)[0]) == 30


def test_a_row_damaged_in_the_vector_file_is_read_again_from_the_catalog_for_the_map(
    indexed, tmp_path
):
    """A row of the vector file damaged on disk (the catalog's copy sound) made the map's
    layout fail; it is now replaced from the catalog and the map has every image."""
    from visualsearch.core.vector_file import LiveVectors

    _folder, store, encoder = indexed
    live = LiveVectors(store, encoder.id, encoder.dim)
    row = int(live.rows[5])
    with open(live.file.vectors_path, "r+b") as fh:  # bytes flipped on disk
        fh.seek(row * live.file.row_bytes)
        fh.write(np.full(encoder.dim, np.nan, np.float16).tobytes())
    cmap = build_map(store, encoder, tmp_path / "cache", relayout=True)
    assert cmap.paths == live.paths  # every image, the damaged one too
    assert np.isfinite(cmap.coords).all() and np.isfinite(cmap.scores).all()
    again = LiveVectors(store, encoder.id, encoder.dim)
    assert int(again.rows[5]) != row  # a fresh row from the catalog's sound copy
    np.testing.assert_array_equal(
        again.vectors[5:6], store.load_vectors(encoder.id)[1][5:6].astype(np.float32)
    )
