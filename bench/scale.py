"""A library of a million images: open, query, change, in bounded memory.

    python bench/scale.py [--images 1000000] [--dims 1280,512] [--data DIR] [--options]

Builds (or reuses, under --data) a store of N synthetic images (the real schema,
clustered unit vectors) per vector size — 1280-d for the built-in model, 512-d for
CLIP — runs the one-time vector-file fill and segment build, then measures in a fresh
process per size: open → first query answered, the process's peak resident memory above
the interpreter and loaded libraries, query latency and recall@10 against exact search,
1,000 images added → searchable, 1,000 deleted → never returned; then, each in a fresh
process of its own, duplicate groups and the odd ones out over the whole library (with
1,000 planted near copies and 20 planted odd images, removed again afterwards), and the
map: a full layout with clusters, then 1,000 new images placed on it; and 10 new photos
indexed by their paths only (what the window does when its watcher sees them) until
they are searchable. With --options it
also builds, at the same size, the index options the default was chosen from (projection
sizes; exact search of the float16 file) and prints their table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MODEL = "bench-m"
QUERIES = 100
CHANGE = 1000


def clustered(n: int, dim: int, seed: int, centre_seed: int | None = None) -> np.ndarray:
    """n unit vectors around 100 centres (one group of photos: 200 images a subject)."""
    centres = np.random.default_rng(seed if centre_seed is None else centre_seed)
    centres = centres.standard_normal((100, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    rows = centres[rng.integers(0, len(centres), n)]
    rows += 0.6 * rng.standard_normal((n, dim), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def queries(n: int, dim: int) -> np.ndarray:
    """New photos of subjects in the library: the centres of its first 20,000 images,
    fresh noise (queries from nowhere near any image make every neighbour a tie)."""
    return clustered(n, dim, seed=7, centre_seed=dim)


def records(lo: int, hi: int):
    from visualsearch.core.store import FileRecord

    return [
        FileRecord(f"{i // 1000:04d}/{i:07d}.jpg", 1, 1, f"{i + 1:032x}") for i in range(lo, hi)
    ]


def fill(store, lo: int, hi: int, dim: int, seed: int) -> None:
    for start in range(lo, hi, 20_000):
        commit(store, start, clustered(min(hi, start + 20_000) - start, dim, seed + start))


def commit(store, lo: int, vectors: np.ndarray) -> list:
    """Synthetic images lo, lo+1, … with `vectors`, committed; their records."""
    recs = records(lo, lo + len(vectors))
    store.commit_batch(MODEL, recs, {r.hash: v for r, v in zip(recs, vectors, strict=True)})
    return recs


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakPrivate:
    """The largest private (anonymous) resident memory seen, sampled every 5 ms: what the
    process itself holds. Pages of mapped files (the vector file, index segments) are
    counted apart: they are the page cache, shared and dropped under memory pressure."""

    def __init__(self) -> None:
        import threading

        self.base, self.peak, self.stop = rss_mb("RssAnon"), 0.0, False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            self.peak = max(self.peak, rss_mb("RssAnon") - self.base)
            time.sleep(0.005)

    def read(self) -> float:
        self.peak = max(self.peak, rss_mb("RssAnon") - self.base)
        return self.peak


class Vectors:
    def __init__(self, dim: int) -> None:
        self.id, self.dim = MODEL, dim


def exact_top10(vectors, rows: np.ndarray, asked: np.ndarray) -> list[set[int]]:
    """The true 10 nearest rows of each query: one pass over the file for all of them."""
    best = [(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in asked]
    for lo in range(0, len(rows), 65_536):
        chunk = rows[lo : lo + 65_536]
        scores = vectors.read(chunk) @ asked.T
        for j, (r, sc) in enumerate(best):
            r, sc = np.concatenate([r, chunk]), np.concatenate([sc, scores[:, j]])
            top = np.argpartition(-sc, 9)[:10]
            best[j] = (r[top], sc[top])
    return [set(r.tolist()) for r, _ in best]


def prepare(data: Path, n: int, dim: int) -> Path:
    """The store (made once), its vector file and segments (built once); prints the cost."""
    from visualsearch.core import segments
    from visualsearch.core.store import Store

    directory = data / f"store-{n}-{dim}"
    store = Store(directory)
    have = store.counts()["files"]
    if have < n:
        t = time.perf_counter()
        fill(store, have, n, dim, seed=dim)
        print(f"  made the synthetic store: {time.perf_counter() - t:.0f} s (setup)")
    t = time.perf_counter()
    built = segments.maintain_index(store, MODEL, dim)
    if built:
        print(
            f"  one-time fill of the vector file and segment build: "
            f"{time.perf_counter() - t:.0f} s ({built} segment)"
        )
    store.close()
    return directory


def measure(directory: Path, dim: int) -> dict:
    """In a fresh process: what a user's session costs."""
    import annoy  # noqa: F401  (loaded libraries are the baseline)

    from visualsearch.core.collection import Collection
    from visualsearch.core.store import Store

    private = PeakPrivate()
    out: dict = {}
    asked = queries(QUERIES, dim)
    t = time.perf_counter()
    store = Store(directory)
    col = Collection(directory, store, Vectors(dim))
    col.search_vector(asked[0], 10)
    out["open_first_query_s"] = time.perf_counter() - t
    out["n"], out["kind"] = len(col), col.index.kind

    times, answers = [], []
    for q in asked:
        t = time.perf_counter()
        rows, _ = col.index.search(q, 10)
        times.append(time.perf_counter() - t)
        answers.append(set(rows.tolist()))
    out["query_ms"] = float(np.median(times) * 1000)
    out["query_p95_ms"] = float(np.percentile(times, 95) * 1000)
    out["peak_mb"] = private.read()
    out["mapped_mb"] = rss_mb("RssFile")
    # 1,000 images added: committed, then searchable through a re-open (what the engine does)
    added = clustered(CHANGE, dim, seed=11, centre_seed=dim)
    recs = commit(store, store.counts()["files"], added)
    t = time.perf_counter()
    col = Collection(directory, store, Vectors(dim))
    col.search_vector(added[0], 1)
    out["add_searchable_s"] = time.perf_counter() - t
    found = [col.search_vector(v, 1)[0].path.name for v in added[:100]]
    names = [r.path.split("/")[1] for r in recs[:100]]
    out["added_found"] = float(np.mean([f == n for f, n in zip(found, names, strict=True)]))
    # …and deleted again
    store.remove_paths([r.path for r in recs])
    t = time.perf_counter()
    col = Collection(directory, store, Vectors(dim))
    col.search_vector(added[0], 10)
    out["delete_s"] = time.perf_counter() - t
    back = [h.path.name for v in added[:100] for h in col.search_vector(v, 10)]
    out["deleted_returned"] = len(set(back) & {r.path.split("/")[1] for r in recs})
    out["peak_mb_after_changes"] = private.read()
    # last, so that its scan of every vector does not count in the figures above; the
    # 1,000 added were deleted again: the same images as the queries above searched
    truth = exact_top10(col.vectors, col.live_rows, asked)
    out["recall"] = float(np.mean([len(a & b) / 10 for a, b in zip(answers, truth, strict=False)]))
    store.close()
    return out


