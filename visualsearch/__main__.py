"""`visualsearch` / `python -m visualsearch`: the CLI; with no command, the demo."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from visualsearch.cli import main as cli_main

    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        argv = ["demo"]  # the window arrives with the desktop issue; until then, the demo
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
