# `make test`, `make test-fast` and `make demo` create .venv and install lrgym into it on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-fast demo lint clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,optimizers,ray]'
	touch $(STAMP)

# The full suite: what CI runs (.ci/run).
test: $(STAMP)
	$(BIN)/ruff check lrgym tests benchmarks
	$(BIN)/python -m pytest

# The inner loop: everything but the tests marked slow (PPO training, sweeps, tunings,
# subprocess CLI runs, the Ray backend; pyproject.toml lists the markers).
test-fast: $(STAMP)
	$(BIN)/ruff check lrgym tests benchmarks
	$(BIN)/python -m pytest -m "not slow"

# Train a controller on the offline default task (a few minutes on 2 CPU cores), then
# compare it with two baselines on 10 paired seeds that training never saw.
demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/lrgym train mnist1d-mlp --timesteps 3000 --out runs/demo/controller
	$(BIN)/lrgym evaluate mnist1d-mlp --agents constant,cosine,ppo:runs/demo/controller --seeds 10 --out runs/demo/evaluate

lint: $(STAMP)
	$(BIN)/ruff check lrgym tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
