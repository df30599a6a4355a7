"""`visualsearch` starts the window, `visualsearch COMMAND` the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

from visualsearch.cli import COMMANDS, build_parser


def test_command_names_match_the_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)


def test_without_a_display_the_window_says_what_to_do_instead():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)
    for argv in ([], ["/tmp"], ["--sample"]):
        out = subprocess.run(
            [sys.executable, "-m", "visualsearch", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 1, out.stderr
        assert "no display" in out.stderr and "visualsearch demo" in out.stderr


def test_cli_commands_still_run_headless():
    out = subprocess.run(
        [sys.executable, "-m", "visualsearch", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.startswith("visualsearch ")
