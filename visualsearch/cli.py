"""Headless commands: index, search, similar, info, clusters, export, duplicates,
outliers, tags, models, sample, demo. Each parses its arguments, calls core and
renders what it returns.

Every command prints a readable table, or JSON with --json. Errors print one
clear line on stderr and exit with status 1; Ctrl+C exits with 130 after the
finished batches are saved.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path

from visualsearch import __version__
from visualsearch.core import interrupts
from visualsearch.core.collection import Collection, Hit
from visualsearch.core.encoders import default_model_spec, load_encoder
from visualsearch.core.errors import USER_ERRORS, user_message
from visualsearch.core.folder import (
    ModelChoice,
    index_and_record,
    open_store,
    remembered_model,
    scan_problems,
    system_folder_warning,
)
from visualsearch.core.indexing import IndexOptions, IndexReport, ensure_dir_exists
from visualsearch.core.library import Library
from visualsearch.core.names import printable
from visualsearch.core.query import ImageQuery, MixQuery, Query, TextQuery, run_query
from visualsearch.core.settings import AppPaths
from visualsearch.core.store import Store, StoreMissing

COMMANDS = (
    "index",
    "search",
    "similar",
    "info",
    "clusters",
    "export",
    "duplicates",
    "outliers",
    "tags",
    "models",
    "sample",
    "gui",
    "demo",
    "library",
    "labels",
    "propose",
    "sort",
    "undo",
    "evaluate",
    "anomalies",
)


class CliError(Exception):
    pass


class TqdmProgress:
    """Progress on stderr: a bar on a terminal, a few plain lines otherwise."""

    def __init__(self, quiet: bool = False) -> None:
        self._bar = None
        self._quiet = quiet
        self._last_line = -1

    def report(self, done: int, total: int, message: str = "") -> None:
        if self._quiet or total <= 0:
            return
        if sys.stderr.isatty():
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True)
            self._bar.update(done - self._bar.n)
        else:
            step = max(1, total // 10)
            if done // step != self._last_line or done == total:
                self._last_line = done // step
                print(f"  {message or f'{done}/{total}'}", file=sys.stderr)

    def cancelled(self) -> bool:
        return False

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


# -- helpers ----------------------------------------------------------------------------


def _open_store(args, folder: Path, create: bool = True) -> Store:
    store_dir = Path(args.store) if args.store else None
    store = open_store(folder, args.paths.data_dir, store_dir, create=create)
    args.store_dir = store.directory  # named in an error message if its catalog fails later
    args.opened.append(store)  # closed when the command ends (see main)
    return store


def _finite(value):
    """`value` with every non-finite float as None: JSON has no NaN or Infinity."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _print_json(value) -> None:
    """Strict JSON on stdout (a name that is not valid UTF-8 keeps its bytes as escapes)."""
    print(json.dumps(_finite(value), indent=2, allow_nan=False))


def _resolve_model(args, store: Store | None) -> ModelChoice:
    """--model/--weights, else what the collection was last indexed with, else the default
    (a library has no one collection: the default)."""
    if args.model or args.weights:
        weights = Path(args.weights).expanduser().resolve() if args.weights else None
        return ModelChoice(args.model or "clip", weights)
    return remembered_model(store) if store is not None else ModelChoice(default_model_spec())


def _encoder(args, store: Store | None):
    model = _resolve_model(args, store)
    encoder = load_encoder(
        model.spec,
        cache_dir=args.paths.cache_dir,
        weights=model.weights,
        threads=args.threads or None,
        fast_clip=getattr(args, "fast_clip", False),
        device=getattr(args, "device", "auto"),
    )
    return encoder, model


def _index(
    args, folder: Path, store: Store, encoder, model: ModelChoice, quiet: bool
) -> IndexReport:
    opts = IndexOptions(
        retry_errors=getattr(args, "retry_errors", False),
        forget_missing=getattr(args, "forget_missing", False),
        decode_on_gpu=False if getattr(args, "decode_on_cpu", False) else None,
    )
    if getattr(args, "batch_size", None):
        opts.batch_size = args.batch_size
    if getattr(args, "workers", None):
        opts.workers = args.workers
    remote = _ray_encoding(args, model) if getattr(args, "ray", None) else None
    with TqdmProgress(quiet=quiet) as progress:
        return index_and_record(
            folder,
            store,
            encoder,
            model,
            progress,
            opts,
            cache_dir=args.paths.cache_dir,
            remote=remote,
        )


