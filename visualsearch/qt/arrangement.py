"""What the grid shows, arranged: items through the folder filter and in the chosen order.

Plain functions on plain values, so that a million images are arranged in the pool and
not on the GUI thread (measured at 1,000,000 images: path order 1.5 s, natural name
order 6 s; see bench/window_scale.py).
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path

from visualsearch.core.sorting import RELEVANCE, in_folder, sort_items, sorted_gently
from visualsearch.core.store import FileRecord
from visualsearch.qt.image_list_model import GridItem


@dataclass
class Arrangement:
    key: str  # the order the items are in
    base: list[GridItem]  # every item, before the folder filter and the order
    items: list[GridItem]  # what the grid shows
    keep_row: int | None = None  # the row of the item asked to be kept, if it is shown
    # while all images are shown: rel → row in `items`, rel → position in `base`
    rows: dict[str, int] = field(default_factory=dict)
    base_index: dict[str, int] | None = None


def browse_items(root: Path, records: Iterable[FileRecord]) -> list[GridItem]:
    """Every catalogued image of the folder `root` as a grid item, in path order."""
    ordered = sorted_gently(list(records), attrgetter("path"))
    return [GridItem.under(root, r.path, r) for r in ordered]


def arrange(
    base: list[GridItem],
    folder: str,
    key: str,
    descending: bool,
    browsing: bool,
    keep: GridItem | None = None,
) -> Arrangement:
    """`base` within `folder` ("" = all) in the order `key`. `browsing`: the items are
    all images, which new ones join by path (so their rows are looked up by path);
    `keep`: an item whose new row is wanted (found by path while browsing)."""
    items = base
    if folder:
        items = [it for it in items if it.rel is not None and in_folder(it.rel, folder)]
    if key != RELEVANCE:
        items = sort_items(items, key, descending, record=attrgetter("record"))
    elif items is base:
        items = list(base)
    arranged = Arrangement(key, base, items)
    if browsing:
        arranged.rows, arranged.base_index = rows_by_rel(items), rows_by_rel(base)
    if keep is not None and browsing and keep.rel is not None:
        arranged.keep_row = arranged.rows.get(keep.rel)
    elif keep is not None:
        arranged.keep_row = next((row for row, it in enumerate(items) if it is keep), None)
    return arranged


def rows_by_rel(items: list[GridItem], run: int = 50_000) -> dict[str, int]:
    """rel → position, made in runs: one dict of a million in one call held the GIL for
    0.8 s (other threads wait for it to end)."""
    rows: dict[str, int] = {}
    for start in range(0, len(items), run):
        chunk = items[start : start + run]
        rels = map(attrgetter("rel"), chunk)
        rows.update(zip(rels, range(start, start + len(chunk)), strict=True))
    return rows


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a million items are made: a full pass walks
    every object holding the GIL, and froze the window for 3-4 s at a time (measured at
    1,000,000 images). What is alive afterwards is frozen, as the grid's model does."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
