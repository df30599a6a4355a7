"""The desktop window (PySide6). Widgets display and forward intent; the work is in core."""