def _ray_encoding(args, model: ModelChoice):
    """`--ray [ADDRESS]`: the run's files read and encoded on a Ray cluster."""
    from visualsearch.core.ray_ingest import INSTALL_HINT, RayEncoding, RayOptions, ray_available

    if not ray_available():
        raise CliError(f"--ray: {INSTALL_HINT}")
    if not (math.isfinite(args.ray_gpus) and args.ray_gpus >= 0) or args.ray_actors < 0:
        raise CliError("--ray-gpus and --ray-actors take a number of 0 or more")
    options = RayOptions(
        address=None if args.ray == "local" else args.ray,
        actors=args.ray_actors,
        gpus_per_actor=args.ray_gpus,
    )
    return RayEncoding(model.spec, model.weights, args.paths.cache_dir, options)


def _image_arg(value: str) -> Path:
    """An image path given on the command line, which must exist (in the folder or not)."""
    image = Path(value).expanduser()
    if not image.is_file():
        raise CliError(f"image not found: {image}")
    return image


def _print_hits(hits: list[Hit], root: Path, as_json: bool, header: str) -> None:
    if as_json:
        _print_json([h.as_dict() for h in hits])
        return
    print(printable(header))
    if not hits:
        print("  no matches")
    for h in hits:
        try:
            shown = h.path.relative_to(root).as_posix()
        except ValueError:
            shown = str(h.path)
        print(f"  {h.rank:>3}  {h.score:6.3f}  {printable(shown)}")


def _print_result(
    col: Collection, query: Query, k: int, min_score: float | None, as_json: bool
) -> None:
    """Run `query` the one way the window does too (-words, deleted files left out), and
    print its hits, or why there are none."""
    result = run_query(col, query, k=k, min_score=min_score)
    scored = "match from 0 to 1" if col.calibration is not None else "cosine similarity"
    header = f"Images {query.label()} ({col.encoder.id}; score: {scored}):"
    _print_hits(result.hits, col.root, as_json, header)
    if result.hits or as_json:
        return
    if result.best_score is not None and min_score is not None:
        print(f"  no match reaches {min_score} (the best scores {result.best_score:.3f})")
    elif result.missing:
        print(
            f"  the {result.missing} best matches were deleted since the folder was "
            "indexed; run index (or add --update) to bring it up to date"
        )


def _collection(args, need_update: bool = False) -> Collection:
    folder = ensure_dir_exists(Path(args.folder)).resolve()
    store = _open_store(args, folder)
    encoder, model = _encoder(args, store)
    if need_update or args.update or encoder.id not in store.vector_counts():
        if not args.json:
            print(f"Indexing {folder} with {encoder.id}…", file=sys.stderr)
        _index(args, folder, store, encoder, model, quiet=args.json)
    return Collection(folder, store, encoder, cache_dir=args.paths.cache_dir)


# -- commands ---------------------------------------------------------------------------


def _ran_on(args, encoder) -> str | None:
    """What ran the model ("openvino bf16"), asked after a run that encoded images: the
    header loaded the network only to say so (0.25 s of a run with nothing to do). After
    `--ray` the cluster's actors ran it: asking here would load it on this computer."""
    if getattr(args, "ray", None):
        return "ray"
    return getattr(encoder, "backend", None) or None


def _on(ran_on: str | None) -> str:
    if not ran_on:
        return ""
    return " (on the Ray cluster)" if ran_on == "ray" else f" (on {ran_on})"


