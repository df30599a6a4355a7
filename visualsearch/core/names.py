"""Names and sizes as people read them: what a file name can hide made visible."""

from __future__ import annotations

import re

# C0 and C1 control characters and DEL (newlines, tabs, ANSI escape sequences) and the
# surrogate escapes Python uses for bytes of a name that are not valid UTF-8
_HIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\udc80-\udcff]")


def printable(name: str) -> str:
    """`name` safe to print: control characters and undecodable bytes become escapes
    (a newline as \\n, ESC as \\x1b, the byte 0xE9 of a Latin-1 name as \\xe9)."""

    def escape(m: re.Match) -> str:
        ch = m.group()
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            return f"\\x{code - 0xDC00:02x}"
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, f"\\x{code:02x}")

    return _HIDDEN.sub(escape, name)


def human_size(n: int) -> str:
    """'950 bytes', '269.6 KB', '3.2 GB' (powers of 1000, as file managers show them)."""
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} bytes"


def human_duration(seconds: float | None) -> str:
    """'45 s', '12 min', '3.4 h'; '—' for None."""
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
