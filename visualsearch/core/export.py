"""Copy (or link) groups of images into folders named after the groups, with a CSV
manifest. Sources are only read. Nothing is ever overwritten, and nothing partial is
ever left under a real name: each file is written under a hidden temporary name in
its folder and linked into place only when complete. Links inside the destination
are never followed. A file whose exact content is already there is not copied again."""

from __future__ import annotations

import contextlib
import csv
import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from visualsearch.core import imageio
from visualsearch.core.progress import NullProgress, Progress
from visualsearch.core.safe_files import (
    CHUNK,
    O_CLOEXEC,
    O_NOFOLLOW,
    STOP_ERRNOS,
    copy_content,
    create_temp,
    folder_name,
    fsync_dir,
    link_new,
    numbered_name,
    open_dir,
    unlink_quietly,
    why_failed,
    write_new_text,
)

if TYPE_CHECKING:
    from visualsearch.core.collection_map import CollectionMap

MANIFEST = "visualsearch-export.csv"
_REPORT_EVERY = 4 << 20  # bytes between progress reports within one large file


@dataclass(frozen=True)
class ExportItem:
    source: Path  # absolute
    group: str  # folder name to be (cluster name)
    cluster: int | None = None
    score: float | None = None  # similarity to the cluster's centre


def cluster_rows(cmap: CollectionMap, clusters: Iterable[int]) -> list[int]:
    """The map rows of `clusters`, cluster by cluster in number order; a ValueError names
    the clusters the map does not have."""
    wanted = sorted(set(clusters))
    k = cmap.clustering.k
    unknown = [c for c in wanted if not 0 <= c < k]
    if unknown:
        raise ValueError(f"no cluster {unknown}: there are {k} (0-{k - 1})")
    return [r for c in wanted for r in cmap.members(c)]


def cluster_items(cmap: CollectionMap, root: Path, rows: Iterable[int]) -> list[ExportItem]:
    """What exporting these map rows writes: each image (under `root`) into a folder named
    after its cluster as the user sees it (their own name where they gave one), with
    the cluster's number and the image's similarity to the cluster's centre."""
    items = []
    for r in rows:
        cluster = int(cmap.labels[r])
        items.append(
            ExportItem(
                Path(root) / cmap.paths[r], cmap.names[cluster], cluster, float(cmap.scores[r])
            )
        )
    return items


@dataclass
class ExportReport:
    dest: Path
    written: list[tuple[Path, Path]] = field(default_factory=list)  # (source, target)
    already: list[tuple[Path, Path]] = field(default_factory=list)  # same content was there
    failed: list[tuple[Path, str]] = field(default_factory=list)
    not_exported: list[Path] = field(default_factory=list)  # never tried: the run stopped
    folders: dict[str, Path] = field(default_factory=dict)
    manifest: Path | None = None
    manifest_error: str = ""  # why the manifest could not be written
    cancelled: bool = False
    interrupted: bool = False  # Ctrl+C
    stopped: str = ""  # why the run stopped before the end, e.g. a full disk
    renamed: int = 0  # targets that got a suffix because the name was taken
    avoided_links: list[Path] = field(default_factory=list)  # links in dest not written through


class ExportInterrupted(KeyboardInterrupt):
    """Ctrl+C during an export. The manifest of what was done is written; `report` has the rest."""

    def __init__(self, report: ExportReport) -> None:
        super().__init__("export interrupted")
        self.report = report


class _Cancelled(Exception):
    pass


# -- the export ---------------------------------------------------------------------------


def _open_source(source: Path) -> tuple[int, os.stat_result]:
    """The source opened for reading; OSError unless it is a regular file (never blocks on
    a FIFO or opens a device)."""
    try:
        fd = imageio.open_regular(source)
    except imageio.ImageError as exc:
        raise OSError(errno.EINVAL, str(exc), str(source)) from exc
    return fd, os.fstat(fd)