class MapModel:
    """What the map needs of a model: its id, size, duplicate threshold and zero-shot
    vocabulary (random directions stand in for the class names here)."""

    near_duplicate_threshold = 0.9

    def __init__(self, dim: int) -> None:
        self.id, self.dim = MODEL, dim
        rng = np.random.default_rng(3)
        self.classifier = rng.standard_normal((1000, dim)).astype(np.float32)


def plant(store, col, dim: int) -> tuple[list[tuple[str, str]], list[str]]:
    """1,000 near copies of library images (similarity ~0.97) and 20 images unlike any
    other, committed; returns (original, copy) pairs and the odd ones' paths."""
    rng = np.random.default_rng(21)
    originals = np.sort(rng.choice(len(col), CHANGE, replace=False))
    base = col.vectors_of(originals)
    copies = base + 0.25 / np.sqrt(dim) * rng.standard_normal(base.shape).astype(np.float32)
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    odd = rng.standard_normal((20, dim)).astype(np.float32)
    odd /= np.linalg.norm(odd, axis=1, keepdims=True)
    recs = commit(store, store.counts()["files"] + 10_000, np.concatenate([copies, odd]))
    pairs = [(col.paths[o], r.path) for o, r in zip(originals.tolist(), recs, strict=False)]
    return pairs, [r.path for r in recs[CHANGE:]]