def cmd_index(args) -> int:
    folder = ensure_dir_exists(Path(args.folder)).resolve()
    store = _open_store(args, folder)
    encoder, model = _encoder(args, store)
    warning = system_folder_warning(folder)
    if warning:
        print(f"visualsearch: warning: {warning}", file=sys.stderr)
    if not args.json:
        where = {None: "", "local": "a local instance"}.get(args.ray, args.ray)
        ray = f"\n  on Ray: {where}" if where else ""
        print(
            f"Indexing {printable(str(folder))}\n"
            f"  model {encoder.id}\n"
            f"  store {printable(str(store.directory))}{ray}",
            file=sys.stderr,
        )
    try:
        with interrupts.kept():  # an error raised as Ray stops after Ctrl+C, say
            report = _index(args, folder, store, encoder, model, quiet=args.json)
    except KeyboardInterrupt:
        print(
            "\nInterrupted. Finished batches are saved; run the same command to resume.",
            file=sys.stderr,
        )
        return 130
    ran_on = _ran_on(args, encoder) if report.encoded else None
    if args.json:  # "backend": what ran the model, when it ran (None: nothing to encode)
        _print_json(asdict(report) | {"backend": ran_on})
        return 0
    r = report
    skipped = store.errors() + r.problems  # all that is left out, as `info` counts it
    print(
        f"{r.scanned} images found: {r.unchanged} unchanged, {r.new} new, {r.changed} changed, "
        f"{r.removed} removed.\n"
        f"{r.encoded} encoded{_on(ran_on)}, {r.reused} reused by "
        f"content ({r.moved} moved), {len(skipped)} skipped in {r.seconds:.1f} s."
    )
    for path, reason in skipped:
        print(f"  skipped {printable(path)}: {printable(reason)}")
    if r.index_problem:
        print(f"visualsearch: warning: {r.index_problem}", file=sys.stderr)
    if r.warning:
        print(
            f"Kept {r.missing_kept} images that were not found: {r.warning} "
            "(index --forget-missing forgets them)"
        )
    return 0


def cmd_search(args) -> int:
    query = TextQuery(args.query)
    if args.like:
        query = MixQuery(ImageQuery(_image_arg(args.like)), args.query, args.text_weight)
    col = _collection(args)
    _print_result(col, query, args.k, args.min_score, args.json)
    return 0


def cmd_similar(args) -> int:
    query = ImageQuery(_image_arg(args.image), include_self=args.include_self)
    col = _collection(args)
    _print_result(col, query, args.k, args.min_score, args.json)
    return 0


def cmd_info(args) -> int:
    folder = ensure_dir_exists(Path(args.folder)).resolve()
    try:
        store = _open_store(args, folder, create=False)  # looking never creates a store
    except StoreMissing:
        if args.json:
            _print_json({"folder": str(folder), "store": None, "files": 0, "indexed": {}})
        else:
            print(f"{printable(str(folder))} has not been indexed yet: visualsearch index FOLDER")
        return 0
    counts = store.counts()
    problems = scan_problems(store)
    info = {
        "folder": str(folder),
        "store": str(store.directory),
        "store_bytes": store.size_bytes(),
        "model": store.get_meta("model"),
        "model_spec": store.get_meta("model_spec"),
        "files": counts["files"],
        "indexed": store.vector_counts(),
        "skipped": [{"path": p, "reason": r} for p, r in store.errors()]
        + [{"path": p, "reason": r} for p, r in problems],
    }
    if args.json:
        _print_json(info)
        return 0
    print(
        f"Folder  {printable(info['folder'])}\n"
        f"Store   {printable(info['store'])} ({info['store_bytes'] / 1e6:.1f} MB)"
    )
    print(f"Model   {info['model'] or '(never indexed)'}")
    print(f"Files   {info['files']} in the catalog")
    for model, n in info["indexed"].items():
        print(f"  {n} indexed with {model}")
    if info["skipped"]:
        print(f"Skipped {len(info['skipped'])}:")
        for s in info["skipped"]:
            print(f"  {printable(s['path'])}: {printable(s['reason'])}")
    return 0


def _map(args):
    from visualsearch.core.collection_map import build_map

    col = _collection(args)
    with TqdmProgress(quiet=args.json) as progress:
        cmap = build_map(
            col.store,
            col.encoder,
            args.paths.cache_dir,
            k=args.k,
            progress=progress,
            relayout=getattr(args, "relayout", False),
        )
    return col, cmap


