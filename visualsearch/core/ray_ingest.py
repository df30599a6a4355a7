"""Encoding a folder on a Ray cluster into the same store (`index --ray`).

The driver scans, compares with the store and commits, exactly as a local run does: one
writer, a transaction per batch, the same resume. Only reading, decoding and encoding
move: Ray Data takes the paths that need the model in blocks, and actors on the
cluster's nodes run the local pipeline's own `prepare_file` and `embed_prepared` on them
(CPU or GPU actors: `RayOptions`), streaming each file's record, vector and thumbnail
back to the driver as they finish. A file the workers cannot read comes back with its
reason, as locally; a worker that dies has its batch retried by Ray.

Every node must see the folder at the same path (a shared filesystem), and have
visualsearch installed (`pip install 'visualsearch[cluster]'`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from collections.abc import Container, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from visualsearch.core.encoders.base import ModelUnavailable
from visualsearch.core.indexing import (
    Claims,
    IndexOptions,
    PreparedFile,
    embed_prepared,
    prepare_file,
)
from visualsearch.core.interrupts import optional_import
from visualsearch.core.progress import Progress
from visualsearch.core.scan import FileStat
from visualsearch.core.store import FileRecord

log = logging.getLogger(__name__)

INSTALL_HINT = "Ray is not installed: pip install 'visualsearch[cluster]' (or 'ray[data,client]')"


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide the cluster encodes."""

    address: str | None = None  # None: start a Ray instance on this computer
    actors: int = 0  # encoding actors; 0: one per node (with GPUs: one per `gpus_per_actor`)
    # 0: all of a node's CPUs (its actors' share): the actor's decode threads work beside
    # the model as in a local run, 1.4x an actor per core here (bench/ray_ingest.py)
    cpus_per_actor: float = 0.0
    gpus_per_actor: float = 0.0  # e.g. 1: each actor holds a GPU (decodes JPEGs there too)
    files_per_block: int = 64  # paths per Ray Data block, and per actor call
    num_cpus: int | None = None  # for a local instance: how many CPUs it may use


class ClusterFailed(ModelUnavailable):
    """The cluster's workers could not encode (a model they cannot load, say); the
    message ends with their error."""


