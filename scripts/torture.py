"""Attack the real CLI as a hostile or unlucky user would, and print the figures.

    .venv/bin/python scripts/torture.py [--quick] [--seed N] [--jobs 2] [--keep]

Every command is `python -m visualsearch … --model builtin` in a subprocess, in an
isolated home (XDG_DATA_HOME, XDG_CACHE_HOME, XDG_CONFIG_HOME, HF_HOME under one
temporary folder, HF_HUB_OFFLINE=1). Three parts:

  kills       `index` killed with SIGKILL (every fourth with SIGINT) at random moments,
              with files deleted, edited, renamed, copied and added between runs and
              during them; a clean run must then give exact counts (catalog == folder,
              each content encoded once), PRAGMA integrity_check = ok, and originals
              byte-, mode- and mtime-identical.
  corruption  a garbled model cache, Annoy file, vector blobs (±2 bytes, NaN), map cache
              (two `clusters` at once) and catalog: the next command must give the
              result of a clean store or fail with one readable line saying how to
              recover; --json never holds NaN; the image folder never changes.
  bad inputs  hostile files and folders: each command must finish within its timeout
              (a hang is a failure); exit status, skip reason and peak memory (the
              subprocess's own maximum RSS, from wait4) are reported.

Prints one Markdown table (case, expected, got, result, peak MB, seconds) and exits 1
if anything failed. The tmpfs cases (unmounted folder, full disk) need root and are
skipped otherwise. Run by hand, not in CI; with --quick it takes about five minutes
on two cores. Cases of the last two parts run `--jobs` at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
MB = 1 << 20
SIGINT_GRACE = 3.0  # seconds a process gets to stop after SIGINT before SIGKILL
SIGINT_EXPECTED = 2.0  # Ctrl+C should stop a run within this
ANNOY_VECTORS = 20_000  # visualsearch.core.vector_index.ANNOY_THRESHOLD; the CLI cannot lower it
HINT = re.compile(r"move|remove|delete|rename|aside|--store|index again|re-?index|rebuild", re.I)
PROGRESS_LINE = re.compile(r"^\s+\d+[ /]", re.M)  # "  80 images to index", "  8/80 images"
_print_lock = threading.Lock()


def log(message: str) -> None:
    with _print_lock:
        print(message, file=sys.stderr, flush=True)


# -- results ----------------------------------------------------------------------------


@dataclass
class Result:
    section: str
    case: str
    expected: str
    got: str
    ok: bool | None  # None: skipped
    peak_mb: float | None = None
    seconds: float | None = None
    memory_bounded: bool = False  # judged against the memory limit at the end


@dataclass
class Run:
    """One finished CLI process."""

    argv: list[str]
    rc: int | None  # exit status; negative: killed by that signal
    out_bytes: bytes
    err_bytes: bytes
    seconds: float
    peak_mb: float
    hung: bool = False  # no exit within the timeout
    sigint_s: float | None = None  # after a hang: how long SIGINT took to stop it
    mem_killed: bool = False

    @property
    def out(self) -> str:
        return self.out_bytes.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.err_bytes.decode("utf-8", "replace")

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.err

    def error_line(self) -> str:
        lines = [ln.strip() for ln in self.err.splitlines() if ln.strip()]
        return lines[-1] if lines else ""

    def json(self) -> tuple[object, str]:
        """(data, problem): strict JSON (NaN and Infinity rejected)."""

        def reject(constant: str) -> None:
            raise ValueError(f"{constant} in the output")

        try:
            return json.loads(self.out, parse_constant=reject), ""
        except ValueError as exc:
            return None, f"invalid JSON ({str(exc)[:60]})"

    def failure(self) -> str:
        """Why this run is not a normal finish, or ''."""
        if self.mem_killed:
            return f"memory past the {self.peak_mb:.0f} MB cap: killed"
        if self.hung:
            how = (
                f"stopped {self.sigint_s:.1f} s after SIGINT"
                if self.sigint_s is not None
                else "SIGINT ignored, killed"
            )
            return f"hang: no exit in {self.seconds:.0f} s; {how}"
        if self.rc is not None and self.rc < 0:
            return f"died of signal {signal.Signals(-self.rc).name}"
        if self.traceback:
            return f"traceback: {self.error_line()[:90]}"
        return ""

    def readable_error(self, hint: bool = False) -> bool:
        """Failed with status > 0, no traceback, and a last line from visualsearch."""
        line = self.error_line()
        return (
            not self.failure()
            and self.rc is not None
            and self.rc > 0
            and line.startswith("visualsearch")
            and (not hint or bool(HINT.search(line)))
        )


# -- processes --------------------------------------------------------------------------


class Child:
    """A running CLI process, in its own session; its peak RSS is tracked while polled."""

    def __init__(
        self, argv: list[str], env: dict[str, str], work: Path, mem_cap_mb: float, cwd: Path
    ) -> None:
        self.argv = argv
        self.mem_cap_kb = mem_cap_mb * 1024
        fd, self.out_path = tempfile.mkstemp(dir=work, suffix=".out")
        os.close(fd)
        fd, self.err_path = tempfile.mkstemp(dir=work, suffix=".err")
        os.close(fd)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self.pid = self.proc.pid
        self.started = time.monotonic()
        self.ended: float | None = None
        self.rc: int | None = None
        self.peak_kb = 0.0
        self.mem_killed = False

    def _reap(self, block: bool = False) -> bool:
        pid, status, usage = os.wait4(self.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return False
        self.rc = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.rc  # so that Popen never waits for it again
        self.peak_kb = max(self.peak_kb, usage.ru_maxrss)
        self.ended = time.monotonic()
        return True

    def _rss_kb(self) -> float:
        try:
            with open(f"/proc/{self.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        return float(line.split()[1])
        except OSError:
            pass
        return 0.0

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def poll_until(self, deadline: float) -> bool:
        """Wait until the process ends (True) or `deadline` (monotonic) passes (False)."""
        while self.rc is None:
            if self._reap():
                return True
            self.peak_kb = max(self.peak_kb, self._rss_kb())
            if self.peak_kb > self.mem_cap_kb:
                self.mem_killed = True
                self.signal(signal.SIGKILL)
                self._reap(block=True)
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.03)
        return True

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.rc is None:
            self._reap(block=True)

    def finish(self, timeout: float) -> Run:
        """Wait up to `timeout` s; a hang gets SIGINT (like Ctrl+C), then SIGKILL."""
        hung, sigint_s = False, None
        if not self.poll_until(self.started + timeout):
            hung = True
            sent = time.monotonic()
            self.signal(signal.SIGINT)
            if self.poll_until(sent + SIGINT_GRACE):
                sigint_s = time.monotonic() - sent
            else:
                self.kill()
        return self.result(hung=hung, sigint_s=sigint_s)

    def result(self, hung: bool = False, sigint_s: float | None = None) -> Run:
        out, err = Path(self.out_path).read_bytes(), Path(self.err_path).read_bytes()
        for p in (self.out_path, self.err_path):
            Path(p).unlink(missing_ok=True)
        seconds = (self.ended or time.monotonic()) - self.started
        peak_mb = self.peak_kb / 1024
        return Run(self.argv, self.rc, out, err, seconds, peak_mb, hung, sigint_s, self.mem_killed)

    def stderr_so_far(self) -> str:
        return Path(self.err_path).read_text("utf-8", "replace")

    def wait_progress(self, deadline: float) -> float | None:
        """Wait for the first progress line (the scan is done, the ingest starts): when it
        came, or None if the process ended or `deadline` passed first."""
        while not PROGRESS_LINE.search(self.stderr_so_far()):
            if self.poll_until(min(deadline, time.monotonic() + 0.02)):
                return None
            if time.monotonic() >= deadline:
                return None
        return time.monotonic()


class Lab:
    """The isolated home, the CLI launcher and the collected results."""

    def __init__(self, base: Path, opts: argparse.Namespace) -> None:
        self.base = base
        self.opts = opts
        self.home = base / "home"
        self.work = base / "work"
        self.work.mkdir(parents=True)
        self.results: list[Result] = []
        self.model = ""  # the model id, from the first index report
        self.startup = 6.0  # seconds from launch to work, measured in setup
        self.rate = 25.0  # images per second, measured in setup
        self.baseline_mb = 0.0
        self.mounts: list[Path] = []
        self.reference: Reference | None = None  # the clean store of part 2
        self.kill_counts = {"SIGKILL": 0, "SIGINT": 0, "early": 0}
        self.clean_rounds = {True: 0, False: 0}
        self.last_clean = (0, 0, 0, 0)  # images, indexed, encoded, new contents
        self.case_order: list[str] = []  # cases as defined, for the table
        self.children: list[Child] = []
        self.lock = threading.Lock()
        self.stopping = False

    def env(self, cache: Path | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            XDG_DATA_HOME=str(self.home / "data"),
            XDG_CACHE_HOME=str(cache or self.home / "cache"),
            XDG_CONFIG_HOME=str(self.home / "config"),
            HF_HOME=str(self.home / "hf"),
            HF_HUB_OFFLINE="1",
            PYTHONUNBUFFERED="1",
            QT_QPA_PLATFORM="offscreen",
            DBUS_SESSION_BUS_ADDRESS=f"unix:path={self.home}/no-bus",
        )
        return env

    def argv(self, command: str, *args: object) -> list[str]:
        model = [] if command in ("sample", "gui") else ["--model", "builtin"]
        return [sys.executable, "-m", "visualsearch", command, *map(str, args), *model]

    def start(self, command: str, *args: object, cache: Path | None = None) -> Child:
        with self.lock:
            if self.stopping:
                raise RuntimeError("interrupted")
            env, cwd = self.env(cache), self.opts.source
            child = Child(self.argv(command, *args), env, self.work, self.opts.mem_cap, cwd)
            self.children.append(child)
            return child

    def stop(self) -> None:
        """Ctrl+C or an error: start nothing more and kill what runs."""
        with self.lock:
            self.stopping = True
            for child in self.children:
                if child.rc is None:
                    child.signal(signal.SIGKILL)

    def cli(
        self, command: str, *args: object, timeout: float | None = None, cache: Path | None = None
    ) -> Run:
        child = self.start(command, *args, cache=cache)
        return child.finish(timeout or self.opts.timeout)

    def add(self, result: Result) -> Result:
        self.results.append(result)
        mark = {True: "pass", False: "FAIL", None: "skip"}[result.ok]
        log(f"  [{mark}] {result.section} / {result.case}: {clip(result.got, 160)}")
        return result

    def mount_tmpfs(self, where: Path, size: str) -> bool:
        where.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
        )
        if done.returncode == 0:
            self.mounts.append(where)
        return done.returncode == 0

    def umount(self, where: Path) -> None:
        if where in self.mounts:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
            self.mounts.remove(where)


def clip(text: str, n: int = 140) -> str:
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text.replace("\n", " "))
    return text if len(text) <= n else text[: n - 1] + "…"


# -- images and hostile files -----------------------------------------------------------


def image_bytes(rng: np.random.Generator, size: int = 320, quality: int = 85) -> bytes:
    """A distinct JPEG: random colours, smoothly upscaled, plus noise."""
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
    noise = rng.integers(-16, 17, (size, size, 3), dtype=np.int16)
    arr = np.clip(np.asarray(img, np.int16) + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def make_images(folder: Path, n: int, prefix: str, rng: np.random.Generator, **kw) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{prefix}_{i:03d}.jpg" for i in range(n)]
    for p in paths:
        p.write_bytes(image_bytes(rng, **kw))
    return paths


def write_png16(path: Path, side: int, value: int = 12345) -> None:
    """A solid 16-bit greyscale PNG, streamed: 13000² is ~340 MB of pixels, ~360 KB on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\x00" + struct.pack(">H", value) * side
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    header = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def make_deep(folder: Path, data: bytes, top: str = "deep") -> int:
    """An image under nested folders whose path is longer than PATH_MAX; its length."""
    name = "d" * 200
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    os.mkdir(top, dir_fd=fd)
    length = len(str(folder)) + len(top) + 1
    cur = os.open(top, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    while length < 4096 + 400:
        os.mkdir(name, dir_fd=cur)
        nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=cur)
        os.close(cur)
        cur, length = nxt, length + len(name) + 1
    out = os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=cur)
    os.write(out, data)
    os.close(out)
    os.close(cur)
    return length + len("/deep.jpg")