def cmd_clusters(args) -> int:
    _, cmap = _map(args)
    sizes = cmap.clustering.sizes()
    clusters = [
        {
            "cluster": c,
            "name": cmap.names[c],
            "size": int(sizes[c]),
            "representatives": [cmap.paths[r] for r in cmap.representatives[c]],
        }
        for c in range(cmap.clustering.k)
    ]
    if args.json:
        print(json.dumps(clusters, indent=2))
        return 0
    how = "chosen automatically" if cmap.clustering.auto else "as asked"
    print(f"{len(cmap.paths)} images in {cmap.clustering.k} clusters ({how}; -k to change):")
    for c in clusters:
        print(f"  {c['cluster']:>3}  {c['size']:>6}  {c['name']}")
        print(f"             e.g. {', '.join(c['representatives'])}")
    if cmap.placed:
        print(
            f"{cmap.placed} images added since the map was laid out were placed beside the "
            "images most like them (--relayout arranges all of them afresh)."
        )
    return 0


def _cluster_numbers(text: str | None) -> list[int] | None:
    """--clusters 0,3,4 → [0, 3, 4]; None when not given (all clusters)."""
    if not text:
        return None
    try:
        return [int(c) for c in text.split(",")]
    except ValueError as exc:
        raise CliError(f"--clusters takes numbers like 0,3,4: {text!r}") from exc


def cmd_export(args) -> int:
    from visualsearch.core.export import (
        ExportInterrupted,
        cluster_items,
        cluster_rows,
        export_groups,
    )

    wanted = _cluster_numbers(args.clusters)  # before any work: a typo costs nothing
    col, cmap = _map(args)
    rows = cluster_rows(cmap, range(cmap.clustering.k) if wanted is None else wanted)
    items = cluster_items(cmap, col.root, rows)
    interrupted = False
    with TqdmProgress(quiet=args.json) as progress:
        try:
            report = export_groups(items, Path(args.dest), link=args.link, progress=progress)
        except ExportInterrupted as exc:
            report, interrupted = exc.report, True
    if args.json:
        _print_json(_export_json(report))
    else:
        _print_export(report, args.link)
    if interrupted:
        print("\nInterrupted: the rest was not exported.", file=sys.stderr)
        return 130
    complete = not (report.failed or report.not_exported or report.manifest_error)
    return 0 if complete else 1


def _export_json(report) -> dict:
    return {
        "dest": str(report.dest),
        "written": len(report.written),
        "already_there": len(report.already),
        "renamed": report.renamed,
        "failed": [{"path": str(p), "reason": r} for p, r in report.failed],
        "not_exported": [str(p) for p in report.not_exported],
        "stopped": report.stopped,
        "folders": {k: str(v) for k, v in report.folders.items()},
        "manifest": str(report.manifest) if report.manifest else None,
        "manifest_error": report.manifest_error,
    }


def _print_export(report, link: bool) -> None:
    verb = "Linked" if link else "Copied"
    dest = printable(str(report.dest))
    print(f"{verb} {len(report.written)} images into {len(report.folders)} folders in {dest}")
    for folder in report.folders.values():
        print(f"  {printable(folder.name)}/")
    if report.already:
        print(f"{len(report.already)} already there with the same content: not copied again.")
    if report.renamed:
        print(f"{report.renamed} names were taken and got a suffix; nothing was overwritten.")
    for path in report.avoided_links:
        print(f"  {printable(str(path))} is a link: not written through")
    for path, reason in report.failed:
        print(f"  failed {printable(str(path))}: {printable(reason)}")
    if report.not_exported:
        why = f" (stopped: {printable(report.stopped)})" if report.stopped else ""
        print(f"{len(report.not_exported)} images were not exported{why}.")
    if report.manifest:
        print(f"Manifest: {printable(str(report.manifest))}")
    else:
        print(f"The manifest could not be written: {printable(report.manifest_error)}")


