"""Ctrl+C stays Ctrl+C where a C extension's import turns it into an ImportError: the
fallback for a missing package went on with the run (seen under `index --ray`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from visualsearch.core import interrupts

# a C extension's module init interrupted: pybind11 says "initialization failed", with
# the KeyboardInterrupt as its cause
INIT_FAILED = """
try:
    raise KeyboardInterrupt
except KeyboardInterrupt as exc:
    raise ImportError("initialization failed") from exc
"""
# numpy's C API import interrupted: "import numpy failed", and no trace of the interrupt.
# Ctrl+C is pressed here: a real SIGINT in a CLI's process; in the tests' own process its
# handler is called instead (a real one there once crashed pytest: some library loaded
# by then handles SIGINT in C)
NUMPY_FAILED = """
import os, signal, time
failed = False
try:
    if "press" in globals():
        press()
    else:
        os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
except KeyboardInterrupt:
    failed = True
if failed:  # raised outside the handler: no __context__ either
    raise ImportError("import numpy failed")
"""


def _fake_package(where: Path, name: str, code: str) -> Path:
    (where / name).mkdir(parents=True)
    (where / name / "__init__.py").write_text(textwrap.dedent(code))
    return where


def test_an_interrupted_import_is_an_interrupt_and_a_missing_one_is_none(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_fake_package(tmp_path, "interrupted_ext", INIT_FAILED)))
    with pytest.raises(KeyboardInterrupt):
        interrupts.optional_import("interrupted_ext")
    assert interrupts.optional_import("no_such_package_here") is None
    # how tests hide an installed package, whose subpackage an earlier test had loaded
    monkeypatch.setitem(sys.modules, "hidden_pkg", None)
    monkeypatch.setitem(sys.modules, "hidden_pkg.sub", types.ModuleType("hidden_pkg.sub"))
    assert interrupts.optional_import("hidden_pkg.sub") is None
    assert interrupts.optional_import("os.path") is os.path


def test_ctrl_c_is_counted_within_kept_only():
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's own here")
    with pytest.raises(ValueError), interrupts.kept():
        raise ValueError("an ordinary error stays itself")
    with pytest.raises(KeyboardInterrupt) as pressed, interrupts.kept():
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        handler = signal.getsignal(signal.SIGINT)
        press = {"press": lambda: handler(signal.SIGINT, None)}
        exec(NUMPY_FAILED, press)  # the import that turns Ctrl+C into an ImportError
    failed = pressed.value.__cause__
    assert isinstance(failed, ImportError) and failed.__context__ is None  # only counted
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not interrupts.pressed()  # a later error in this process stays itself
    interrupts.raise_if_interrupted(ImportError("later"))  # returns: nothing pressed now


def test_a_model_fallback_after_an_interrupted_import_stops(tmp_path, monkeypatch):
    """ONNX Runtime's import interrupted: the built-in model's graph fell back to PyTorch."""
    from visualsearch.core.encoders.onnx_cache import cached_session

    monkeypatch.syspath_prepend(str(_fake_package(tmp_path, "onnxruntime", INIT_FAILED)))
    monkeypatch.delitem(sys.modules, "onnxruntime", raising=False)
    with pytest.raises(KeyboardInterrupt):
        cached_session(tmp_path / "graph.onnx", lambda tmp: False, threads=1)


def test_ctrl_c_during_the_model_import_ends_the_cli_run(tmp_path, photos_dir, app_paths):
    """`visualsearch index` with Ctrl+C pressed while ONNX Runtime is imported (the
    chainless kind): it used to say "onnxruntime is not installed" and index on PyTorch."""
    fakes = _fake_package(tmp_path / "fakes", "onnxruntime", NUMPY_FAILED)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fakes), os.getcwd()]))
    command = [sys.executable, "-m", "visualsearch", "index", str(photos_dir)]
    command += ["--store", str(tmp_path / "store"), "--device", "cpu"]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 130, run.stderr
    assert "Interrupted" in run.stderr
    assert "not installed" not in run.stderr and "encoded" not in run.stdout


def test_ctrl_c_before_a_command_has_started_is_no_traceback():
    """Ctrl+C while the CLI parses its arguments (or imports it all): a traceback."""
    code = textwrap.dedent(
        """
        import sys
        import visualsearch.cli as cli

        def pressed():
            raise KeyboardInterrupt

        cli.build_parser = pressed
        from visualsearch.__main__ import main
        sys.exit(main(["info", "somewhere"]))
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 130
    assert run.stderr.strip() == "Interrupted."
