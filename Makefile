# The two commands in the README: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench screenshots bundle clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# pip, not uv/poetry: pip finds the torch wheels that lie on the build machines' disk
	# the cluster extra (Ray, ~12 s to install) so that the --ray tests run too
	$(BIN)/pip install -e '.[dev,cluster]'
	touch $(STAMP)

# the window; with no ARGS on the sample collection (ARGS=/some/folder, or a CLI command)
run: $(STAMP)
	$(BIN)/visualsearch $(if $(ARGS),$(ARGS),--sample)

test: $(STAMP)
	$(BIN)/ruff check visualsearch tests bench scripts
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check visualsearch tests bench scripts
	$(BIN)/ruff format --check visualsearch tests bench scripts

bench: $(STAMP)
	$(BIN)/python bench/search.py
	$(BIN)/python bench/index.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/gui.py
	cd bench && QT_QPA_PLATFORM=offscreen ../$(BIN)/python map.py
	cd bench && ../$(BIN)/python duplicates.py

# the README's pictures: the real window on a virtual X screen
screenshots: $(STAMP)
	bash scripts/install-qt-libs.sh --xcb
	xvfb-run -a -s "-screen 0 1400x900x24" $(BIN)/python scripts/screenshots.py docs/screenshots

# a one-folder desktop bundle (PyInstaller), then its smoke test; slow, not part of CI
bundle: $(STAMP)
	$(BIN)/pip install "pyinstaller>=6.10"
	$(BIN)/pyinstaller --noconfirm build.spec
	QT_QPA_PLATFORM=offscreen dist/visualsearch/visualsearch gui --smoke-test

clean:
	rm -rf $(VENV) build dist *.egg-info
