"""The engine: everything here is free of Qt and usable from scripts and the CLI."""
