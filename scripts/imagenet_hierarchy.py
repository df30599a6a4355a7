"""Writes visualsearch/core/encoders/imagenet_hierarchy.json: the WordNet concepts above
the 1000 ImageNet classes ("dog" above 118 breeds, "musical instrument" above 26
instruments), each with its names and the classes it covers.

The built-in model's text search maps a query onto these concepts as well as onto the
classes, so "a dog" means every dog rather than the breed whose name is nearest. The
file is generated once from Princeton WordNet 3.0, whose noun offsets are ImageNet's
class ids (Debian: `apt install wordnet-base`), and shipped in the package: nothing is
downloaded at run time.

    python scripts/imagenet_hierarchy.py [/usr/share/wordnet/data.noun]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from visualsearch.core.encoders.vocabulary import imagenet_wnids

OUT = Path(__file__).resolve().parent.parent / "visualsearch/core/encoders/imagenet_hierarchy.json"
HYPERNYM = ("@", "@i")  # hypernym, instance hypernym
# Concepts this general cover nearly everything ("object", "whole", "artifact"): a query
# matching one says nothing about what to show.
MAX_CLASSES = 400


def read_nouns(path: Path) -> dict[str, tuple[list[str], list[str], str]]:
    """offset → (names, hypernym offsets, gloss) from a WordNet data.noun file."""
    nouns = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):  # the licence at the top
            continue
        head, _, gloss = line.partition(" | ")
        fields = head.split()
        offset, count = fields[0], int(fields[3], 16)
        names = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
        rest = fields[4 + 2 * count :]
        pointers = int(rest[0])
        parents = [rest[1 + 4 * i + 1] for i in range(pointers) if rest[1 + 4 * i] in HYPERNYM]
        nouns[offset] = ([_plain(n) for n in names], parents, gloss.strip())
    return nouns


def _plain(name: str) -> str:
    """'dog(a)' style markers are for adjectives; nouns carry none, but be safe."""
    return name.split("(")[0]


def ancestors(offset: str, nouns: dict) -> set[str]:
    seen: set[str] = set()
    todo = list(nouns[offset][1])
    while todo:
        parent = todo.pop()
        if parent not in seen:
            seen.add(parent)
            todo.extend(nouns[parent][1])
    return seen


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/wordnet/data.noun")
    nouns = read_nouns(source)
    wnids = imagenet_wnids()
    covers: dict[str, list[int]] = {}
    for index, wnid in enumerate(wnids):
        for parent in ancestors(wnid[1:], nouns):
            covers.setdefault(parent, []).append(index)
    concepts = [
        {
            "wnid": f"n{offset}",
            "names": nouns[offset][0],
            "gloss": nouns[offset][2],
            "classes": classes,
        }
        for offset, classes in sorted(covers.items())
        if len(classes) <= MAX_CLASSES
    ]
    OUT.write_text(
        json.dumps(
            {
                "source": "Princeton WordNet 3.0 (WordNet 3.0 licence: free use with "
                "its copyright notice, https://wordnet.princeton.edu/license-and-commercial-use)"
                ", via scripts/imagenet_hierarchy.py",
                "concepts": concepts,
            },
            indent=0,
            ensure_ascii=False,
        )
        + "\n"
    )
    print(f"{len(concepts)} concepts over {len(wnids)} classes → {OUT}")


if __name__ == "__main__":
    main()