def measure_cleanup(directory: Path, dim: int) -> dict:
    """In a fresh process: duplicate groups over every image from scratch, the odd ones
    out after them (from the kept neighbour graph), and the duplicates again after
    1,000 images were added."""
    import annoy  # noqa: F401

    from visualsearch.core.collection import Collection
    from visualsearch.core.duplicates import collection_duplicates, collection_odd_ones_out
    from visualsearch.core.neighbour_graph import graph_path
    from visualsearch.core.store import Store

    store = Store(directory)
    col = Collection(directory, store, Vectors(dim))
    graph_path(col.vectors).unlink(missing_ok=True)
    pairs, odd = plant(store, col, dim)
    added: list[str] = []
    out: dict = {}

    def duplicates(name: str):
        private, t = PeakPrivate(), time.perf_counter()
        col = Collection(directory, store, Vectors(dim))
        groups = collection_duplicates(col, 0.95, judge_pixels=False)
        out[f"{name}_s"], out[f"{name}_peak_mb"] = time.perf_counter() - t, private.read()
        return col, groups

    try:
        col, groups = duplicates("duplicates")
        group_of = {r.path: i for i, g in enumerate(groups) for r in g.members}
        found = [a in group_of and group_of.get(a) == group_of.get(b) for a, b in pairs]
        out["pairs_found"] = float(np.mean(found))
        out["groups"] = len(groups)
        out["n"] = len(col)
        t = time.perf_counter()
        ranked = collection_odd_ones_out(col, len(odd))
        out["odd_s"] = time.perf_counter() - t
        out["odd_found"] = len({col.paths[r] for r, _ in ranked} & set(odd)) / len(odd)
        new = clustered(CHANGE, dim, seed=41, centre_seed=dim)
        added = [r.path for r in commit(store, store.counts()["files"] + 30_000, new)]
        _, again = duplicates("update")
        out["groups_after"] = len(again)
    finally:
        store.remove_paths([b for _, b in pairs] + odd + added)
        store.close()
    return out


def measure_map(directory: Path, dim: int) -> dict:
    """In a fresh process: the map laid out from scratch, then 1,000 new images placed."""
    import tempfile

    import annoy  # noqa: F401

    from visualsearch.core.collection_map import build_map
    from visualsearch.core.store import Store

    store = Store(directory)
    model = MapModel(dim)
    out: dict = {}
    with tempfile.TemporaryDirectory() as cache:
        private = PeakPrivate()
        t = time.perf_counter()
        cmap = build_map(store, model, Path(cache), relayout=True)
        out["layout_s"] = time.perf_counter() - t
        out["layout_peak_mb"] = private.read()
        out["clusters"] = cmap.clustering.k
        added = clustered(CHANGE, dim, seed=31, centre_seed=dim)
        recs = commit(store, store.counts()["files"] + 20_000, added)
        try:
            private = PeakPrivate()
            t = time.perf_counter()
            placed = build_map(store, model, Path(cache))
            out["place_s"] = time.perf_counter() - t
            out["placed"] = placed.placed
            out["place_peak_mb"] = private.read()
        finally:
            store.remove_paths([r.path for r in recs])
    store.close()
    return out


class PixelModel(Vectors):
    """An encoder for the watch measure: a photo's vector is a fixed projection of its
    8 × 8 pixels (the model's cost is not what is measured)."""

    input_size, backend, classifier, near_duplicate_threshold = 8, "numpy", None, 0.9

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.projection = np.random.default_rng(5).standard_normal((192, dim)).astype(np.float32)

    def preprocess(self, image) -> np.ndarray:
        return np.asarray(image.convert("RGB").resize((8, 8)), np.float32).ravel() / 255

    def embed_images(self, batch: np.ndarray) -> np.ndarray:
        v = (batch - 0.5) @ self.projection
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def measure_watch(directory: Path, dim: int) -> dict:
    """In a fresh process: 10 photos that a watcher saw arrive in a library of a million
    indexed by their paths only, then searchable (the window's path after a burst)."""
    import tempfile

    from PIL import Image

    from visualsearch.core.collection import Collection
    from visualsearch.core.indexing import IndexOptions, index_folder
    from visualsearch.core.store import Store

    store = Store(directory)
    model = PixelModel(dim)
    rng = np.random.default_rng(8)
    out: dict = {}
    with tempfile.TemporaryDirectory() as root:
        names = [f"watched/new-{i}.jpg" for i in range(10)]
        (Path(root) / "watched").mkdir()
        for name in names:
            pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(Path(root) / name, quality=90)
        try:
            t = time.perf_counter()
            report = index_folder(root, store, model, options=IndexOptions(only=tuple(names)))
            out["indexed_s"] = time.perf_counter() - t
            col = Collection(Path(root), store, model)
            hit = col.similar_to(Path(root) / names[3], k=1, include_self=True)[0]
            out["searchable_s"] = time.perf_counter() - t
            out["found"] = hit.path.name == "new-3.jpg"
            out["new"], out["scanned"], out["n"] = report.new, report.scanned, len(col)
        finally:
            store.remove_paths(names)
            store.close()
    return out