# -- the image folder, before and after -------------------------------------------------


@dataclass(frozen=True)
class Entry:
    kind: str  # file, dir, link, other
    mode: int
    mtime_ns: int
    size: int
    digest: str  # files: SHA-256 (head and tail only past 64 MB); links: the target


def _file_digest(name: str, dir_fd: int, size: int) -> str:
    h = hashlib.sha256()
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    try:
        if size > 64 * MB:  # the sparse 3 GB file: its ends and its size
            h.update(os.pread(fd, MB, 0) + os.pread(fd, MB, size - MB))
        else:
            while block := os.read(fd, MB):
                h.update(block)
    finally:
        os.close(fd)
    return h.hexdigest()


def folder_state(root: Path) -> dict[str, Entry]:
    """Every entry under `root`, links not followed, special files never opened."""
    state: dict[str, Entry] = {}
    for dirpath, dirnames, filenames, dir_fd in os.fwalk(root, follow_symlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if stat.S_ISREG(st.st_mode):
                kind, digest = "file", _file_digest(name, dir_fd, st.st_size)
            elif stat.S_ISLNK(st.st_mode):
                kind, digest = "link", os.readlink(name, dir_fd=dir_fd)
            elif stat.S_ISDIR(st.st_mode):
                kind, digest = "dir", ""
            else:
                kind, digest = "other", ""
            state[rel] = Entry(kind, st.st_mode, st.st_mtime_ns, st.st_size, digest)
    return state


def folder_changes(before: dict[str, Entry], after: dict[str, Entry], ignore=()) -> list[str]:
    """What differs, except the paths in `ignore` (the script's own edits). Folders are
    compared by mode only: their mtime follows the script's own creations."""
    ignore = set(ignore)
    changes = []
    for rel in sorted(set(before) | set(after)):
        if rel in ignore:
            continue
        a, b = before.get(rel), after.get(rel)
        if a is None:
            changes.append(f"new {rel}")
        elif b is None:
            changes.append(f"gone {rel}")
        elif a.kind == "dir" == b.kind:
            if a.mode != b.mode:
                changes.append(f"mode {rel}")
        elif a != b:
            changes.append(f"changed {rel}")
    return changes


def originals_note(changes: list[str]) -> str:
    return "originals identical" if not changes else f"ORIGINALS CHANGED: {', '.join(changes[:3])}"


# -- the store, read from a copy --------------------------------------------------------


def catalog_file(store: Path) -> Path:
    path = store / "catalog.sqlite"
    if path.exists():
        return path
    return next(iter(sorted(store.glob("*.sqlite"))), path)


def _text(value: str | bytes | None) -> str | None:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


@dataclass
class Catalog:
    files: dict[str, tuple[str | None, str | None, int, int]] = field(default_factory=dict)
    vectors: dict[str, bytes] = field(default_factory=dict)  # hash → blob, for the model
    integrity: str = "no catalog"

    def indexed(self) -> dict[str, str]:
        """Path → hash of the files without an error."""
        return {p: h for p, (h, err, _, _) in self.files.items() if err is None and h}

    def vector(self, digest: str) -> np.ndarray | None:
        blob = self.vectors.get(digest)
        return None if blob is None else np.frombuffer(blob, np.float16).astype(np.float32)


@contextlib.contextmanager
def catalog_copy(store: Path) -> Iterator[sqlite3.Connection | None]:
    """A connection to a copy of the catalog (with its WAL): the store is never touched."""
    src = catalog_file(store)
    if not src.exists():
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="catalog-") as tmp:
        dst = Path(tmp) / "catalog.sqlite"
        shutil.copyfile(src, dst)
        wal = src.with_name(src.name + "-wal")
        if wal.exists():
            shutil.copyfile(wal, dst.with_name(dst.name + "-wal"))
        conn = sqlite3.connect(dst)
        try:
            yield conn
        finally:
            conn.close()


def read_catalog(store: Path, model: str) -> Catalog:
    cat = Catalog()
    with catalog_copy(store) as conn:
        if conn is None:
            return cat
        try:
            cat.integrity = "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))[:120]
            rows = conn.execute("SELECT path, hash, error, size, mtime_ns FROM files")
            cat.files = {_text(r[0]): (r[1], r[2], r[3], r[4]) for r in rows}
            rows = conn.execute("SELECT hash, vector FROM vectors WHERE model=?", (model,))
            cat.vectors = dict(rows.fetchall())
        except sqlite3.Error as exc:
            cat.integrity = f"unreadable: {exc}"
    return cat


def bad_blobs(cat: Catalog, hashes) -> list[str]:
    """Hashes with no vector, a vector of the wrong length, non-finite or not unit length."""
    lengths = [len(b) for b in cat.vectors.values()]
    usual = max(set(lengths), key=lengths.count) if lengths else 0
    bad = []
    for h in hashes:
        blob = cat.vectors.get(h)
        if blob is None or len(blob) != usual:
            bad.append(h)
            continue
        v = np.frombuffer(blob, np.float16).astype(np.float32)
        if not np.isfinite(v).all() or abs(float(np.linalg.norm(v)) - 1) > 0.02:
            bad.append(h)
    return bad


