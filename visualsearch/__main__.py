"""`visualsearch` / `python -m visualsearch`: the window, or a CLI command.

visualsearch                 the window (re-opens the last folder)
visualsearch FOLDER          the window, on FOLDER
visualsearch --sample        the window, on the sample collection
visualsearch COMMAND …       a headless command (visualsearch --help)
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    from visualsearch.core import interrupts  # nothing heavy: the next import is

    argv = sys.argv[1:] if argv is None else list(argv)
    try:  # Ctrl+C before a command has started (its imports, its parser): no traceback
        with interrupts.kept():
            from visualsearch.cli import COMMANDS
            from visualsearch.cli import main as cli_main
        if (
            not argv
            or argv[0] == "--sample"
            or (argv[0] not in COMMANDS and not argv[0].startswith("-"))
        ):
            argv = ["gui", *argv]
        code = cli_main(argv)
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        code = 130
    return _interrupted() if code == 130 else code


def _interrupted() -> int:
    """Interrupted: every finished batch is committed (as safe as a kill -9, which the
    tests and scripts/torture.py check), so skip the interpreter's teardown of torch and
    ONNX Runtime, which kept Ctrl+C waiting ~1.5 s after the run had stopped."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


if __name__ == "__main__":
    sys.exit(main())