def cmd_duplicates(args) -> int:
    from visualsearch.core.duplicates import (
        check_threshold,
        collection_duplicates,
        group_dicts,
        presets,
    )

    if args.threshold is not None:
        check_threshold(args.threshold)  # before any work: a ValueError is one line, exit 1
    col = _collection(args)
    named = presets(col.encoder.near_duplicate_threshold)
    threshold = args.threshold if args.threshold is not None else named[args.preset]
    with TqdmProgress(quiet=args.json) as progress:
        groups = collection_duplicates(col, threshold, progress=progress)
    data = group_dicts(groups)
    if args.json:
        _print_json(data)
        return 0
    extra = sum(len(g.rows) - 1 for g in groups)
    print(
        f"{len(groups)} groups at similarity >= {threshold} ({extra} images beyond one per group):"
    )
    for i, g in enumerate(data, 1):
        kind = "identical files" if g["exact"] else f"similarity >= {g['similarity']:.3f}"
        print(f"\n  group {i} ({kind}); keep {printable(g['keep'])}: {g['reason']}")
        for im in g["images"]:
            size = f"{im['width']}×{im['height']} {im['bytes'] / 1e6:6.2f} MB"
            print(f"    {size}  {printable(im['path'])}")
    return 0


def cmd_outliers(args) -> int:
    from visualsearch.core.duplicates import collection_odd_ones_out

    col = _collection(args)
    with TqdmProgress(quiet=args.json) as progress:
        ranked = collection_odd_ones_out(col, args.k, progress=progress)
    hits = [Hit(i + 1, col.root / col.paths[r], s) for i, (r, s) in enumerate(ranked)]
    _print_hits(hits, col.root, args.json, "Odd ones out (score: 1 - similarity to the nearest 5):")
    return 0


def cmd_tags(args) -> int:
    from visualsearch.core.tags import suggest_tags, tag_vocabulary

    image = _image_arg(args.image)
    col = _collection(args)
    words = args.words.split(",") if args.words else []
    vocabulary = tag_vocabulary(col.encoder, args.paths.cache_dir, words)
    tags = suggest_tags(vocabulary, col.image_vector(image)[0], args.k, col.calibration)
    if args.json:
        print(json.dumps([{"tag": t, "score": round(s, 4)} for t, s in tags], indent=2))
        return 0
    scored = "match from 0 to 1" if col.calibration is not None else "cosine similarity"
    print(f"Tags for {image.name} ({col.encoder.id}; score: {scored}):")
    for t, s in tags:
        print(f"  {s:7.3f}  {t}")
    return 0


def cmd_sample(args) -> int:
    from visualsearch.core.sample import build_sample_collection

    dest = Path(args.dest).expanduser() if args.dest else args.paths.sample_dir
    print(build_sample_collection(dest))
    return 0


def cmd_demo(args) -> int:
    """Build the sample collection, index it and show what search does."""
    from visualsearch.core.sample import build_sample_collection

    folder = build_sample_collection(args.paths.sample_dir)
    print(f"Sample collection: {folder}", file=sys.stderr)
    args.folder, args.update = str(folder), True
    col = _collection(args)
    print(f"{len(col)} images indexed with {col.encoder.id}.\n")
    for q in ("a photo of a cat", "a cup of coffee", "a rocket", "a motorcycle"):
        _print_result(col, TextQuery(q), 3, None, False)
    probe = next(p for p in col.paths if p.startswith("copies/"))
    _print_result(col, ImageQuery(col.root / probe), 3, None, False)
    if sys.stdin.isatty():
        print(
            "\nType a text query (-words steer away), or the path of an image; an empty line quits."
        )
        while True:
            try:
                line = input("query> ").strip()
            except EOFError:
                break
            if not line:
                break
            image = Path(line).expanduser()
            query = ImageQuery(image) if image.is_file() else TextQuery(line)
            try:
                _print_result(col, query, 8, None, False)
            except USER_ERRORS as exc:  # say why, and take the next query
                print(f"  {printable(user_message(exc))}")
    return 0


