"""`visualsearch` / `python -m visualsearch`: the window, or a CLI command.

visualsearch                 the window (re-opens the last folder)
visualsearch FOLDER          the window, on FOLDER
visualsearch --sample        the window, on the sample collection
visualsearch COMMAND …       a headless command (visualsearch --help)
"""

from __future__ import annotations

import contextlib
import logging
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
    return code if argv[:1] == ["gui"] and code != 130 else _ended(code)


def _ended(code: int) -> int:
    """A command has ended and closed its stores (an interrupted one has committed every
    finished batch: as safe as a kill -9, which the tests and scripts/torture.py check).
    The interpreter's teardown of torch, ONNX Runtime and OpenVINO is skipped: it kept
    the shell waiting 1.3-2 s after `index` had printed its summary, and Ctrl+C ~1.5 s
    after a run had stopped. Only daemon threads can be left (decode threads)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a pipe closed early (`| head`)
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