def _last_line(exc: BaseException) -> str:
    """A remote traceback's last line, its exception named without its module."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return re.sub(r"^(?:\w+\.)+(?=\w+: )", "", lines[-1]) if lines else type(exc).__name__


def _answers(address: str) -> None:
    """Fails in seconds where no cluster answers at a HOST:PORT address: ray.init waits
    for one without end."""
    host, _, port = address.rpartition(":")
    if "://" in address or not port.isdigit():
        return  # "auto", or a ray:// client address (which fails fast by itself)
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as exc:
        raise ClusterFailed(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one there "
            "with `ray start --head`, or give no address for one on this computer"
        ) from exc


def ray_available() -> bool:
    return optional_import("ray.data") is not None


class RayEncoding:
    """Encodes the files of an indexing run on a Ray cluster (`index_folder(remote=...)`)."""

    def __init__(self, spec: str, weights: Path | None, cache_dir: Path, ray: RayOptions):
        if not ray_available():
            raise RuntimeError(INSTALL_HINT)
        self.spec, self.weights, self.cache_dir, self.options = spec, weights, cache_dir, ray

    def prepare(
        self,
        root: Path,
        todo: list[FileStat],
        known: Container[str],
        have_thumbs: Container[str],
        opts: IndexOptions,
        progress: Progress,
    ) -> Iterator[PreparedFile]:
        """Each file of `todo` prepared and encoded on the cluster, in the order they
        finish. Stops early (and lets the cluster's work go) when the caller stops."""
        import ray

        if self.options.address:
            _answers(self.options.address)
        started_here = not ray.is_initialized()
        if started_here:
            progress.report(0, len(todo), "Connecting to the Ray cluster…")
            ray.init(
                address=self.options.address,
                num_cpus=self.options.num_cpus if self.options.address is None else None,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        try:
            yield from self._stream(root, todo, known, have_thumbs, opts)
        except ray.exceptions.RayError as exc:  # its message: the workers' traceback
            raise ClusterFailed(f"the Ray cluster's workers failed ({_last_line(exc)})") from exc
        finally:
            if started_here:
                ray.shutdown()

    def _stream(self, root, todo, known, have_thumbs, opts) -> Iterator[PreparedFile]:
        import ray

        o = self.options
        actors, cpus_each = _layout(o)
        # blocks of at most files_per_block paths, at least 8 for each actor: results come
        # back a block at a time (a commit, and the progress shown)
        per_block = max(1, min(o.files_per_block, len(todo) // (8 * actors)))
        blocks = -(-len(todo) // per_block)
        actors = min(actors, blocks)
        rows = [{"path": f.path, "size": f.size, "mtime_ns": f.mtime_ns} for f in _by_size(todo)]
        ds = ray.data.from_items(rows, override_num_blocks=blocks)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the run reports its own progress
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        # actors that die are started again and their blocks retried: Ray Data's default
        encoded = ds.map_batches(
            _EncodeFiles,
            fn_constructor_args=(
                {
                    "root": str(root),
                    "spec": self.spec,
                    "weights": str(self.weights) if self.weights else None,
                    "cache_dir": str(self.cache_dir),
                    "device": "cuda" if o.gpus_per_actor else "cpu",
                    "threads": max(1, int(cpus_each)),
                    "opts": replace(opts, only=None),
                    "known": frozenset(known),
                    "have_thumbs": frozenset(have_thumbs),
                },
            ),
            batch_size=per_block,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=cpus_each,
            num_gpus=o.gpus_per_actor or None,
        )
        stats = {f.path: f for f in todo}
        for batch in encoded.iter_batches(batch_size=None, batch_format="numpy"):
            yield from _items(batch, stats)


def _by_size(todo: list[FileStat]) -> list[FileStat]:
    """`todo` with the files of one size next to each other (each size where its first
    file was): copies of a content share a block, and so an actor, which decodes and
    encodes the content once. Files of sizes of their own keep their order."""
    sizes: dict[int, list[FileStat]] = {}
    for f in todo:
        sizes.setdefault(f.size, []).append(f)
    return [f for same in sizes.values() for f in same]


def _layout(o: RayOptions) -> tuple[int, float]:
    """(actors, CPUs each) on the cluster's live nodes: `o`'s, else one actor per node
    (per GPU share with `gpus_per_actor`) with the node's CPUs, or its share of them."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU")]
    if o.gpus_per_actor:
        per_node = [int(r.get("GPU", 0) // o.gpus_per_actor) for r in nodes]
        if not any(per_node):
            raise ClusterFailed(f"--ray-gpus {o.gpus_per_actor:g}: the Ray cluster has no GPU")
    else:  # one a node; more when asked for more than there are nodes (they share its CPUs:
        # an actor with all of a node's could not start beside another there)
        per_node = [max(1, -(-o.actors // max(1, len(nodes))))] * len(nodes)
    shares = [r["CPU"] / k for r, k in zip(nodes, per_node, strict=True) if k]
    cpus_each = o.cpus_per_actor or max(1.0, float(int(min(shares, default=1.0))))
    return o.actors or max(1, sum(per_node)), cpus_each


class _EncodeFiles:
    """A Ray actor: loads the model once, then prepares and encodes batches of files."""

    def __init__(self, shared: dict) -> None:
        from visualsearch.core.encoders import load_encoder

        self.s = shared
        weights = Path(shared["weights"]) if shared["weights"] else None
        self.encoder = load_encoder(
            shared["spec"],
            Path(shared["cache_dir"]),
            weights=weights,
            threads=shared["threads"],
            device=shared["device"],
        )
        self.root = Path(shared["root"])
        # decode threads beside the model, as in a local run (Pillow lets go of the GIL)
        self.pool = ThreadPoolExecutor(shared["threads"])
        # contents this actor has claimed: a copy only waits for its first file's vector,
        # which the driver gives it as in a local run (the first comes back no later)
        self.claims = Claims()
        log.info("encoding actor %s ready on %s", os.getpid(), self.encoder.backend)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        s = self.s

        def prepare(path, size, mtime) -> PreparedFile:
            f = FileStat(str(path), int(size), int(mtime))
            known, thumbs = s["known"], s["have_thumbs"]
            return prepare_file(self.root, f, self.encoder, known, thumbs, s["opts"], self.claims)

        items = list(self.pool.map(prepare, batch["path"], batch["size"], batch["mtime_ns"]))
        embed_prepared(items, self.encoder, s["opts"])
        # Every column the same type in every block: Arrow turns a column of only None
        # into NaN. A record travels as JSON (ASCII: a name that is not UTF-8 keeps its
        # escapes), a vector and a thumbnail with a flag each.
        n, dim = len(items), self.encoder.dim
        vectors, has_vector = np.zeros((n, dim), np.float32), np.zeros(n, bool)
        for i, it in enumerate(items):
            if it.vector is not None:
                vectors[i], has_vector[i] = it.vector, True
        return {
            "path": [it.record.path for it in items],
            "record": [json.dumps(asdict(it.record)) for it in items],
            "vector": vectors,
            "has_vector": has_vector,
            "thumbnail": [it.thumbnail or b"" for it in items],
            "has_thumbnail": np.array([it.thumbnail is not None for it in items], bool),
            "claimed": [it.claimed or "" for it in items],
            "waits": np.array([it.waits for it in items], bool),
        }


def _items(batch: dict[str, np.ndarray], stats: dict[str, FileStat]) -> Iterator[PreparedFile]:
    for i, path in enumerate(batch["path"]):
        yield PreparedFile(
            stats[str(path)],
            FileRecord(**json.loads(batch["record"][i])),
            vector=np.asarray(batch["vector"][i], np.float32) if batch["has_vector"][i] else None,
            thumbnail=bytes(batch["thumbnail"][i]) if batch["has_thumbnail"][i] else None,
            claimed=str(batch["claimed"][i]) or None,
            waits=bool(batch["waits"][i]),
        )