BUILTIN_NOTE = "offline, ImageNet categories; ships with visualsearch"
MIN_SCORE_HELP = (
    "drop results whose match (0 to 1: the measured chance that an image shows what "
    "was asked, the same for every model) is lower; 0.5 = as likely as not"
)


def cmd_models(args) -> int:
    """The built-in model and the CLIP models, with whether their weights are here."""
    from visualsearch.core.encoders.catalog import CLIP_MODELS
    from visualsearch.core.encoders.clip import cached_weights

    default = default_model_spec()
    rows = [
        {
            "spec": "builtin",
            "name": ModelChoice("builtin").label(),
            "download_mb": 0,
            "note": BUILTIN_NOTE,
            "cached": True,
            "weights": None,
            "default": default == "builtin",
        }
    ]
    for clip in CLIP_MODELS:
        weights = cached_weights(clip.arch, clip.tag)
        rows.append(
            {
                "spec": clip.spec,
                "name": ModelChoice(clip.spec).label(),
                "download_mb": clip.download_mb,
                "note": clip.note,
                "cached": weights is not None,
                "weights": str(weights) if weights else None,
                "default": default == clip.spec,
            }
        )
    if args.json:
        _print_json(rows)
        return 0
    width = max(len(r["spec"]) for r in rows)
    print("Models (--model SPEC; * the default for a folder not indexed yet):")
    for r in rows:
        mark = "*" if r["default"] else " "
        here = "here" if r["cached"] else f"{r['download_mb']:,} MB to download"
        print(f"  {mark} {r['spec']:<{width}}  {here:<20}  {r['note']}")
    print(
        "CLIP weights download in the window (Model menu); or pass a checkpoint file "
        "with --weights FILE."
    )
    return 0


def cmd_gui(args) -> int:
    from visualsearch.qt.app import main as gui_main

    return gui_main(
        folder=args.folder, sample=args.sample, paths=args.paths, smoke_test=args.smoke_test
    )


# -- parser -----------------------------------------------------------------------------


