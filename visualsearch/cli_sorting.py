"""The sorting commands: labels, proposals, applying a sort into folders and undoing it,
and which model fits the labelled photos. Parse, call core, print (as cli.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from visualsearch.cli import CliError, _collection, _open_store, _print_json
from visualsearch.core.anomalies import DEFAULT_PERCENTILE, collection_anomalies
from visualsearch.core.indexing import ensure_dir_exists
from visualsearch.core.labels import (
    SIDECAR_EXISTS,
    Label,
    LabelBook,
    LabelError,
    keyword_sidecars,
    write_label_rows,
)
from visualsearch.core.model_evaluation import ModelReport
from visualsearch.core.names import human_duration, printable
from visualsearch.core.proposals import (
    DEFAULT_SURE,
    ProposalError,
    collection_proposals,
    content_hashes,
)


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "labels",
        parents=[common],
        help="labels to sort by: list, make from subfolders, give, rename, export",
    )
    p.add_argument("folder")
    acts = p.add_mutually_exclusive_group()
    acts.add_argument(
        "--from-subfolders",
        action="store_true",
        help="label each image after the first subfolder it lies in",
    )
    acts.add_argument("--add", nargs="+", metavar=("LABEL", "IMAGE"), help="give LABEL to images")
    acts.add_argument("--unlabel", nargs="+", metavar="IMAGE", help="take images' labels away")
    acts.add_argument("--rename", nargs=2, metavar=("LABEL", "NEW"))
    acts.add_argument("--colour", nargs=2, metavar=("LABEL", "#RRGGBB"))
    acts.add_argument("--delete", metavar="LABEL", help="delete a label (images are untouched)")
    acts.add_argument(
        "--normal", metavar="LABEL", help="mark LABEL's images as the normal set (odd ones out)"
    )
    acts.add_argument("--export", metavar="FILE", help="labelled images as CSV (or .json)")
    acts.add_argument(
        "--xmp",
        action="store_true",
        help="write each label as a keyword into a new XMP sidecar (photo.jpg.xmp) beside "
        "the image; existing sidecars are left alone",
    )
    p.set_defaults(func=cmd_labels)

    p = sub.add_parser(
        "propose", parents=[common], help="propose labels for unlabelled images from examples"
    )
    p.add_argument("folder")
    p.add_argument(
        "--sure",
        type=float,
        default=DEFAULT_SURE,
        help=f"confidence from which a proposal is sure (default {DEFAULT_SURE})",
    )
    p.add_argument("-k", type=int, default=10, help="proposals shown per label (default 10)")
    p.add_argument("--accept", action="store_true", help="label every sure proposal")
    p.add_argument("--update", action="store_true", help="index new/changed files first")
    p.set_defaults(func=cmd_propose)

    p = sub.add_parser(
        "sort",
        parents=[common],
        help="put the labelled images into a folder per label (copy, link or move; undoable)",
    )
    p.add_argument("folder")
    p.add_argument("dest", help="where the label folders go (created if needed)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--copy", dest="mode", action="store_const", const="copy", help="(default)")
    how.add_argument("--link", dest="mode", action="store_const", const="link", help="hard links")
    how.add_argument("--move", dest="mode", action="store_const", const="move")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--yes", action="store_true", help="move without asking")
    p.set_defaults(func=cmd_sort, mode="copy")

    p = sub.add_parser(
        "evaluate",
        parents=[common],
        help="which model fits my photos: each model's accuracy on the labelled images",
    )
    p.add_argument("folder")
    p.add_argument(
        "--labels-from-subfolders",
        action="store_true",
        help="take each image's first subfolder as its label (the stored labels otherwise)",
    )
    p.add_argument(
        "--models",
        nargs="+",
        metavar="SPEC",
        help="models to compare (default: builtin, and CLIP where its weights are here); "
        "a folder not yet indexed with one is indexed with it first",
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "anomalies",
        parents=[common],
        help="the images unlike the normal set (the label marked --normal), most unusual first",
    )
    p.add_argument("folder")
    p.add_argument(
        "--percentile",
        type=float,
        default=DEFAULT_PERCENTILE,
        help="how far counts as unusual: this percentile of the normal images' own "
        f"distances (default {DEFAULT_PERCENTILE:g}: 1 normal image in 20 would be flagged)",
    )
    p.add_argument("-k", type=int, default=50, help="how many to list (default 50)")
    p.add_argument("--update", action="store_true", help="index new/changed files first")
    p.set_defaults(func=cmd_anomalies)

    p = sub.add_parser("undo", help="undo the last sort: every file back where it was")
    p.add_argument("--journal", metavar="FILE", help="undo this sort instead of the last one")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_undo)


def _book(args) -> tuple[Path, LabelBook]:
    folder = ensure_dir_exists(Path(args.folder)).resolve()
    store = _open_store(args, folder, create=False)
    return folder, LabelBook(store)


def _hashes(book: LabelBook, folder: Path, images: list[str]) -> list[str]:
    """The content hashes of indexed images given as paths; CliError naming one that is not."""
    found = []
    for image in images:
        path = Path(image).expanduser().resolve()
        try:
            rel = path.relative_to(folder).as_posix()
        except ValueError:
            raise CliError(f"{image} is not inside {folder}") from None
        record = book.store.record(rel)
        if record is None or not record.hash:
            raise CliError(f"{image} is not indexed in {folder}: run index first")
        found.append(record.hash)
    return found


def cmd_labels(args) -> int:
    folder, book = _book(args)
    try:
        if args.from_subfolders:
            made = book.from_subfolders()
            if not made.labelled and not made.conflicts:
                raise CliError(f"{folder} has no subfolders with indexed images")
            if made.conflicts:
                print(
                    f"{made.conflicts} images have identical copies in other subfolders: "
                    "their labels were left as they were",
                    file=sys.stderr,
                )
        elif args.add:
            if len(args.add) < 2:
                raise CliError("--add needs a label and at least one image")
            hashes = _hashes(book, folder, args.add[1:])  # before a label is made for them
            book.assign(hashes, book.ensure(args.add[0]).id)
        elif args.unlabel:
            book.assign(_hashes(book, folder, args.unlabel), None)
        elif args.rename:
            book.rename(book.get(args.rename[0]).id, args.rename[1])
        elif args.colour:
            book.recolour(book.get(args.colour[0]).id, args.colour[1])
        elif args.delete:
            n = book.delete(book.get(args.delete).id)
            print(f"deleted {printable(args.delete)}; {n} images lost it", file=sys.stderr)
        elif args.normal:
            book.set_normal(book.get(args.normal).id)
        elif args.export:
            return _export_labels(book, folder, args.export, args.json)
        elif args.xmp:
            return _write_sidecars(book, folder, args.json)
    except LabelError as exc:
        raise CliError(str(exc)) from None
    _print_labels(book, args.json)
    return 0


def _export_labels(book: LabelBook, folder: Path, dest: str, as_json: bool) -> int:
    """CSV (JSON for a .json name) into a new file, or with "-" onto stdout."""
    if dest == "-":
        write_label_rows(sys.stdout, book.rows(folder), as_json)
        return 0
    path = Path(dest).expanduser()
    if path.exists() and not path.is_file():
        raise CliError(f"{path} is not a file: give the name of a new .csv or .json file")
    written = book.export(path, folder)
    if as_json:
        _print_json({"written": str(written)})
    else:
        print(written)
    return 0


def _write_sidecars(book: LabelBook, folder: Path, as_json: bool) -> int:
    written, skipped = keyword_sidecars(folder, book.paths_by_label())
    if as_json:
        _print_json(
            {
                "written": [str(p) for p in written],
                "skipped": [{"path": str(p), "reason": why} for p, why in skipped],
            }
        )
    else:
        print(f"{len(written)} sidecars written", file=sys.stderr)
        for path, why in skipped:
            print(f"  skipped {printable(str(path))}: {why}", file=sys.stderr)
    failed = [why for _, why in skipped if why != SIDECAR_EXISTS]
    return 1 if failed else 0


def _print_labels(book: LabelBook, as_json: bool) -> None:
    counts = book.counts()
    labels = book.all()
    if as_json:
        _print_json([_label_dict(label, counts.get(label.id, 0)) for label in labels])
        return
    if not labels:
        print("No labels yet: --add LABEL IMAGE… or --from-subfolders")
    for label in labels:
        normal = "  (normal set)" if label.normal else ""
        print(f"  {counts.get(label.id, 0):>6}  {label.colour}  {printable(label.name)}{normal}")


def _label_dict(label: Label, images: int) -> dict:
    return {"name": label.name, "colour": label.colour, "normal": label.normal, "images": images}


def cmd_propose(args) -> int:
    if not 0 <= args.sure <= 1:
        raise CliError(f"--sure is a confidence from 0 to 1, not {args.sure}")
    if args.k < 0:
        raise CliError(f"-k is how many to show per label: 0 or more, not {args.k}")
    col = _collection(args)
    book = LabelBook(col.store)
    hashes = content_hashes(col)
    try:
        proposals = collection_proposals(col, book, hashes)
    except ProposalError as exc:
        raise CliError(str(exc)) from None
    labels = {label.id: label for label in book.all()}
    sure = proposals.sure(args.sure)
    rows = [
        {
            "path": str(col.root / col.paths[r]),
            "label": labels[int(label)].name,
            "confidence": round(float(c), 4),
            "sure": bool(s),
        }
        for r, label, c, s in zip(
            proposals.rows, proposals.labels, proposals.confidence, sure, strict=True
        )
    ]
    rows.sort(key=lambda r: -r["confidence"])
    if args.accept:
        for label_id in np.unique(proposals.labels[sure]):
            chosen = proposals.rows[sure & (proposals.labels == label_id)]
            book.assign([hashes[col.paths[r]] for r in chosen], int(label_id), "accepted")
    if args.json:
        _print_json(rows)
        return 0
    print(f"{len(rows)} proposals; {int(sure.sum())} sure (confidence ≥ {args.sure}):")
    for label in labels.values():
        mine = [r for r in rows if r["label"] == label.name]
        if not mine:
            continue
        n_sure = sum(r["sure"] for r in mine)
        print(f"{printable(label.name)}: {n_sure} sure, {len(mine) - n_sure} unsure")
        for r in mine[: args.k]:
            mark = "" if r["sure"] else "  (unsure)"
            print(f"  {r['confidence']:.2f}  {printable(r['path'])}{mark}")
    if args.accept:
        print(f"accepted {int(sure.sum())} proposals", file=sys.stderr)
    return 0


def cmd_sort(args) -> int:
    from visualsearch.cli import TqdmProgress
    from visualsearch.core.sort_moves import (
        apply_sort,
        journal_folder,
        labelled_items,
        sort_plan,
    )

    folder, book = _book(args)
    labels = book.names_by_path()
    if not labels:
        raise CliError(f"no image of {folder} has a label yet: see visualsearch labels --help")
    items, stale = labelled_items(labels, book.store.file_records(), folder)
    dest = Path(args.dest).expanduser()
    plan = sort_plan(items, dest, args.mode)
    plan.skipped.extend(stale)
    if args.dry_run:
        if args.json:
            steps = [{"source": str(s.source), "dest": str(s.dest)} for s in plan.steps]
            skipped = [{"source": str(p), "reason": r} for p, r in plan.skipped]
            _print_json({"mode": args.mode, "steps": steps, "skipped": skipped})
            return 0
        print(f"Would {args.mode} {len(plan.steps)} images into {printable(str(dest))}:")
        for step in plan.steps:
            print(f"  {printable(str(step.source))} -> {printable(str(step.dest))}")
        for path, why in plan.skipped:
            print(f"  skipped {printable(str(path))}: {why}")
        return 0
    if args.mode == "move" and not args.yes:
        question = f"Move {len(plan.steps)} images into {dest}/<label>/ ? [y/N] "
        if not sys.stdin.isatty():
            raise CliError("moving files needs --yes (see the plan first with --dry-run)")
        try:
            answer = input(question)
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing moved.", file=sys.stderr)
            return 1
    try:
        with TqdmProgress(quiet=args.json) as progress:
            journals = journal_folder(args.paths.data_dir)
            report = apply_sort(items, dest, args.mode, journals, progress)
    except KeyboardInterrupt:
        print("\nvisualsearch undo puts back what was done.", file=sys.stderr)
        raise
    if args.json:
        _print_json(
            {
                "journal": str(report.journal),
                "done": len(report.done),
                "failed": [[str(p), r] for p, r in report.failed],
                "skipped": [[str(p), r] for p, r in report.skipped],
                "stopped": report.stopped,
            }
        )
    else:
        print(f"{args.mode}: {len(report.done)} images into {printable(str(report.dest))}")
        for path, why in report.failed + report.skipped:
            print(f"  not done: {printable(str(path))}: {why}")
        if report.stopped:
            print(f"  stopped: {printable(report.stopped)}")
        print("visualsearch undo puts every file back.", file=sys.stderr)
    return 1 if report.failed or report.stopped else 0


def cmd_undo(args) -> int:
    from visualsearch.cli import TqdmProgress
    from visualsearch.core.sort_moves import (
        SortJournalError,
        journal_folder,
        last_journal,
        undo_sort,
    )

    journal = (
        Path(args.journal).expanduser()
        if args.journal
        else last_journal(journal_folder(args.paths.data_dir))
    )
    if journal is None:
        raise CliError("there is no sort to undo")
    try:
        with TqdmProgress(quiet=args.json) as progress:
            report = undo_sort(journal, progress)
    except SortJournalError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        _print_json(
            {
                "journal": str(report.journal),
                "restored": [[str(a), str(b)] for a, b in report.restored],
                "removed": [str(p) for p in report.removed],
                "kept": [[str(p), r] for p, r in report.kept],
                "failed": [[str(p), r] for p, r in report.failed],
                "undone": report.undone,
            }
        )
        return 0 if report.undone else 1
    print(f"{len(report.restored)} files put back, {len(report.removed)} copies removed")
    for original, now in report.restored_elsewhere:
        print(f"  {printable(str(original))} was taken: put back as {printable(str(now))}")
    for path, why in report.kept + report.failed:
        print(f"  left: {printable(str(path))}: {why}")
    return 0 if report.undone else 1


def _default_models() -> list[str]:
    from visualsearch.core.encoders import default_model_spec

    return list(dict.fromkeys(["builtin", default_model_spec()]))


def cmd_evaluate(args) -> int:
    from visualsearch.cli import _encoder, _index
    from visualsearch.core.model_evaluation import model_report, usable_labels

    folder, book = _book(args)
    store = book.store
    labels, dropped = usable_labels(book.names_by_path(args.labels_from_subfolders))
    if dropped:
        names = ", ".join(printable(n) for n in dropped[:5])
        print(f"left out: labels of a single image ({names})", file=sys.stderr)
    if len(set(labels.values())) < 2:
        raise CliError(
            "evaluation needs at least 2 labels of 2 or more images each: label some "
            "(visualsearch labels) or use --labels-from-subfolders"
        )
    reports = []
    for spec in args.models or _default_models():
        args.model, args.weights = spec, None
        encoder, model = _encoder(args, store)
        if encoder.id not in store.vector_counts():
            print(f"Indexing {folder} with {encoder.id}…", file=sys.stderr)
            _index(args, folder, store, encoder, model, quiet=args.json)
        reports.append(model_report(store, encoder.id, labels, encoder, folder))
    if args.json:
        _print_json(
            [
                {
                    "model": r.model,
                    **r.evaluation.as_dict(),
                    "images_per_second": r.images_per_second,
                    "projected_seconds": r.projected_seconds,
                }
                for r in reports
            ]
        )
        return 0
    _print_evaluations(reports, len(labels), store.image_count())
    return 0


def _print_evaluations(reports: list[ModelReport], labelled: int, total: int) -> None:
    first = reports[0].evaluation
    print(f"{labelled} labelled images, {len(first.labels)} labels; {total} images in all")
    shots = sorted({k for r in reports for k in r.evaluation.few_shot})
    heads = ["model", "nearest neighbour", *(f"{k}-shot" for k in shots)]
    heads += ["mAP@10", "img/s", f"all {total} images"]
    print("| " + " | ".join(heads) + " |")
    print("|---" * len(heads) + "|")
    for r in reports:
        e = r.evaluation
        cells = [r.model, f"{e.nearest_neighbour:.2f}"]
        cells += [
            f"{e.few_shot[k][0]:.2f} ± {e.few_shot[k][1]:.2f}" if k in e.few_shot else "—"
            for k in shots
        ]
        cells += [f"{e.map_at_10:.2f}", f"{r.images_per_second:.1f}"]
        cells.append(human_duration(r.projected_seconds))
        print("| " + " | ".join(cells) + " |")
    for r in reports:
        print(f"\n{r.model}: per label (precision / recall of the nearest neighbour)")
        for f in r.evaluation.per_label:
            print(f"  {f.precision:.2f} / {f.recall:.2f}  {printable(f.name)} ({f.images})")
        if r.evaluation.confused_pairs:
            pairs = ", ".join(
                f"{printable(a)} ↔ {printable(b)} ({n})" for a, b, n in r.evaluation.confused_pairs
            )
            print(f"  most confused: {pairs}")


def cmd_anomalies(args) -> int:
    if not 0 <= args.percentile <= 100:
        raise CliError(f"--percentile is from 0 to 100, not {args.percentile}")
    if args.k < 0:
        raise CliError(f"-k is how many to list: 0 or more, not {args.k}")
    col = _collection(args)
    book = LabelBook(col.store)
    if not any(label.normal for label in book.all()):
        raise CliError(
            "mark a label as the normal set first: visualsearch labels FOLDER --normal LABEL"
        )
    try:
        outside, found = collection_anomalies(col, book, args.percentile)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    hits = [{"path": str(col.root / p), "distance": round(d, 4)} for p, d in outside[: args.k]]
    if args.json:
        _print_json({"threshold": found.threshold, "outside": len(outside), "images": hits})
        return 0
    print(
        f"{len(outside)} images unlike the normal set (distance > {found.threshold:.3f}, "
        f"the normal images' own {args.percentile:g}th percentile):"
    )
    for hit in hits:
        print(f"  {hit['distance']:.3f}  {printable(hit['path'])}")
    return 0