class _Exporter:
    """One export run: the destination's folders open as descriptors, so that a link
    placed inside the destination is never followed."""

    def __init__(self, dest: Path, report: ExportReport, link: bool, progress: Progress):
        self.dest, self.report, self.link, self.progress = dest, report, link, progress
        self.dest_fd = open_dir(dest)
        self.folder_fds: dict[str, int] = {}
        self.rows: list[list] = []
        self.done = self.total = 0

    def close(self) -> None:
        for fd in self.folder_fds.values():
            fsync_dir(fd)
            os.close(fd)
        self.folder_fds.clear()

    def folder(self, group: str) -> tuple[int, str]:
        """The group's folder (a descriptor and its name), made if needed; a name taken by
        a link or a file moves on to "name (2)"…"""
        if group in self.folder_fds:
            return self.folder_fds[group], self.report.folders[group].name
        base = folder_name(group)
        for n in range(1, 1000):
            name = base if n == 1 else f"{base} ({n})"
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, dir_fd=self.dest_fd)
            try:
                fd = open_dir(name, self.dest_fd, follow=False)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                there = os.stat(name, dir_fd=self.dest_fd, follow_symlinks=False)
                if stat.S_ISLNK(there.st_mode):  # a link: never written through
                    self.report.avoided_links.append(self.dest / name)
                continue
            self.folder_fds[group] = fd
            self.report.folders[group] = self.dest / name
            return fd, name
        raise FileExistsError(f"no free folder name for {base!r} in {self.dest}")

    def tick(self, before: int, after: int, name: str) -> None:
        """Within one file, `before` to `after` bytes done: stop when asked, report now
        and then."""
        if self.progress.cancelled():
            raise _Cancelled
        if before // _REPORT_EVERY != after // _REPORT_EVERY:
            message = f"{self.done}/{self.total} files ({name}: {after / 1e6:.0f} MB)"
            self.progress.report(self.done, self.total, message)

    def export(self, item: ExportItem) -> None:
        dir_fd, folder = self.folder(item.group)
        src_fd, st = (None, None) if self.link else _open_source(item.source)
        try:
            for n in range(1, 10_000):
                name = numbered_name(item.source.name, n)
                state = self.existing(dir_fd, name, item.source, src_fd, st)
                if state == "taken":
                    continue
                if state == "same":
                    self.record(item, folder, name, "already there")
                    return
                try:
                    if self.link:
                        os.symlink(item.source, name, dir_fd=dir_fd)
                    else:
                        self.copy(src_fd, st, dir_fd, name)
                except FileExistsError:
                    continue  # taken meanwhile
                self.report.renamed += n > 1
                self.record(item, folder, name, "linked" if self.link else "copied")
                return
            raise FileExistsError(errno.EEXIST, "no free name", item.source.name)
        finally:
            if src_fd is not None:
                os.close(src_fd)

    def existing(
        self, dir_fd: int, name: str, source: Path, src_fd: int | None, st: os.stat_result | None
    ) -> str:
        """'free', 'same' (this content or link is already there) or 'taken'."""
        try:
            there = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return "free"
        if self.link:
            same = stat.S_ISLNK(there.st_mode) and os.readlink(name, dir_fd=dir_fd) == str(source)
        else:
            same = (
                stat.S_ISREG(there.st_mode)
                and there.st_size == st.st_size
                and self.same_content(src_fd, dir_fd, name)
            )
        return "same" if same else "taken"

    def same_content(self, src_fd: int, dir_fd: int, name: str) -> bool:
        flags = os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(name, flags, dir_fd=dir_fd)
        try:
            offset = 0
            while True:
                a, b = os.pread(src_fd, CHUNK, offset), os.pread(fd, CHUNK, offset)
                if a != b:
                    return False
                if not a:
                    return True
                offset += len(a)
                self.tick(offset - len(a), offset, name)
        finally:
            os.close(fd)

    def copy(self, src_fd: int, st: os.stat_result, dir_fd: int, name: str) -> None:
        """Copy into a temporary file, then link it to `name` only when complete and synced."""
        tmp, out = create_temp(dir_fd, name, 0o600)
        try:
            done = 0

            def tick(chunk: bytes) -> None:
                nonlocal done
                done += len(chunk)
                self.tick(done - len(chunk), done, name)

            try:
                copy_content(src_fd, st, out, tick)
            finally:
                os.close(out)
            link_new(dir_fd, tmp, name)
        finally:
            unlink_quietly(tmp, dir_fd)

    def record(self, item: ExportItem, folder: str, name: str, status: str) -> None:
        target = self.dest / folder / name
        done = self.report.already if status == "already there" else self.report.written
        done.append((item.source, target))
        score = "" if item.score is None else f"{item.score:.4f}"
        cluster = "" if item.cluster is None else item.cluster
        self.rows.append([f"{folder}/{name}", str(item.source), cluster, item.group, score, status])

    def write_manifest(self) -> None:
        def write(f: TextIO) -> None:
            writer = csv.writer(f)
            writer.writerow(["path", "source", "cluster", "name", "score", "status"])
            writer.writerows(self.rows)

        try:
            self.report.manifest = write_new_text(self.dest / MANIFEST, write)
        except OSError as exc:
            self.report.manifest_error = why_failed(exc)


def export_groups(
    items: Iterable[ExportItem],
    dest: Path,
    link: bool = False,
    progress: Progress | None = None,
) -> ExportReport:
    """Write each item into `dest/<group>/`; a manifest CSV lists what is there.

    A failed file is reported and the run goes on; a full or read-only destination stops
    it (the rest are reported as not exported). The manifest is written in every case,
    Ctrl+C included (then ExportInterrupted, a KeyboardInterrupt, carries the report)."""
    progress = progress or NullProgress()
    items = list(items)
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    report = ExportReport(dest.resolve())
    run = _Exporter(dest, report, link, progress)
    run.total = len(items)
    try:
        for item in items:
            if progress.cancelled():
                report.cancelled = True
                break
            try:
                run.export(item)
            except _Cancelled:
                report.cancelled = True
                break
            except OSError as exc:
                report.failed.append((item.source, why_failed(exc)))
                if exc.errno in STOP_ERRNOS:
                    report.stopped = f"{report.dest}: {why_failed(exc)}"
                    run.done += 1
                    break
            run.done += 1
            progress.report(run.done, run.total, f"{run.done}/{run.total} files")
    except KeyboardInterrupt as exc:
        report.interrupted = True
        raise ExportInterrupted(report) from exc
    finally:
        report.not_exported = [item.source for item in items[run.done :]]
        run.close()
        run.write_manifest()
        os.close(run.dest_fd)
    return report
