# `make test` and `make demo` create .venv and install lrgym into it on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,optimizers]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check lrgym tests benchmarks
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/lrgym list
	$(BIN)/lrgym episode mnist1d-mlp --seed 0

lint: $(STAMP)
	$(BIN)/ruff check lrgym tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