def options(directory: Path, dim: int, sizes: list[int]) -> list[dict]:
    """Index options at this size: bytes per image, build, query, recall@10."""
    from annoy import AnnoyIndex

    from visualsearch.core import segments
    from visualsearch.core.store import Store
    from visualsearch.core.vector_file import LiveVectors
    from visualsearch.core.vector_index import ExactRows

    store = Store(directory)
    live = LiveVectors(store, MODEL, dim)
    vectors, rows = live.file, live.unique_rows()
    asked = queries(30, dim)
    rng = np.random.default_rng(0)
    exact = ExactRows(vectors, rows)
    t = time.perf_counter()
    for q in asked[:5]:
        exact.search(q, 10)
    exact_ms = (time.perf_counter() - t) / 5 * 1000
    truth = exact_top10(vectors, rows, asked)
    table = [
        {
            "option": "exact scan of the float16 file",
            "bytes": dim * 2,
            "build_s": 0.0,
            "query_ms": exact_ms,
            "recall": 1.0,
        }
    ]
    _, _, vt = np.linalg.svd(vectors.read(np.sort(rng.choice(rows, 20_000, False))), False)
    for compact in sorted({min(c, dim) for c in sizes}):
        projection = np.ascontiguousarray(vt[:compact].T) if compact < dim else np.eye(dim)
        projection = projection.astype(np.float32)
        path = directory / f"option-{compact}.ann"
        t = time.perf_counter()
        index = AnnoyIndex(compact, "angular")
        index.on_disk_build(str(path))
        for lo in range(0, len(rows), 65_536):
            for i, v in enumerate(vectors.read(rows[lo : lo + 65_536]) @ projection, lo):
                index.add_item(i, v)
        index.build(segments.TREES, n_jobs=-1)
        build_s = time.perf_counter() - t
        times, recall = [], []
        for q, want in zip(asked, truth, strict=True):
            t = time.perf_counter()
            c = segments.CANDIDATES
            ids = index.get_nns_by_vector(
                (q @ projection).tolist(), c, search_k=c * segments.TREES * segments.SEARCH_FACTOR
            )
            cand = rows[np.asarray(ids)]
            best = cand[np.argsort(-(vectors.read(cand) @ q))[:10]]
            times.append(time.perf_counter() - t)
            recall.append(len(set(best.tolist()) & want) / 10)
        table.append(
            {
                "option": f"Annoy on {compact}-d projections + re-rank"
                if compact < dim
                else f"Annoy on the {dim}-d vectors + re-rank",
                "bytes": path.stat().st_size / len(rows) + dim * 2,
                "build_s": build_s,
                "query_ms": float(np.median(times) * 1000),
                "recall": float(np.mean(recall)),
            }
        )
        index.unload()
        path.unlink()
    store.close()
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--dims", default="1280,512")
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    parser.add_argument("--options", action="store_true")
    parser.add_argument(
        "--option-dims",
        default="128,256,512,full",
        help="projection sizes for --options ('full': the vectors as they are)",
    )
    measures = {
        "measure": measure,
        "measure_cleanup": measure_cleanup,
        "measure_map": measure_map,
        "measure_watch": measure_watch,
    }
    for name in [*measures, "measure_options"]:  # one measurement in a child process
        parser.add_argument("--" + name.replace("_", "-"), type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--skip",
        default="",
        help="parts left out: any of search,cleanup,map,watch (comma-separated)",
    )
    parser.add_argument("--dim", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name, fn in measures.items():
        if getattr(args, name):
            print(json.dumps(fn(getattr(args, name), args.dim)))
            return
    if args.measure_options:
        sizes = [args.dim if d == "full" else int(d) for d in args.option_dims.split(",")]
        print(json.dumps(options(args.measure_options, args.dim, sizes)))
        return
    args.data.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for dim in map(int, args.dims.split(",")):
        print(f"{args.images:,} images × {dim}-d:", flush=True)
        directory = prepare(args.data, args.images, dim)
        child = [sys.executable, __file__, "--dim", str(dim)]
        skip = set(args.skip.split(","))

        def run(flag: str, child=child, directory=directory) -> dict:
            """One measurement in a fresh process: its own peak memory, nothing cached."""
            res = subprocess.run(
                [*child, flag, str(directory)], capture_output=True, text=True, env=env
            )
            if res.returncode:
                sys.exit(res.stderr)
            return json.loads(res.stdout.splitlines()[-1])

        if "search" not in skip:
            m = run("--measure")
            print(
                f"  open → first query answered {m['open_first_query_s']:.2f} s "
                f"({m['kind']}, {m['n']:,} images)\n"
                f"  peak private memory above the interpreter and libraries {m['peak_mb']:.0f} MB "
                f"({m['peak_mb_after_changes']:.0f} MB with the changes below); pages of the "
                f"mapped vector file and segments resident after the queries: "
                f"{m['mapped_mb']:.0f} MB\n"
                f"  query {m['query_ms']:.1f} ms median, {m['query_p95_ms']:.1f} ms p95; "
                f"recall@10 against exact {m['recall']:.3f}\n"
                f"  +{CHANGE:,} images → searchable {m['add_searchable_s']:.2f} s after their "
                f"commit (each found as itself: {m['added_found']:.0%})\n"
                f"  -{CHANGE:,} images → {m['delete_s']:.2f} s; returned again: "
                f"{m['deleted_returned']}",
                flush=True,
            )
        if "cleanup" not in skip:
            m = run("--measure-cleanup")
            print(
                f"  duplicate groups over {m['n']:,} images, from scratch: "
                f"{m['duplicates_s']:.0f} s, peak private memory "
                f"{m['duplicates_peak_mb']:.0f} MB; planted near copies found "
                f"{m['pairs_found']:.1%} ({m['groups']:,} groups)\n"
                f"  odd ones out after them: {m['odd_s']:.1f} s; the 20 planted ones among "
                f"the first 20: {m['odd_found']:.0%}\n"
                f"  +{CHANGE:,} images → duplicate groups again {m['update_s']:.1f} s "
                f"(peak {m['update_peak_mb']:.0f} MB, {m['groups_after']:,} groups)",
                flush=True,
            )
        if "watch" not in skip:
            m = run("--measure-watch")
            print(
                f"  {m['new']} photos a watcher saw arrive → indexed by their paths only "
                f"{m['indexed_s'] * 1000:.0f} ms ({m['scanned']} files looked at), searchable "
                f"{m['searchable_s']:.1f} s (found: {m['found']}; {m['n']:,} images)",
                flush=True,
            )
        if "map" not in skip:
            m = run("--measure-map")
            print(
                f"  map: full layout and {m['clusters']} clusters {m['layout_s']:.0f} s "
                f"(peak private memory {m['layout_peak_mb']:.0f} MB); {CHANGE:,} new images "
                f"placed ({m['placed']:,}) {m['place_s']:.1f} s (peak {m['place_peak_mb']:.0f} MB)",
                flush=True,
            )
        if args.options:
            res = subprocess.run(
                [*child, "--option-dims", args.option_dims, "--measure-options", str(directory)],
                capture_output=True,
                text=True,
                env=env,
            )
            if res.returncode:
                sys.exit(res.stderr)
            print("  | index | bytes/image | build | query | recall@10 |")
            print("  |---|---|---|---|---|")
            for row in json.loads(res.stdout.splitlines()[-1]):
                print(
                    f"  | {row['option']} | {row['bytes']:,.0f} | {row['build_s']:.0f} s | "
                    f"{row['query_ms']:.1f} ms | {row['recall']:.3f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