def clone_store(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def hits(data: object, root: Path) -> list[tuple[str, float]]:
    """(path relative to `root`, score) from `similar/search/outliers --json`."""
    out = []
    for h in data if isinstance(data, list) else []:
        rel = os.path.relpath(h["path"], root.resolve())
        out.append((rel, round(float(h["score"]), 3)))
    return out


def same_hits(got: list, ref: list, ignore=()) -> bool:
    a = [h for h in got if h[0] not in ignore]
    b = [h for h in ref if h[0] not in ignore]
    n = min(len(a), len(b))
    return n > 0 and a[:n] == b[:n]


# -- part 1: kills ----------------------------------------------------------------------


class KillFolder:
    """The folder under attack and the script's own edits of it."""

    def __init__(self, root: Path, rng: random.Random, nrng: np.random.Generator) -> None:
        self.root = root
        (root / "sub").mkdir(parents=True)  # made up front: it is not the indexer's doing
        self.rng = rng
        self.nrng = nrng
        self.counter = 0

    def images(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*.jpg") if p.is_file())

    def _name(self, stem: str, sub: bool = False) -> Path:
        self.counter += 1
        folder = self.root / "sub" if sub else self.root
        return folder / f"{stem}_{self.counter:04d}.jpg"

    def mutate(self, scale: int = 3, new: int = 40) -> set[str]:
        """Delete, edit, touch, rename, copy and add files; the relative paths touched."""
        touched: set[str] = set()
        files = self.images()
        self.rng.shuffle(files)
        rel = lambda p: p.relative_to(self.root).as_posix()  # noqa: E731
        for p in files[:scale]:  # deleted
            touched.add(rel(p))
            p.unlink()
        for p in files[scale : 2 * scale]:  # edited in place: new content
            touched.add(rel(p))
            p.write_bytes(image_bytes(self.nrng))
        for p in files[2 * scale : 2 * scale + 2]:  # touched: same content, new mtime
            touched.add(rel(p))
            os.utime(p)
        for p in files[2 * scale + 2 : 3 * scale + 2]:  # renamed, some into a subfolder
            target = self._name("moved", sub=self.rng.random() < 0.5)
            touched |= {rel(p), rel(target)}
            p.rename(target)
        for p in files[3 * scale + 2 : 4 * scale + 2]:  # copied
            target = self._name("copy")
            touched.add(rel(target))
            shutil.copy2(p, target)
        for _ in range(new):
            target = self._name("new")
            touched.add(rel(target))
            target.write_bytes(image_bytes(self.nrng))
        return touched


def pending_work(state: dict[str, Entry], cat: Catalog) -> int:
    """Images the next run has to read: not in the catalog, changed, or without a vector."""
    n = 0
    for rel, e in state.items():
        if e.kind != "file":
            continue
        old = cat.files.get(rel)
        if old is None or old[2] != e.size or old[3] != e.mtime_ns or old[0] not in cat.vectors:
            n += 1
    return n


def clean_check(lab: Lab, folder: Path, store: Path) -> list[str]:
    """A full `index` run, then the catalog against the folder; the problems found."""
    pre = read_catalog(store, lab.model)
    state = folder_state(folder)
    images = {rel: e.digest for rel, e in state.items() if e.kind == "file"}
    run = lab.cli("index", folder, "--store", store, "--json")
    after = folder_state(folder)
    post = read_catalog(store, lab.model)
    problems = []
    report, bad_json = run.json()
    if run.failure() or run.rc != 0 or not isinstance(report, dict):
        return [f"clean run: {run.failure() or bad_json or run.error_line()[:80]}"]
    indexed = post.indexed()
    if set(indexed) != set(images):
        missing, extra = set(images) - set(indexed), set(indexed) - set(images)
        problems.append(f"catalog {len(indexed)} ≠ folder {len(images)} (-{missing}, +{extra})")
    errors = [p for p, f in post.files.items() if f[1] is not None]
    if errors:
        problems.append(f"{len(errors)} files with errors, e.g. {errors[0]}")
    digest_to_hash: dict[str, set] = {}
    hash_to_digest: dict[str, set] = {}
    for rel, digest in images.items():
        digest_to_hash.setdefault(digest, set()).add(indexed.get(rel))
        hash_to_digest.setdefault(indexed.get(rel), set()).add(digest)
    if any(len(v) > 1 for v in digest_to_hash.values()) or any(
        len(v) > 1 for v in hash_to_digest.values()
    ):
        problems.append("catalog hashes do not match the files' contents")
    broken = bad_blobs(post, set(indexed.values()))
    if broken:
        problems.append(f"{len(broken)} missing or bad vectors")
    new_contents = {d for d, hs in digest_to_hash.items() if not hs & set(pre.vectors)}
    if report.get("encoded") != len(new_contents):
        problems.append(f"encoded {report.get('encoded')} ≠ {len(new_contents)} new contents")
    gone = len(set(pre.files) - set(images))
    if report.get("removed") != gone:
        problems.append(f"removed {report.get('removed')} ≠ {gone} gone")
    if report.get("scanned") != len(images):
        problems.append(f"scanned {report.get('scanned')} ≠ {len(images)}")
    if post.integrity != "ok":
        problems.append(f"integrity_check: {post.integrity}")
    changes = folder_changes(state, after)
    if changes:
        problems.append(originals_note(changes))
    info, bad_json = lab.cli("info", folder, "--store", store, "--json").json()
    if not isinstance(info, dict):
        problems.append(f"info: {bad_json}")
    elif info.get("files") != len(images) or (info.get("indexed") or {}).get(lab.model) != len(
        images
    ):
        problems.append(f"info says {info.get('files')} files, {info.get('indexed')}")
    lab.last_clean = (len(images), len(indexed), report.get("encoded"), len(new_contents))
    if report.get("encoded", 0) >= 20:
        lab.rate = report["encoded"] / max(report.get("seconds", 1.0), 0.1)
    return problems


def one_kill(lab: Lab, kf: KillFolder, store: Path, sig: int) -> tuple[str, list[str], bool]:
    """Start `index`, maybe edit files during the run, then send `sig` at a random moment:
    one in five during start-up, the others part-way through the ingest.
    Returns (what happened, problems, whether the signal reached a running process)."""
    pre = read_catalog(store, lab.model)
    before = folder_state(kf.root)
    pending = pending_work(before, pre)
    child = lab.start("index", kf.root, "--store", store)
    edit_during = kf.rng.random() < 0.5
    touched: set[str] = set()
    if kf.rng.random() < 0.2:
        when, at = "start-up", child.started + kf.rng.uniform(0.3, lab.startup)
    else:
        seen = child.wait_progress(child.started + lab.opts.timeout)
        if seen is not None:
            lab.startup = seen - child.started
        when = "ingest"
        at = time.monotonic() + kf.rng.uniform(0.0, max(pending / lab.rate, 0.5))
    if edit_during and not child.poll_until(kf.rng.uniform(time.monotonic(), at)):
        touched = kf.mutate(scale=1, new=3)  # the user keeps working meanwhile
    problems = []
    name = signal.Signals(sig).name
    if child.poll_until(at):
        done = child.result()
        what = f"finished before the {name} at {at - child.started:.1f} s"
        reached = False
        if done.rc != 0:
            problems.append(f"exit {done.rc}: {done.failure() or done.error_line()[:80]}")
    else:
        child.signal(sig)
        sent = time.monotonic()
        reached = True
        what = f"{name} at {sent - child.started:.1f} s ({when})"
        if sig == signal.SIGINT:
            stopped = child.poll_until(sent + SIGINT_GRACE)
            took = time.monotonic() - sent
            if not stopped:
                child.kill()
                problems.append(f"SIGINT ignored for {SIGINT_GRACE:.0f} s")
            elif child.rc not in (130, -signal.SIGINT) or took > SIGINT_EXPECTED:
                problems.append(f"SIGINT: exit {child.rc} after {took:.1f} s")
            what += f" → exit {child.rc} in {took:.1f} s"
        else:
            child.poll_until(sent + 10)
        child.result()
    post = read_catalog(store, lab.model)
    committed = len(post.vectors) - len(pre.vectors)
    what += f" ({pending} to do, +{committed} vectors)"
    if post.integrity not in ("ok", "no catalog"):
        problems.append(f"integrity after the kill: {post.integrity}")
    changes = folder_changes(before, folder_state(kf.root), ignore=touched)
    if changes:
        problems.append(originals_note(changes))
    return what, problems, reached


def kills_part(lab: Lab) -> None:
    opts = lab.opts
    log(f"\n== kills: {opts.kills} runs of index killed, clean check every {opts.check_every}")
    root = lab.base / "kills" / "photos"
    store = lab.base / "kills" / "store"
    kf = KillFolder(root, random.Random(opts.seed), np.random.default_rng(opts.seed))
    make_images(root, opts.kill_images, "img", kf.nrng)
    events: list[str] = []
    problems: list[str] = []
    started = time.monotonic()
    rounds = 0
    for i in range(opts.kills):
        if i:
            kf.mutate()
        sig = signal.SIGINT if i % 4 == 3 else signal.SIGKILL
        what, found, reached = one_kill(lab, kf, store, sig)
        lab.kill_counts[signal.Signals(sig).name if reached else "early"] += 1
        events.append(what)
        problems += found
        log(f"  kill {i + 1}: {what}{'; ' + '; '.join(found) if found else ''}")
        if (i + 1) % opts.check_every == 0 or i == opts.kills - 1:
            rounds += 1
            problems += clean_check(lab, root, store)
            n, indexed, encoded, new = lab.last_clean
            lab.add(
                Result(
                    "kills",
                    f"round {rounds}: " + "; ".join(events),
                    "clean run: catalog = folder, each new content encoded once, "
                    "integrity ok, originals identical; SIGINT → exit 130 within 2 s",
                    "; ".join(problems)
                    or f"{indexed} in catalog = {n} in folder, encoded {encoded} = {new} new "
                    "contents, integrity ok, originals identical",
                    not problems,
                    seconds=time.monotonic() - started,
                )
            )
            lab.clean_rounds[not problems] += 1
            events, problems, started = [], [], time.monotonic()


# -- part 2: corruption -----------------------------------------------------------------


@dataclass
class Reference:
    """A clean store of the corruption folder and the answers it gives."""

    folder: Path
    store: Path
    probe: Path
    paths: list[str]  # indexed paths, sorted
    similar: list[tuple[str, float]]
    outliers: list[tuple[str, float]]
    clusters: list


def similar_args(ref: Reference, store: Path, k: int = 10) -> list:
    return [ref.folder, ref.probe, "--store", store, "--json", "-k", k, "--include-self"]


def judge_answer(run: Run, got: list, ref: list, ignore=(), hint: bool = True) -> tuple[bool, str]:
    """The next command recovered (same answer as a clean store) or failed readably."""
    _, bad_json = run.json()
    if run.failure():
        return False, run.failure()
    if run.rc == 0:
        if bad_json:
            return False, bad_json
        if same_hits(got, ref, ignore):
            return True, "recovered: same result as a clean store"
        return False, f"exit 0 but a different result: {got[:3]} vs {ref[:3]}"
    if run.readable_error(hint=hint):
        return True, f"exit {run.rc}: {run.error_line()}"
    return False, f"exit {run.rc}: {run.error_line() or '(no message)'}" + (
        " (no recovery hint)" if run.readable_error() else ""
    )


def corrupt_case(
    lab: Lab, name: str, expected: str, body: Callable[[Path], tuple[bool, str, float]]
) -> Callable[[], None]:
    """Wrap a case: its own folder, the image folder compared before and after."""
    lab.case_order.append(name)

    def run() -> None:
        ref: Reference = lab.reference
        work = lab.base / "corrupt" / re.sub(r"\W+", "-", name)
        work.mkdir(parents=True)
        before = folder_state(ref.folder)
        started = time.monotonic()
        try:
            ok, got, peak = body(work)
        except Exception as exc:  # a bug in this script must show, not stop the others
            ok, got, peak = False, f"script error: {exc!r}", 0.0
        changes = folder_changes(before, folder_state(ref.folder))
        if changes:
            ok, got = False, f"{got}; {originals_note(changes)}"
        lab.add(Result("corruption", name, expected, got, ok, peak, time.monotonic() - started))

    run.name = name  # type: ignore[attr-defined]
    return run


def vectors_match(cat: Catalog, ref: Catalog, min_cos: float = 0.999) -> tuple[bool, str]:
    worst, missing, nonfinite = 1.0, 0, 0
    for digest in ref.vectors:
        v, r = cat.vector(digest), ref.vector(digest)
        if v is None or v.shape != r.shape:
            missing += 1
            continue
        if not np.isfinite(v).all():
            nonfinite += 1
            continue
        worst = min(worst, float(v @ r / (np.linalg.norm(v) * np.linalg.norm(r) + 1e-12)))
    ok = missing == 0 and nonfinite == 0 and worst >= min_cos
    return ok, f"{nonfinite} NaN, {missing} missing, worst cosine {worst:.4f}"


def case_onnx(lab: Lab, work: Path) -> tuple[bool, str, float]:
    ref: Reference = lab.reference
    cache = work / "cache"
    shutil.copytree(lab.home / "cache", cache)
    models = sorted((cache / "visualsearch" / "models").glob("*.onnx"))
    if not models:
        return False, "no cached ONNX model found to garble", 0.0
    onnx = models[0]
    pristine = onnx.read_bytes()
    data = bytearray(pristine)
    at = int(len(data) * 0.6)
    data[at : at + 65536] = b"\xff" * 65536  # NaN weights, file size unchanged
    onnx.write_bytes(bytes(data))
    store = work / "store"
    first = lab.cli("index", ref.folder, "--store", store, "--json", cache=cache)
    refcat = read_catalog(ref.store, lab.model)
    match, detail = vectors_match(read_catalog(store, lab.model), refcat)
    if first.failure():
        ok, got = False, first.failure()
    elif first.rc == 0:
        ok, got = match, f"exit 0, vectors: {detail}"
    else:
        ok, got = first.readable_error(), f"exit {first.rc}: {first.error_line()}"
    onnx.write_bytes(pristine)  # the model is fixed; what was stored must not survive
    second = lab.cli("index", ref.folder, "--store", store, "--json", cache=cache)
    match2, detail2 = vectors_match(read_catalog(store, lab.model), refcat)
    ok = ok and match2 and not second.failure()
    got += f"; after the model is fixed: {detail2}"
    return ok, got, max(first.peak_mb, second.peak_mb)


def synthetic_vectors(real: np.ndarray, n: int, seed: int) -> np.ndarray:
    """`n` unit vectors scattered around the real ones (similarity ~0.6-0.95)."""
    rng = np.random.default_rng(seed)
    base = real[np.arange(n) % len(real)]
    noise = rng.standard_normal(base.shape).astype(np.float32)
    noise *= (rng.uniform(0.3, 1.2, (n, 1)) / np.linalg.norm(noise, axis=1, keepdims=True)).astype(
        np.float32
    )
    out = base + noise
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float16)


def add_synthetic(store: Path, model: str, vectors: np.ndarray) -> None:
    """Catalog rows for files that are not there, with vectors: enough for Annoy."""
    conn = sqlite3.connect(catalog_file(store))
    with conn:
        rows = [
            (f"synthetic/s_{i:05d}.jpg", 1, 0, f"{i:032x}", 1, 1, "JPEG")
            for i in range(len(vectors))
        ]
        conn.executemany(
            "INSERT INTO files (path, size, mtime_ns, hash, width, height, format) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO vectors (model, hash, vector) VALUES (?, ?, ?)",
            [(model, r[3], v.tobytes()) for r, v in zip(rows, vectors, strict=True)],
        )
    conn.close()


def exact_top(store: Path, model: str, probe: str, k: int) -> list[str]:
    cat = read_catalog(store, model)
    paths = sorted(cat.indexed())
    matrix = np.stack([cat.vector(cat.indexed()[p]) for p in paths])
    scores = matrix @ matrix[paths.index(probe)]
    return [paths[i] for i in np.argsort(-scores, kind="stable")[:k]]


_SEAL = """
import sys
from pathlib import Path
from visualsearch.core.segments import maintain_index
from visualsearch.core.store import Store

with Store(Path(sys.argv[1])) as store:
    assert maintain_index(store, sys.argv[2], int(sys.argv[3])) >= 1, "no segment built"
"""


def case_annoy(lab: Lab, work: Path) -> tuple[bool, str, float]:
    ref: Reference = lab.reference
    store = clone_store(ref.store, work / "store")
    clean = read_catalog(ref.store, lab.model)
    real = np.stack([clean.vector(h) for h in clean.indexed().values()])
    add_synthetic(store, lab.model, synthetic_vectors(real, ANNOY_VECTORS, lab.opts.seed))
    # what the end of an `index` run does (that run would forget the synthetic files)
    subprocess.run(
        [sys.executable, "-c", _SEAL, str(store), lab.model, str(real.shape[1])], check=True
    )
    probe = ref.probe.name
    k = 20
    # the synthetic files are not on disk: a query leaves them out as deleted files
    ranked = exact_top(store, lab.model, probe, ANNOY_VECTORS)
    truth = [p for p in ranked if (ref.folder / p).exists()][:k]
    peak = 0.0
    outcomes = []

    def query() -> tuple[Run, float | None]:
        nonlocal peak
        run = lab.cli("similar", *similar_args(ref, store, k))
        peak = max(peak, run.peak_mb)
        data, _ = run.json()
        got = [h[0] for h in hits(data, ref.folder)] if run.rc == 0 else []
        return run, (len(set(got) & set(truth)) / k if got else None)

    clean_run, clean_recall = query()
    anns = sorted(store.rglob("seg-*.ann"))
    if clean_recall is None or not anns:
        why = clean_run.failure() or clean_run.error_line() or "no .ann file written"
        return False, f"clean query with {ANNOY_VECTORS:,} vectors: {why}", peak
    outcomes.append(f"clean recall@{k} {clean_recall:.2f}")
    ok = True
    for how in ("garbled", "truncated"):
        ann = sorted(store.rglob("seg-*.ann"))[0]
        data = bytearray(ann.read_bytes())
        if how == "garbled":
            lo, hi = int(len(data) * 0.35), int(len(data) * 0.65)
            data[lo:hi] = np.random.default_rng(1).integers(0, 256, hi - lo, np.uint8).tobytes()
        else:
            del data[len(data) // 2 :]
        ann.write_bytes(bytes(data))
        run, recall = query()
        if run.failure():
            ok, note = False, run.failure()
        elif recall is not None:
            good = recall >= clean_recall - 0.05
            ok = ok and good
            note = f"recall {recall:.2f}" + ("" if good else " (silently worse)")
        else:
            good = run.readable_error(hint=True)
            ok = ok and good
            note = f"exit {run.rc}: {run.error_line()[:60]}"
        outcomes.append(f"{how}: {note}")
    return ok, ", ".join(outcomes), peak


def _set_blob(store: Path, model: str, digest: str, blob: bytes) -> None:
    conn = sqlite3.connect(catalog_file(store))
    with conn:
        conn.execute("UPDATE vectors SET vector=? WHERE model=? AND hash=?", (blob, model, digest))
    conn.close()


def after_index(lab: Lab, folder: Path, store: Path) -> tuple[bool, str, float]:
    """Run `index`; then every indexed file must have a sound vector equal to the clean one."""
    run = lab.cli("index", folder, "--store", store, "--json")
    cat = read_catalog(store, lab.model)
    broken = bad_blobs(cat, set(cat.indexed().values()))
    match, _ = vectors_match(cat, read_catalog(lab.reference.store, lab.model), 0.99)
    ok = not run.failure() and run.rc == 0 and not broken and match
    note = run.failure() or (f"{len(broken)} bad vectors left" if broken else "all vectors sound")
    return ok, f"after `index`: {note}", run.peak_mb


def case_blobs(lab: Lab, work: Path) -> tuple[bool, str, float]:
    ref: Reference = lab.reference
    store = clone_store(ref.store, work / "store")
    cat = read_catalog(store, lab.model)
    indexed = cat.indexed()
    longer, shorter = ref.paths[5], ref.paths[-5]
    _set_blob(store, lab.model, indexed[longer], cat.vectors[indexed[longer]] + b"\x00\x3c")
    _set_blob(store, lab.model, indexed[shorter], cat.vectors[indexed[shorter]][:-2])
    run = lab.cli("similar", *similar_args(ref, store))
    data, _ = run.json()
    ok, got = judge_answer(run, hits(data, ref.folder), ref.similar, {longer, shorter})
    ok2, got2, peak2 = after_index(lab, ref.folder, store)
    return ok and ok2, f"similar: {got}; {got2}", max(run.peak_mb, peak2)


def case_nan(lab: Lab, work: Path) -> tuple[bool, str, float]:
    ref: Reference = lab.reference
    store = clone_store(ref.store, work / "store")
    cat = read_catalog(store, lab.model)
    victim = ref.paths[10]
    dim = len(cat.vectors[cat.indexed()[victim]]) // 2
    _set_blob(store, lab.model, cat.indexed()[victim], np.full(dim, np.nan, np.float16).tobytes())
    outl = lab.cli("outliers", ref.folder, "--store", store, "--json", "-k", 10)
    data, bad_json = outl.json()
    if outl.failure() or bad_json:
        ok, got = False, f"outliers: {outl.failure() or bad_json}"
    elif outl.rc == 0:
        ok, got = True, "outliers: valid JSON, finite scores"
    else:
        ok, got = outl.readable_error(hint=True), f"outliers: exit {outl.rc}: {outl.error_line()}"
    run = lab.cli("similar", *similar_args(ref, store))
    data, _ = run.json()
    ok2, got2 = judge_answer(run, hits(data, ref.folder), ref.similar, {victim})
    ok3, got3, peak3 = after_index(lab, ref.folder, store)
    peak = max(outl.peak_mb, run.peak_mb, peak3)
    return ok and ok2 and ok3, f"{got}; similar: {got2}; {got3}", peak


def cluster_summary(data: object) -> list:
    if not isinstance(data, list):
        return []
    return sorted((c["size"], c["name"]) for c in data)


def case_map(lab: Lab, work: Path) -> tuple[bool, str, float]:
    ref: Reference = lab.reference
    store = clone_store(ref.store, work / "store")
    maps = sorted(store.glob("map-*.npz"))
    if not maps:
        return False, "no map cache (map-*.npz) after `clusters`", 0.0
    data = maps[0].read_bytes()
    maps[0].write_bytes(data[: len(data) // 2])  # still starts like a zip: not np.load's error
    args = (ref.folder, "--store", store, "--json")
    pair = [lab.start("clusters", *args), lab.start("clusters", *args)]
    runs = [c.finish(lab.opts.timeout) for c in pair]
    runs.append(lab.cli("clusters", *args))
    notes, ok = [], True
    for i, run in enumerate(runs):
        data, bad_json = run.json()
        if run.failure() or run.rc != 0 or bad_json:
            ok = False
            notes.append(f"run {i + 1}: {run.failure() or bad_json or run.error_line()[:70]}")
        elif sum(s for s, _ in cluster_summary(data)) != len(ref.paths):
            ok = False
            notes.append(f"run {i + 1}: cluster sizes do not add up to {len(ref.paths)}")
        elif cluster_summary(data) != cluster_summary(ref.clusters):
            ok = False
            notes.append(f"run {i + 1}: clusters differ from a clean store")
    got = "; ".join(notes) or "2 concurrent + 1 later `clusters`: all exit 0, same clusters"
    return ok, got, max(r.peak_mb for r in runs)


def case_catalog(how: str) -> Callable[[Lab, Path], tuple[bool, str, float]]:
    def body(lab: Lab, work: Path) -> tuple[bool, str, float]:
        ref: Reference = lab.reference
        store = clone_store(ref.store, work / "store")
        cat = catalog_file(store)
        data = bytearray(cat.read_bytes())
        rng = np.random.default_rng(3)
        lo, hi = (0, 100) if how == "header" else (int(len(data) * 0.3), int(len(data) * 0.7))
        data[lo:hi] = rng.integers(0, 256, hi - lo, np.uint8).tobytes()
        cat.write_bytes(bytes(data))
        run = lab.cli("similar", *similar_args(ref, store))
        answer, _ = run.json()
        ok, got = judge_answer(run, hits(answer, ref.folder), ref.similar)
        return ok, got, run.peak_mb

    return body


def case_two_indexers(lab: Lab, work: Path) -> tuple[bool, str, float]:
    folder = work / "photos"
    n = 120 if lab.opts.quick else 400
    make_images(folder, n, "two", np.random.default_rng(5))
    store = work / "store"
    before = folder_state(folder)
    pair = [lab.start("index", folder, "--store", store, "--json") for _ in range(2)]
    runs = [c.finish(lab.opts.timeout * 2) for c in pair]
    encoded, notes = 0, []
    for i, run in enumerate(runs):
        data, bad_json = run.json()
        if run.failure() or run.rc != 0 or not isinstance(data, dict):
            notes.append(f"indexer {i + 1}: {run.failure() or bad_json or run.error_line()[:70]}")
        else:
            encoded += data.get("encoded", 0)
    if "locked" in " ".join(r.err for r in runs):
        notes.append("'database is locked'")
    cat = read_catalog(store, lab.model)
    if len(cat.indexed()) != n or bad_blobs(cat, set(cat.indexed().values())):
        notes.append(f"catalog has {len(cat.indexed())} of {n}")
    if cat.integrity != "ok":
        notes.append(f"integrity: {cat.integrity}")
    if encoded > n + 8:  # one batch each of overlap at most
        notes.append(f"{encoded} encodes for {n} images")
    notes += folder_changes(before, folder_state(folder))[:2]
    got = "; ".join(notes) or f"{encoded} encodes for {n} images, catalog exact"
    return not notes, got, max(r.peak_mb for r in runs)


def prepare_reference(lab: Lab) -> None:
    """Index the corruption folder into a clean store (this also exports the ONNX model
    into the cache) and record what a clean store answers."""
    folder = lab.base / "corrupt" / "photos"
    make_images(folder, lab.opts.corrupt_images, "c", np.random.default_rng(lab.opts.seed + 1))
    store = lab.base / "corrupt" / "ref-store"
    run = lab.cli("index", folder, "--store", store, "--json", timeout=600)
    report, bad_json = run.json()
    if run.rc != 0 or not isinstance(report, dict):
        raise SystemExit(f"cannot index a clean folder: {run.failure() or bad_json}\n{run.err}")
    lab.model = report["model"]
    lab.rate = max(5.0, report["encoded"] / max(report["seconds"], 0.1))
    paths = sorted(read_catalog(store, lab.model).indexed())
    probe = folder / paths[len(paths) // 3]
    ref = Reference(folder, store, probe, paths, [], [], [])
    lab.reference = ref
    with ThreadPoolExecutor(lab.opts.jobs) as pool:
        sim = pool.submit(lab.cli, "similar", *similar_args(ref, store))
        out = pool.submit(lab.cli, "outliers", folder, "--store", store, "--json", "-k", 10)
        clu = pool.submit(lab.cli, "clusters", folder, "--store", store, "--json")
        sim, out, clu = sim.result(), out.result(), clu.result()
    lab.startup = sim.seconds
    for name, run in (("similar", sim), ("outliers", out), ("clusters", clu)):
        if run.rc != 0 or run.json()[1]:
            raise SystemExit(f"`{name}` fails on a clean store: {run.failure()}\n{run.err}")
    ref.similar = hits(sim.json()[0], folder)
    ref.outliers = hits(out.json()[0], folder)
    ref.clusters = clu.json()[0]
    log(
        f"  reference: {len(paths)} images, {lab.rate:.0f} img/s, start-up {lab.startup:.1f} s, "
        f"`similar` peak {sim.peak_mb:.0f} MB"
    )


def corruption_cases(lab: Lab) -> list[Callable[[], None]]:
    ref_n = len(lab.reference.paths)
    cases = [
        (
            "garbled ONNX model in the cache (64 KB of 0xFF), then `index`",
            "recovers (vectors = clean ones) or one readable line; after the model is "
            "fixed, no NaN vector survives",
            case_onnx,
        ),
        (
            f"garbled and truncated Annoy segment ({ANNOY_VECTORS:,} vectors), `similar`",
            "recall as on a clean index, or one readable line",
            case_annoy,
        ),
        (
            "vector blobs +2 and -2 bytes in catalog.sqlite, `similar`",
            "same result as a clean store (the two damaged aside) or one readable line; "
            "`index` repairs them",
            case_blobs,
        ),
        (
            "one NaN vector, `outliers --json` and `similar`",
            "valid JSON without NaN, same result as a clean store; `index` repairs it",
            case_nan,
        ),
        (
            "map cache (map-*.npz) cut in half, two `clusters` at once, then a third",
            f"all exit 0 with the clean store's clusters ({ref_n} images)",
            case_map,
        ),
        (
            "catalog.sqlite header garbled (first 100 bytes), `similar`",
            "same result as a clean store, or one line: what is wrong and how to recover",
            case_catalog("header"),
        ),
        (
            "catalog.sqlite pages garbled (middle 40 %), `similar`",
            "same result as a clean store, or one line: what is wrong and how to recover",
            case_catalog("pages"),
        ),
        (
            "two `index` runs at once on one new store",
            "both finish, no 'database is locked', each image encoded once, catalog exact",
            case_two_indexers,
        ),
    ]
    return [
        corrupt_case(lab, name, expected, lambda work, f=body: f(lab, work))
        for name, expected, body in cases
    ]


# -- part 3: bad inputs -----------------------------------------------------------------


@dataclass
class Hostile:
    """A folder of good images plus one hostile entry, made by `build` (returns a marker
    found in the catalog path or skip report of the entry) or replaced by `during` once
    the run has scanned the folder."""

    name: str
    expected: str
    build: Callable[[Path], str]
    during: Callable[[Path], None] | None = None
    must_report: bool = True  # the entry must be indexed or reported with a reason
    good: int = 2
    extra: Callable[[Lab, Path, Path], tuple[bool, str]] | None = None


def skip_entries(lab: Lab, folder: Path, store: Path) -> list[tuple[str, str]]:
    run = lab.cli("info", folder, "--store", store, "--json")
    info, _ = run.json()
    if not isinstance(info, dict):
        return []
    return [(str(s.get("path")), str(s.get("reason"))) for s in info.get("skipped", [])]


def hostile_case(lab: Lab, h: Hostile) -> Callable[[], None]:
    lab.case_order.append(h.name)

    def run() -> None:
        work = lab.base / "bad" / re.sub(r"\W+", "-", h.name)
        folder, store = work / "photos", work / "store"
        nrng = np.random.default_rng(zlib.crc32(h.name.encode()))
        good = make_images(folder, h.good, "good", nrng)
        marker = h.build(folder)
        before = folder_state(folder)
        started = time.monotonic()
        child = lab.start("index", folder, "--store", store)
        if h.during is not None:
            child.wait_progress(child.started + lab.startup + 30)
            h.during(folder)
        result = child.finish(lab.opts.hostile_timeout)
        ok, got = judge_hostile(lab, h, result, folder, store, marker, [p.name for p in good])
        if h.extra is not None and not result.failure():
            ok2, got2 = h.extra(lab, folder, store)
            ok, got = ok and ok2, f"{got}; {got2}"
        ignore = {rel for rel in before if marker in rel} if h.during else set()
        changes = folder_changes(before, folder_state(folder), ignore)
        if changes:
            ok, got = False, f"{got}; {originals_note(changes)}"
        seconds = time.monotonic() - started
        lab.add(Result("bad inputs", h.name, h.expected, got, ok, result.peak_mb, seconds, True))

    run.name = h.name  # type: ignore[attr-defined]
    return run


def judge_hostile(
    lab: Lab, h: Hostile, run: Run, folder: Path, store: Path, marker: str, good: list[str]
) -> tuple[bool, str]:
    if run.failure():
        return False, run.failure()
    if run.rc != 0:
        return False, f"exit {run.rc}: {run.error_line()[:90]}"
    if "\x1b" in run.out + run.err:
        return False, "raw escape sequence printed to the terminal"
    indexed = set(read_catalog(store, lab.model).indexed())
    missing_good = [g for g in good if g not in indexed]
    reasons = [r for p, r in skip_entries(lab, folder, store) if marker in p]
    if missing_good:
        return False, f"exit 0 but good images not indexed: {missing_good[:2]}"
    found = [p for p in indexed if marker in p]
    if found:
        return True, "exit 0; indexed" + (f" ({len(found)} paths)" if len(found) > 1 else "")
    if reasons and all(r.strip() and r != "None" for r in reasons):
        return True, f"exit 0; skipped: {reasons[0]}"
    if reasons:
        return False, "exit 0; skipped with an empty reason"
    return (not h.must_report), "exit 0; not indexed and not reported"


def ansi_output(lab: Lab, folder: Path, store: Path) -> tuple[bool, str]:
    """The table output of `similar` for the file with a newline and an escape in its name."""
    target = next(p for p in folder.iterdir() if p.name.startswith("evil"))
    run = lab.cli("similar", folder, target, "--store", store, "-k", 3, "--include-self")
    if run.failure() or run.rc != 0:
        return False, f"similar: {run.failure() or run.error_line()[:80]}"
    shown = [ln for ln in run.out.splitlines() if "evil" in ln]
    if "\x1b" in run.out or any("red.jpg" not in ln for ln in shown):
        return False, "similar prints the raw escape/newline"
    return True, "similar prints it on one line, escaped"


def hostile_files(lab: Lab) -> list[Hostile]:
    nrng = np.random.default_rng(7)
    jpeg = image_bytes(nrng)

    def file(name: str | bytes, data: bytes, marker: str) -> Callable[[Path], str]:
        def build(folder: Path) -> str:
            with open(os.path.join(os.fsencode(folder), os.fsencode(name)), "wb") as fh:
                fh.write(data)
            return marker

        return build

    def fifo(folder: Path) -> str:
        os.mkfifo(folder / "pipe.jpg")
        return "pipe"

    def zero(folder: Path) -> str:
        os.symlink("/dev/zero", folder / "zero.jpg")
        return "zero"

    def sparse(folder: Path) -> str:
        with open(folder / "x.jpg", "wb") as fh:
            fh.truncate(3 << 30)
        return "x.jpg"

    def png16(folder: Path) -> str:
        write_png16(folder / "big16.png", 13000)
        return "big16"

    def loop(folder: Path) -> str:
        os.symlink(".", folder / "loop")
        return "loop"

    def deep(folder: Path) -> str:
        make_deep(folder, jpeg)
        return "deep/"

    def target(folder: Path) -> str:
        (folder / "zz_target.jpg").write_bytes(jpeg)
        return "zz_target"

    def to_fifo(folder: Path) -> None:
        (folder / "zz_target.jpg").unlink()
        os.mkfifo(folder / "zz_target.jpg")

    def to_zero(folder: Path) -> None:
        (folder / "zz_target.jpg").unlink()
        os.symlink("/dev/zero", folder / "zz_target.jpg")

    skip = "finishes; exit 0; skipped with a reason; memory bounded"
    either = "finishes; exit 0; indexed, or skipped with a reason; memory bounded"
    after_scan = 60 if lab.opts.quick else 200
    return [
        Hostile("baseline: 2 good images only", "exit 0; both indexed", lambda f: "good"),
        Hostile(
            "truncated JPEG (first half)", skip, file("cut.jpg", jpeg[: len(jpeg) // 2], "cut")
        ),
        Hostile("0-byte .jpg", skip, file("empty.jpg", b"", "empty")),
        Hostile("text file named .jpg", skip, file("text.jpg", b"not a picture\n" * 20, "text")),
        Hostile("non-UTF-8 name b'caf\\xe9.jpg'", either, file(b"caf\xe9.jpg", jpeg, "caf")),
        Hostile(
            "name with a newline and an ANSI escape",
            either + "; printed escaped, on one line",
            file("evil\n\x1b[31mred.jpg", jpeg, "evil"),
            extra=ansi_output,
        ),
        Hostile("name ending in a space ('space.jpg ')", either, file("space.jpg ", jpeg, "space")),
        Hostile("path deeper than PATH_MAX (4,500 chars)", either, deep),
        Hostile("FIFO named .jpg", skip, fifo),
        Hostile("symlink to /dev/zero named .jpg", skip, zero),
        Hostile(
            f"file replaced by a FIFO after the scan ({after_scan} images)",
            skip + "; no hang",
            target,
            during=to_fifo,
            good=after_scan,
        ),
        Hostile(
            f"file replaced by a symlink to /dev/zero after the scan ({after_scan} images)",
            skip + "; no hang",
            target,
            during=to_zero,
            good=after_scan,
        ),
        Hostile("sparse 3 GB x.jpg (truncate -s 3G)", skip, sparse),
        Hostile("16-bit 13000×13000 PNG (360 KB on disk)", either, png16),
        Hostile("symlink loop (loop -> .)", "finishes; exit 0", loop, must_report=False),
    ]


def simple_case(
    lab: Lab, name: str, expected: str, body: Callable[[Path], tuple[bool | None, str, float]]
) -> Callable[[], None]:
    lab.case_order.append(name)

    def run() -> None:
        work = lab.base / "bad" / re.sub(r"\W+", "-", name)
        work.mkdir(parents=True)
        started = time.monotonic()
        try:
            ok, got, peak = body(work)
        except Exception as exc:
            ok, got, peak = False, f"script error: {exc!r}", 0.0
        lab.add(
            Result("bad inputs", name, expected, got, ok, peak, time.monotonic() - started, True)
        )

    run.name = name  # type: ignore[attr-defined]
    return run


def case_unmounted(lab: Lab, work: Path) -> tuple[bool | None, str, float]:
    mnt, store = work / "mnt", work / "store"
    if not lab.mount_tmpfs(mnt, "16m"):
        return None, "skipped: mounting a tmpfs needs root", 0.0
    try:
        make_images(mnt, 5, "m", np.random.default_rng(8))
        first = lab.cli("index", mnt, "--store", store, "--json")
    finally:
        lab.umount(mnt)
    if first.rc != 0:
        return False, f"first index: {first.failure() or first.error_line()}", first.peak_mb
    run = lab.cli("index", mnt, "--store", store, "--json")
    report, _ = run.json()
    cat = read_catalog(store, lab.model)
    kept = len(cat.indexed())
    peak = max(first.peak_mb, run.peak_mb)
    if run.failure():
        return False, run.failure(), peak
    if run.rc == 0 and isinstance(report, dict):
        removed = report.get("removed")
        ok = removed == 0 and kept == 5
        return ok, f"exit 0, reports {removed} removed, {kept} of 5 kept", peak
    ok = run.readable_error() and kept == 5
    return ok, f"exit {run.rc}: {run.error_line()[:80]}; {kept} of 5 kept", peak


def export_check(src: Path, dest: Path) -> tuple[list[str], int, str]:
    """(partial or foreign files, complete image files, manifest problem) in `dest`."""
    sources = {hashlib.sha256(p.read_bytes()).hexdigest() for p in src.glob("*.jpg")}
    partial, complete = [], set()
    manifests = []
    for p in dest.rglob("*"):
        if p.is_symlink() or not p.is_file():
            continue
        rel = p.relative_to(dest).as_posix()
        if p.name.startswith("visualsearch-export") and p.suffix == ".csv":
            manifests.append(p)
        elif hashlib.sha256(p.read_bytes()).hexdigest() in sources:
            complete.add(rel)
        else:
            partial.append(f"{rel} ({p.stat().st_size} B)")
    if not manifests:
        return partial, len(complete), "no manifest"
    listed = set()
    for m in manifests:
        with contextlib.suppress(OSError, csv.Error, UnicodeDecodeError):
            listed |= {row["path"] for row in csv.DictReader(m.open(encoding="utf-8"))}
    problem = "" if listed == complete else f"manifest lists {len(listed)}, {len(complete)} there"
    return partial, len(complete), problem


def export_source(lab: Lab, work: Path, seed: int) -> tuple[Path, Path, float]:
    """A folder of ~4 MB of JPEGs, indexed; (folder, store, peak MB)."""
    src, store = work / "photos", work / "store"
    make_images(src, 8, "e", np.random.default_rng(seed), size=1024, quality=97)
    run = lab.cli("index", src, "--store", store, "--json")
    return src, store, run.peak_mb


def case_export_full(lab: Lab, work: Path) -> tuple[bool | None, str, float]:
    dest = work / "dest"
    if not lab.mount_tmpfs(dest, "2m"):
        return None, "skipped: mounting a tmpfs needs root", 0.0
    try:
        src, store, peak = export_source(lab, work, 9)
        size = sum(p.stat().st_size for p in src.glob("*.jpg")) / MB
        run = lab.cli("export", src, dest, "--store", store, "--json")
        partial, complete, manifest = export_check(src, dest)
    finally:
        lab.umount(dest)
    notes = [run.failure()] if run.failure() else []
    if partial:
        notes.append(f"{len(partial)} partial files, e.g. {partial[0]}")
    if manifest:
        notes.append(manifest)
    if run.rc not in (0, 1):
        notes.append(f"exit {run.rc}")
    got = "; ".join(notes) or f"exit {run.rc}; {complete} complete files, no partial ones, manifest"
    return not notes, f"{size:.1f} MB into 2 MB: {got}", max(peak, run.peak_mb)


def case_export_twice(lab: Lab, work: Path) -> tuple[bool | None, str, float]:
    src, store, peak = export_source(lab, work, 10)
    dest = work / "dest"
    counts, notes = [], []
    for _ in range(2):
        run = lab.cli("export", src, dest, "--store", store, "--json")
        peak = max(peak, run.peak_mb)
        if run.failure() or run.rc != 0:
            notes.append(run.failure() or run.error_line()[:80])
        partial, complete, _ = export_check(src, dest)
        counts.append(complete + len(partial))
    if counts[1] != counts[0]:
        notes.append(f"second export added {counts[1] - counts[0]} copies of the same files")
    return not notes, "; ".join(notes) or f"{counts[0]} files, none copied again", peak


def case_threshold(lab: Lab, work: Path) -> tuple[bool | None, str, float]:
    ref: Reference = lab.reference
    store = clone_store(ref.store, work / "store")
    run = lab.cli("duplicates", ref.folder, "--store", store, "--threshold", -1, "--json")
    if run.readable_error():
        return True, f"exit {run.rc}: {run.error_line()[:90]}", run.peak_mb
    data, _ = run.json()
    groups = len(data) if isinstance(data, list) else "?"
    return False, run.failure() or f"accepted: exit {run.rc}, {groups} groups", run.peak_mb


def case_identical(lab: Lab, work: Path) -> tuple[bool | None, str, float]:
    n = 1000 if lab.opts.quick else 20_000
    folder, store = work / "photos", work / "store"
    folder.mkdir()
    data = image_bytes(np.random.default_rng(11))
    for i in range(n):
        (folder / f"same_{i:05d}.jpg").write_bytes(data)
    run = lab.cli("index", folder, "--store", store, "--json", timeout=lab.opts.timeout * 4)
    report, bad_json = run.json()
    if run.failure() or run.rc != 0 or not isinstance(report, dict):
        return False, f"index: {run.failure() or bad_json or run.error_line()}", run.peak_mb
    dup = lab.cli("duplicates", folder, "--store", store, "--json", "--preset", "identical")
    groups, bad_json = dup.json()
    peak = max(run.peak_mb, dup.peak_mb)
    sizes = [len(g["images"]) for g in groups] if isinstance(groups, list) else []
    notes = []
    if report.get("encoded") != 1:
        notes.append(f"index reports {report.get('encoded')} encoded, not 1")
    if dup.failure() or dup.rc != 0 or sizes != [n]:
        notes.append(f"duplicates: {dup.failure() or bad_json or dup.error_line() or sizes[:3]}")
    got = (
        "; ".join(notes) or f"encoded once; one group of {n}; duplicates peak {dup.peak_mb:.0f} MB"
    )
    return not notes, got, peak


def case_info_creates(lab: Lab, work: Path) -> tuple[bool | None, str, float]:
    folder = work / "never-indexed"
    make_images(folder, 1, "n", np.random.default_rng(12))
    collections = lab.home / "data" / "visualsearch" / "collections"
    before = set(collections.iterdir()) if collections.exists() else set()
    run = lab.cli("info", folder)
    after = set(collections.iterdir()) if collections.exists() else set()
    if run.failure():
        return False, run.failure(), run.peak_mb
    made = after - before
    got = f"exit {run.rc}; " + ("created a store" if made else "no store created")
    return not made, got, run.peak_mb


def bad_input_cases(lab: Lab) -> list[Callable[[], None]]:
    cases = [hostile_case(lab, h) for h in hostile_files(lab)[1:]]
    n = 1000 if lab.opts.quick else 20_000
    cases += [
        simple_case(
            lab,
            "empty mount point: index a tmpfs, umount it, index again",
            "nothing removed (says it looks unmounted), all vectors kept",
            lambda w: case_unmounted(lab, w),
        ),
        simple_case(
            lab,
            "export to a full 2 MB tmpfs",
            "no empty or truncated file under a real name; manifest of what was written; "
            "no traceback",
            lambda w: case_export_full(lab, w),
        ),
        simple_case(
            lab,
            "export twice into one folder",
            "the second export copies nothing again",
            lambda w: case_export_twice(lab, w),
        ),
        simple_case(
            lab,
            "duplicates --threshold -1",
            "rejected with one readable line",
            lambda w: case_threshold(lab, w),
        ),
        simple_case(
            lab,
            f"{n:,} identical files: index, duplicates",
            "encoded once; one group; memory bounded",
            lambda w: case_identical(lab, w),
        ),
        simple_case(
            lab,
            "`info` on a folder never indexed",
            "no store created",
            lambda w: case_info_creates(lab, w),
        ),
    ]
    return cases


def baseline(lab: Lab) -> None:
    hostile_case(lab, hostile_files(lab)[0])()
    lab.baseline_mb = lab.results[-1].peak_mb or 0.0


# -- report -----------------------------------------------------------------------------


def judge_memory(lab: Lab) -> float:
    limit = lab.opts.mem_limit or lab.baseline_mb + 1024
    for r in lab.results:
        if r.memory_bounded and r.ok and r.peak_mb and r.peak_mb > limit:
            r.ok = False
            r.got += f"; peak {r.peak_mb:.0f} MB over the {limit:.0f} MB limit"
    return limit


def cell(text: str, n: int = 220) -> str:
    return clip(text, n).replace("|", "\\|")


def print_report(lab: Lab, limit: float, seconds: float) -> None:
    res = lab.results

    def count(section: str) -> str:
        rows = [r for r in res if r.section == section and r.ok is not None]
        return f"{sum(bool(r.ok) for r in rows)}/{len(rows)}"

    kc = lab.kill_counts
    bad = [r for r in res if r.section == "bad inputs" and r.peak_mb]
    worst = max(bad, key=lambda r: r.peak_mb) if bad else None
    print(
        f"\n## Torture run ({'--quick' if lab.opts.quick else 'full'}, seed {lab.opts.seed}, "
        f"{os.cpu_count()} cores, {seconds / 60:.1f} min)\n"
    )
    print(
        f"- Kills survived: {kc['SIGKILL'] + kc['SIGINT']} runs of `index` killed "
        f"({kc['SIGKILL']} SIGKILL, {kc['SIGINT']} SIGINT; {kc['early']} finished first) over "
        f"{lab.opts.kill_images}+ images with files deleted, edited, renamed and copied between "
        f"and during runs; clean runs with exact counts: {lab.clean_rounds[True]}/"
        f"{sum(lab.clean_rounds.values())}."
    )
    print(f"- Corruption cases recovered or refused in one line: {count('corruption')}.")
    print(
        f"- Bad inputs handled: {count('bad inputs')}; memory limit {limit:.0f} MB "
        f"(baseline {lab.baseline_mb:.0f} MB + 1 GB)"
        + (f"; highest peak {worst.peak_mb:.0f} MB ({worst.case})." if worst else ".")
    )
    print("\n| part | case | expected | got | result | peak MB | s |")
    print("|---|---|---|---|---|---:|---:|")
    for r in res:
        mark = {True: "pass", False: "**FAIL**", None: "skip"}[r.ok]
        peak = f"{r.peak_mb:.0f}" if r.peak_mb else ""
        secs = f"{r.seconds:.1f}" if r.seconds is not None else ""
        print(
            f"| {r.section} | {cell(r.case, 400)} | {cell(r.expected)} | {cell(r.got, 300)} | "
            f"{mark} | {peak} | {secs} |"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer kills and smaller folders")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2, help="cases run at once (parts 2 and 3)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--mem-cap", type=float, default=4096, help="MB: kill a process past this")
    p.add_argument("--mem-limit", type=float, default=0, help="MB: pass limit (baseline + 1 GB)")
    p.add_argument("--only", choices=("kills", "corruption", "bad"), help="run one part")
    p.add_argument("--match", help="parts 2 and 3: only the cases whose name contains this")
    p.add_argument(
        "--source",
        type=Path,
        default=REPO,
        help="the checkout whose `visualsearch` package is attacked (default: this one)",
    )
    args = p.parse_args(argv)
    args.kills = 8 if args.quick else 30
    args.check_every = 2 if args.quick else 1
    args.kill_images = 300 if args.quick else 400
    args.corrupt_images = 60 if args.quick else 120
    args.timeout = 120 if args.quick else 300  # per ordinary command
    args.hostile_timeout = 30 if args.quick else 60
    return args


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="visualsearch-torture-"))
    lab = Lab(base, opts)
    log(f"torture: working in {base}")
    try:
        log("== setup: a clean reference store")
        prepare_reference(lab)
        baseline(lab)
        if opts.only in (None, "kills"):
            kills_part(lab)
        cases = []
        if opts.only in (None, "corruption"):
            cases += corruption_cases(lab)
        if opts.only in (None, "bad"):
            cases += bad_input_cases(lab)
        if opts.match:
            cases = [c for c in cases if opts.match.lower() in c.name.lower()]  # type: ignore
        log(f"\n== corruption and bad inputs: {len(cases)} cases, {opts.jobs} at a time")
        with ThreadPoolExecutor(opts.jobs) as pool:
            try:
                for future in [pool.submit(case) for case in cases]:
                    future.result()
            except BaseException:
                lab.stop()
                pool.shutdown(cancel_futures=True)
                raise
    finally:
        lab.stop()
        for mnt in list(lab.mounts):
            lab.umount(mnt)
        if not opts.keep:
            shutil.rmtree(base, ignore_errors=True)
    order = {"kills": 0, "corruption": 1, "bad inputs": 2}
    rank = {name: i for i, name in enumerate(lab.case_order)}
    lab.results.sort(key=lambda r: (order[r.section], rank.get(r.case, -1)))
    limit = judge_memory(lab)
    print_report(lab, limit, time.monotonic() - started)
    return 1 if any(r.ok is False for r in lab.results) else 0


if __name__ == "__main__":
    sys.exit(main())