def cmd_library(args) -> int:
    library = Library(args.paths.data_dir)
    if args.action == "add":
        for folder in args.folders:
            root = library.add(ensure_dir_exists(Path(folder)))
            print(f"root {printable(str(root))}", file=sys.stderr)
        return 0
    if args.action == "remove":
        for folder in args.folders:
            root = library.remove(Path(folder))
            print(f"removed {printable(str(root))} (its index is kept)", file=sys.stderr)
        return 0
    if args.action == "list":
        states = library.states()
        if args.json:
            _print_json([s.as_dict() for s in states])
            return 0
        for s in states:
            state = "online " if s.online else "OFFLINE"
            print(f"  {state}  {s.indexed:>9,} indexed  {printable(str(s.path))}")
            if s.problem:
                print(f"           its index cannot be read: {printable(s.problem)}")
        if not states:
            print("The library has no roots: visualsearch library add FOLDER")
        return 0
    encoder, model = _encoder(args, None)
    if args.action == "index":
        with TqdmProgress(quiet=args.json) as progress:
            reports = library.index(encoder, model, progress)
        if args.json:
            _print_json(
                [
                    {
                        "root": str(r),
                        "offline": rep is None,
                        "problem": rep if isinstance(rep, str) else "",
                        **(asdict(rep) if isinstance(rep, IndexReport) else {}),
                    }
                    for r, rep in reports
                ]
            )
            return 0
        for root, rep in reports:
            if rep is None:
                print(f"  offline, kept as it was: {printable(str(root))}")
            elif isinstance(rep, str):
                print(f"  skipped {printable(str(root))}: {printable(rep)}")
            else:
                print(
                    f"  {rep.scanned:,} found, {rep.encoded:,} encoded, {rep.removed:,} removed: "
                    f"{printable(str(root))}"
                )
        return 0
    hits = library.search(encoder, TextQuery(args.query), args.k, args.paths.cache_dir)
    if args.json:
        _print_json([h.as_dict() for h in hits])
        return 0
    print(printable(f"Images {TextQuery(args.query).label()} in the library ({encoder.id}):"))
    for h in hits:
        mark = "  (offline)" if h.offline else ""
        print(f"  {h.hit.rank:>3}  {h.hit.score:6.3f}  {printable(str(h.hit.path))}{mark}")
    if not hits:
        print("  no matches")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--model",
        help="'builtin' (offline) or 'clip[:ARCH[:TAG]]'; default: "
        "what the folder was indexed with, else CLIP if downloaded, else builtin",
    )
    common.add_argument("--weights", metavar="FILE", help="CLIP checkpoint file to load")
    common.add_argument(
        "--fast-clip",
        action="store_true",
        help="CLIP's image model on OpenVINO bf16 where the CPU has it (3.5x on this "
        "project's test machine; experimental: not yet checked on real CLIP weights)",
    )
    common.add_argument(
        "--device",
        default="auto",
        help="where the model runs: auto (a CUDA or Apple GPU where there is one, else the "
        "CPU), cpu, cuda, cuda:N or mps",
    )
    common.add_argument("--store", metavar="DIR", help="where the collection's data lives")
    common.add_argument("--threads", type=int, default=0, help="model threads (default: all cores)")
    common.add_argument("--json", action="store_true", help="machine-readable output")

    query = argparse.ArgumentParser(add_help=False)
    query.add_argument("-k", type=int, default=20, help="how many results (default 20)")
    query.add_argument("--update", action="store_true", help="index new/changed files first")

    parser = argparse.ArgumentParser(
        prog="visualsearch",
        description="Search a folder of images by what they show.",
    )
    parser.add_argument("--version", action="version", version=f"visualsearch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("index", parents=[common], help="index a folder (incremental, resumable)")
    p.add_argument("folder")
    p.add_argument("--batch-size", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="decode threads (default: all cores)")
    p.add_argument("--retry-errors", action="store_true", help="retry files that failed before")
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="read and encode the files on a Ray cluster (pip install 'visualsearch[cluster]'): "
        "its address (ray://HOST:10001, or auto for the cluster this computer is part of); "
        "without one, a Ray instance on this computer",
    )
    p.add_argument(
        "--ray-actors",
        type=int,
        default=0,
        help="encoding actors (default: one per node, or per GPU share)",
    )
    p.add_argument("--ray-gpus", type=float, default=0.0, help="GPUs per actor (e.g. 1)")
    p.add_argument(
        "--decode-on-cpu",
        action="store_true",
        help="with the model on a CUDA GPU, decode JPEGs on the CPU even where it has 8 "
        "cores or fewer (there the GPU decodes them by default: 1.2-2.5x faster)",
    )
    p.add_argument(
        "--forget-missing",
        action="store_true",
        help="forget files not found even where their folder looks unmounted or empty",
    )
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", parents=[common, query], help="find images by a text query")
    p.add_argument("folder")
    p.add_argument("query")
    p.add_argument("--min-score", type=float, default=None, help=MIN_SCORE_HELP)
    p.add_argument("--like", metavar="IMAGE", help="images like IMAGE, steered by the text")
    p.add_argument(
        "--text-weight", type=float, default=0.5, help="with --like: 0 = image only, 1 = text only"
    )
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("similar", parents=[common, query], help="find images like an image")
    p.add_argument("folder")
    p.add_argument("image", help="an image file, inside the folder or not")
    p.add_argument("--min-score", type=float, default=None, help=MIN_SCORE_HELP)
    p.add_argument("--include-self", action="store_true", help="list the query image too")
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser("info", parents=[common], help="counts, model, store size, skipped files")
    p.add_argument("folder")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("clusters", parents=[common], help="group the images by what they show")
    p.add_argument("folder")
    p.add_argument("-k", type=int, default=None, help="how many clusters (default: automatic)")
    p.add_argument("--update", action="store_true", help="index new/changed files first")
    p.add_argument(
        "--relayout",
        action="store_true",
        help="lay every image out afresh (new ones are otherwise placed on the map as it is)",
    )
    p.set_defaults(func=cmd_clusters)

    p = sub.add_parser(
        "export", parents=[common], help="copy clusters into folders named after them"
    )
    p.add_argument("folder")
    p.add_argument("dest", help="where the cluster folders go (created if needed)")
    p.add_argument("-k", type=int, default=None, help="how many clusters (default: automatic)")
    p.add_argument("--clusters", help="which clusters, e.g. 0,2,5 (default: all)")
    p.add_argument("--link", action="store_true", help="symbolic links instead of copies")
    p.add_argument("--update", action="store_true", help="index new/changed files first")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("duplicates", parents=[common], help="groups of copies and near-copies")
    p.add_argument("folder")
    p.add_argument(
        "--preset",
        choices=("identical", "near-identical", "similar"),
        default="near-identical",
        help="how alike (default near-identical)",
    )
    p.add_argument("--threshold", type=float, help="similarity from 0 to 1, instead of --preset")
    p.add_argument("--update", action="store_true", help="index new/changed files first")
    p.set_defaults(func=cmd_duplicates)

    p = sub.add_parser("outliers", parents=[common, query], help="images unlike the rest")
    p.add_argument("folder")
    p.set_defaults(func=cmd_outliers)

    p = sub.add_parser("tags", parents=[common], help="suggested tags for an image")
    p.add_argument("folder")
    p.add_argument("image")
    p.add_argument("-k", type=int, default=8, help="how many tags (default 8)")
    p.add_argument("--words", help="your own candidate words, comma-separated (CLIP models)")
    p.add_argument("--update", action="store_true", help="index new/changed files first")
    p.set_defaults(func=cmd_tags)

    p = sub.add_parser("models", help="the models, their download sizes and which are here")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("sample", parents=[common], help="create the sample collection")
    p.add_argument("dest", nargs="?", help="where (default: in the user data folder)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("gui", help="the window (the default with no command)")
    p.add_argument("folder", nargs="?", help="open this folder (default: the last one)")
    p.add_argument("--sample", action="store_true", help="open the sample collection")
    p.add_argument(
        "--smoke-test",
        action="store_true",
        help="open the sample collection, search 'a photo of a cat', print the top hit, quit",
    )
    p.set_defaults(func=cmd_gui)

    p = sub.add_parser(
        "library",
        help="several folders and drives searched as one (add, remove, list, index, search)",
    )
    lib = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, text in (("add", "add folders as roots"), ("remove", "take roots off the list")):
        q = lib.add_parser(action, help=text)
        q.add_argument("folders", nargs="+")
        q.set_defaults(func=cmd_library)
    q = lib.add_parser("list", help="the roots: online or not, and how many images are indexed")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_library)
    q = lib.add_parser("index", parents=[common], help="index every root that is online")
    q.set_defaults(func=cmd_library)
    q = lib.add_parser("search", parents=[common], help="a text query over every root")
    q.add_argument("query")
    q.add_argument("-k", type=int, default=20, help="how many results (default 20)")
    q.set_defaults(func=cmd_library)

    p = sub.add_parser("demo", parents=[common], help="index the sample collection and search it")
    p.set_defaults(func=cmd_demo)

    from visualsearch.cli_sorting import add_parsers  # it uses this module's helpers

    add_parsers(sub, common)
    return parser


def main(argv: list[str] | None = None, paths: AppPaths | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    args.paths = paths or AppPaths.default()
    for stream in (sys.stdout, sys.stderr):  # a name's undecodable bytes print as escapes
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if args.func is cmd_gui:
        return cmd_gui(args)  # the window shows its own errors
    # A store left open is closed whenever Python collects it, and closing checkpoints
    # its WAL into the catalog file: a catalog replaced meanwhile (moved aside, restored
    # from a backup) would be written over. Each command's stores close when it ends.
    args.opened = []
    try:
        with interrupts.kept():
            return args.func(args)
    except CliError as exc:
        print(f"visualsearch: error: {printable(str(exc))}", file=sys.stderr)
        return 1
    except USER_ERRORS as exc:
        message = user_message(
            exc, store=getattr(args, "store_dir", None) or getattr(args, "store", None)
        )
        print(f"visualsearch: error: {printable(message)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    finally:
        for store in args.opened:
            store.close()
