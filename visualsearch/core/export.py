"""Copy (or link) groups of images into folders named after the groups, with a CSV
manifest. Never overwrites: a name that is taken gets a suffix. Sources are only read."""

from __future__ import annotations

import csv
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from visualsearch.core.progress import NullProgress, Progress

MANIFEST = "visualsearch-export.csv"


@dataclass(frozen=True)
class ExportItem:
    source: Path  # absolute
    group: str  # folder name to be (cluster name)
    cluster: int | None = None
    score: float | None = None  # similarity to the cluster's centre


@dataclass
class ExportReport:
    dest: Path
    written: list[tuple[Path, Path]] = field(default_factory=list)  # (source, target)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    folders: dict[str, Path] = field(default_factory=dict)
    manifest: Path | None = None
    cancelled: bool = False
    renamed: int = 0  # targets that got a suffix because the name was taken


def folder_name(name: str) -> str:
    """A folder name that is safe on every system: no separators, no reserved characters."""
    cleaned = re.sub(r'[<>:"/\\|?*\x00-\x1f]+', " ", name)
    cleaned = re.sub(r"\s+", " ", cleaned).strip(" .")
    return cleaned[:80] or "unnamed"


def numbered(path: Path, n: int) -> Path:
    return path if n == 1 else path.with_name(f"{path.stem} ({n}){path.suffix}")


def write_new_text(path: Path, write: Callable[[TextIO], None]) -> Path:
    """Create a text file at `path`, or at `path (2)`, `(3)`… if taken; never overwrites."""
    for n in range(1, 10_000):
        target = numbered(Path(path), n)
        try:
            with open(target, "x", newline="", encoding="utf-8") as f:
                write(f)
        except FileExistsError:
            continue
        return target
    raise FileExistsError(f"no free name next to {path}")


def _write_exclusive(source: Path, target: Path, link: bool) -> None:
    """Create `target` only if nothing is there (no check-then-write race)."""
    if link:
        os.symlink(source, target)
        return
    with open(source, "rb") as src, open(target, "xb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    shutil.copystat(source, target)


def export_groups(
    items: Iterable[ExportItem],
    dest: Path,
    link: bool = False,
    progress: Progress | None = None,
) -> ExportReport:
    """Write each item into `dest/<group>/`; a manifest CSV lists what was written."""
    progress = progress or NullProgress()
    items = list(items)
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    report = ExportReport(dest.resolve())
    rows = []
    for done, item in enumerate(items):
        if progress.cancelled():
            report.cancelled = True
            break
        folder = report.folders.get(item.group)
        if folder is None:
            folder = report.folders[item.group] = dest / folder_name(item.group)
            folder.mkdir(exist_ok=True)
        for n in range(1, 10_000):
            target = numbered(folder / item.source.name, n)
            try:
                _write_exclusive(item.source, target, link)
            except FileExistsError:
                continue
            except OSError as exc:
                report.failed.append((item.source, str(exc)))
                target = None
            break
        if target is not None:
            report.renamed += n > 1
            report.written.append((item.source, target))
            score = "" if item.score is None else f"{item.score:.4f}"
            cluster = "" if item.cluster is None else item.cluster
            rows.append(
                [target.relative_to(dest).as_posix(), str(item.source), cluster, item.group, score]
            )
        progress.report(done + 1, len(items), f"{done + 1}/{len(items)} files")

    def write(f: TextIO) -> None:
        writer = csv.writer(f)
        writer.writerow(["path", "source", "cluster", "name", "score"])
        writer.writerows(rows)

    report.manifest = write_new_text(dest / MANIFEST, write)
    return report
