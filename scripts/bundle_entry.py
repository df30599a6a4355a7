"""Entry point of the PyInstaller bundle (build.spec): the same as `visualsearch`."""

import sys

from visualsearch.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
