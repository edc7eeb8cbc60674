# TwoStep: `make run` starts the app with demo data; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
export FLASK_APP = app

.PHONY: run serve test lint format venv e2e bench screenshots clean

run: $(VENV)/.installed ## set up, load the demo data and serve http://127.0.0.1:5000
	$(BIN)/flask db upgrade
	$(BIN)/flask seed-demo
	$(BIN)/flask run --host 127.0.0.1 --port 5000

serve: $(VENV)/.installed ## production-like: migrations, then gunicorn (README "Production" lists what it needs)
	$(BIN)/flask db upgrade
	$(BIN)/gunicorn -c deploy/gunicorn.conf.py

BENCH_ARGS ?= --users 1000 --users 100000 --seconds 8 --rounds 5 --database both
bench: $(VENV)/.installed ## the benchmark (bench/run.py) as README reports it: ~25 minutes
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/run.py $(BENCH_ARGS)

test: $(VENV)/.installed ## set up and run every test (TEST_DATABASE_URL=postgresql://... for PostgreSQL)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

e2e: $(VENV)/.installed ## only the browser tests (tests/e2e, Debian's chromium); -m "not e2e" skips them
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

screenshots: $(VENV)/.installed ## remake the README's docs/screenshots/*.png from the running app
	$(BIN)/python -m tests.e2e.screenshots

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
