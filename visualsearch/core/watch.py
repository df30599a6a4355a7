"""Watching a folder for new, changed, moved and deleted images (watchdog: inotify,
FSEvents, ReadDirectoryChangesW), so an open collection stays up to date without F5.

Events are filtered (images only; hidden files and folders and the collection's own
store are ignored) and debounced: a burst of changes — a camera import, a folder
copied in — becomes one call once it has been quiet for `quiet_s`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from visualsearch.core.scan import is_image_name

log = logging.getLogger(__name__)

QUIET_S = 1.0  # a burst ends after this long without events
MAX_WAIT_S = 10.0  # a steady stream (a long copy) still reports this often


def relative_paths(paths: Iterable[Path], root: Path) -> set[str]:
    """`paths` a watcher reported, as POSIX paths relative to `root` (what an indexing
    run over them is given); any outside `root` are left out."""
    rels = set()
    for path in paths:
        try:
            rels.add(Path(path).relative_to(root).as_posix())
        except ValueError:
            continue
    return rels


class FolderWatcher(FileSystemEventHandler):
    """Calls `on_change(paths)` (absolute paths of the images that changed, in a watchdog
    thread) after a burst of changes under `root`; `ignore` lists folders whose changes
    do not count (the collection's store, when it lies inside the folder)."""

    def __init__(
        self,
        root: Path,
        on_change: Callable[[set[Path]], None],
        ignore: tuple[Path, ...] = (),
        quiet_s: float = QUIET_S,
        max_wait_s: float = MAX_WAIT_S,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.on_change = on_change
        self.ignore = tuple(str(Path(p)) for p in ignore)
        self.quiet_s, self.max_wait_s = quiet_s, max_wait_s
        self._lock = threading.Lock()
        self._pending: set[Path] = set()
        self._first = 0.0  # when the pending burst began (time.monotonic)
        self._timer: threading.Timer | None = None
        self._observer = Observer()

    def start(self) -> bool:
        """Watch; False (with a log line) where the system refuses (e.g. inotify limits)."""
        try:
            self._observer.schedule(self, str(self.root), recursive=True)
            self._observer.start()
        except OSError as exc:
            log.warning("cannot watch %s: %s", self.root, exc)
            return False
        return True

    def stop(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._pending.clear()
        if self._observer.is_alive():
            self._observer.stop()
            self._observer.join(5)

    def counts(self, path: str, folder: bool = False) -> bool:
        """Whether a change to `path` (an image, or a whole `folder`) is one the
        collection cares about."""
        if not path or any(path == p or path.startswith(p + os.sep) for p in self.ignore):
            return False
        try:
            rel = Path(path).relative_to(self.root)
        except ValueError:
            return False
        if not rel.parts or any(part.startswith(".") for part in rel.parts):
            return False  # hidden files and folders are not indexed (partial downloads too)
        return folder or is_image_name(rel.name)

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write", "attrib"):
            # reads (our own decoding included) change nothing, nor do attributes: a read
            # that updates the access time is an attribute event (content changes come
            # with modify and close events; a touch alone waits for the next whole run)
            return
        # a folder that came, went or moved carries its images with it
        folder = event.is_directory and event.event_type in ("moved", "deleted", "created")
        if event.is_directory and not folder:
            return
        paths = [os.fsdecode(event.src_path), os.fsdecode(getattr(event, "dest_path", "") or "")]
        changed = {Path(p) for p in paths if self.counts(p, folder)}
        if changed:
            self._add(changed)

    def _add(self, paths: set[Path]) -> None:
        with self._lock:
            now = time.monotonic()
            if not self._pending:
                self._first = now
            self._pending |= paths
            if self._timer is not None:
                self._timer.cancel()
            wait = min(self.quiet_s, max(0.0, self._first + self.max_wait_s - now))
            self._timer = threading.Timer(wait, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            paths, self._pending = self._pending, set()
            self._timer = None
        if paths:
            try:
                self.on_change(paths)
            except Exception:
                log.exception("a folder change could not be handled")
