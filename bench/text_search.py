"""Everyday text queries with the built-in model: mAP and how often the first photo is
right, over the 36 real photos the tests use (tests/everyday_queries.py). With
`--against REV` the same queries run on that commit too, side by side. Prints figures
from one run; the level reached is asserted in tests/core/test_everyday_queries.py.

    python bench/text_search.py [--against 2ef6015]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from commits import checked_out, package_env

from tests.everyday_queries import EVERYDAY, evaluate

# Runs in a new process so that another commit's code can be measured the same way.
RANK = """
import json, sys
from pathlib import Path
from visualsearch.core.collection import Collection
from visualsearch.core.encoders.builtin import BuiltinEncoder
from visualsearch.core.indexing import index_folder
from visualsearch.core.store import Store
photos, store_dir, cache, queries = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
encoder = BuiltinEncoder(cache_dir=Path(cache))
store = Store(Path(store_dir), root=photos)
index_folder(photos, store, encoder)
col = Collection(photos, store, encoder)
print(json.dumps({q: [h.path.name for h in col.search_text(q, k=len(col))] for q in queries}))
"""


def rankings(code: Path | None, photos: Path, work: Path, cache: Path) -> dict[str, list[str]]:
    store = tempfile.mkdtemp(dir=work)
    done = subprocess.run(
        [sys.executable, "-c", RANK, str(photos), store, str(cache), *EVERYDAY],
        env=package_env(code),
        cwd=work,  # not the repository: `python -c` puts it first on sys.path
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def main() -> None:
    from visualsearch.core.sample import imagenet_photos, skimage_photos

    ap = argparse.ArgumentParser()
    ap.add_argument("--against", metavar="REV", help="also measure this commit")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vs-bench-text-"))
    photos = work / "photos"
    photos.mkdir()
    for p in skimage_photos() + imagenet_photos():
        shutil.copy2(p, photos / p.name)
    cache = Path(os.environ.get("VS_BENCH_CACHE", work / "cache"))

    columns = {"now": rankings(None, photos, work, cache)}
    if args.against:
        with checked_out(args.against, work / "against") as tree:
            columns[f"before ({args.against})"] = rankings(tree, photos, work, cache)
    results = {name: evaluate(r) for name, r in columns.items()}
    print(f"{len(EVERYDAY)} everyday queries over {len(list(photos.iterdir()))} real photos")
    print("| query | " + " | ".join(f"AP {name}" for name in results) + " |")
    print("|---" * (len(results) + 1) + "|")
    for query in EVERYDAY:
        cells = []
        for name, (_, _, ap) in results.items():
            top = columns[name][query][0]
            mark = "" if top in EVERYDAY[query] else f" (first: {top})"
            cells.append(f"{ap[query]:.2f}{mark}")
        print(f"| {query} | " + " | ".join(cells) + " |")
    maps = " | ".join(f"**{m:.3f}**" for m, _, _ in results.values())
    firsts = " | ".join(f"**{f:.0%}**" for _, f, _ in results.values())
    print(f"| **mAP** | {maps} |\n| **first photo right** | {firsts} |")


if __name__ == "__main__":
    main()
