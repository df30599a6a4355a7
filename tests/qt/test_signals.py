"""Guards the PySide6 pin: 6.12.0's Signal.emit over-released True/False, which aborted
the process after a few thousand thumbnail signals."""

from __future__ import annotations

import sys
import threading

from PySide6.QtCore import QObject, QSize, Signal
from PySide6.QtGui import QImage


class _Emitter(QObject):
    three = Signal(str, QSize, QImage)
    one = Signal(str)


def test_emitting_signals_keeps_bool_reference_counts(qtbot):
    emitter = _Emitter()
    received: list[str] = []
    emitter.one.connect(received.append)
    before = sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(1000):
        emitter.three.emit("key", QSize(1, 1), QImage())
        emitter.one.emit("key")
    worker = threading.Thread(target=lambda: [emitter.one.emit("t") for _ in range(1000)])
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: len(received) == 2000)  # the thread's emits arrive queued
    after = sys.getrefcount(True), sys.getrefcount(False)
    # 6.12.0 lost one reference per emit (thousands here); other threads of the test
    # session may drop a few of their own meanwhile
    assert after[0] >= before[0] - 200 and after[1] >= before[1] - 200, (before, after)
