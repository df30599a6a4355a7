"""Rules of the house that code review alone would not keep true."""

import subprocess
import sys


def test_core_never_imports_qt():
    code = (
        "import sys, pkgutil, importlib, visualsearch.core as c\n"
        "for m in pkgutil.walk_packages(c.__path__, 'visualsearch.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "import visualsearch.cli\n"
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'PyQt', 'shiboken'))]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
