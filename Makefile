# The two commands in the README: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# pip, not uv/poetry: pip finds the torch wheels that lie on the build machines' disk
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/visualsearch $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check visualsearch tests bench
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check visualsearch tests bench
	$(BIN)/ruff format --check visualsearch tests bench

bench: $(STAMP)
	$(BIN)/python bench/search.py
	$(BIN)/python bench/index.py

clean:
	rm -rf $(VENV) build dist *.egg-info
