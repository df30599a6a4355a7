"""Ctrl+C stays Ctrl+C.

A KeyboardInterrupt that arrives while a C extension initialises (numpy, ONNX Runtime,
OpenVINO, PyTorch) comes out of the import as an ImportError: "initialization failed"
with the interrupt as its cause, or numpy's "import numpy failed" with no trace of it.
Read as "not installed", it let a run go on, slower, after the user had pressed Ctrl+C
(seen in 1 of 20 interrupted `index --ray` runs). A CLI command runs in `kept()`, which
counts Ctrl+C; the fallbacks ask `raise_if_interrupted` before they go on.
"""

from __future__ import annotations

import contextlib
import importlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType, ModuleType

_pressed = 0  # Ctrl+C seen within the outermost `kept()`


def _counted(signum: int, frame: FrameType | None) -> None:
    global _pressed
    _pressed += 1
    signal.default_int_handler(signum, frame)


def pressed() -> bool:
    """Whether Ctrl+C was pressed within `kept()`."""
    return _pressed > 0


def caused_by_interrupt(exc: BaseException) -> bool:
    """Whether `exc` was raised while a KeyboardInterrupt was being handled."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return False


def raise_if_interrupted(exc: BaseException) -> None:
    """Raise KeyboardInterrupt where `exc` came of Ctrl+C: the first line of a handler
    that falls back and goes on."""
    if pressed() or caused_by_interrupt(exc):
        raise KeyboardInterrupt from exc


def optional_import(name: str) -> ModuleType | None:
    """The module `name`, or None where it or a package above it is not installed (or
    cannot load)."""
    parts = name.split(".")
    try:  # parents first: import_module("a.b") returns a loaded a.b even when a is hidden
        for depth in range(1, len(parts)):
            importlib.import_module(".".join(parts[:depth]))
        return importlib.import_module(name)
    except ImportError as exc:
        raise_if_interrupted(exc)
        return None


@contextlib.contextmanager
def kept() -> Iterator[None]:
    """Count Ctrl+C within the block (it still raises KeyboardInterrupt, as Python's own
    handler does), and let whatever the block raises after it come out as
    KeyboardInterrupt (a model that "could not be loaded" as its import was interrupted).
    Only where SIGINT is Python's own to handle; the count ends with the block."""
    global _pressed
    owner = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    if owner:
        _pressed = 0
        signal.signal(signal.SIGINT, _counted)
    try:
        yield
    except Exception as exc:
        raise_if_interrupted(exc)
        raise
    finally:
        if owner:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            _pressed = 0
