# TwoStep: `make run` starts the app with demo data; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
export FLASK_APP = app
# The lock tool (make lock); pinned so every engineer writes requirements.lock the same way.
UV_VERSION = 0.13.9
# requirements.lock pins every runtime, dev and bench dependency with its hashes, for any
# platform on Python 3.11 or newer.
LOCK_COMMAND = $(BIN)/uv pip compile pyproject.toml --extra dev --extra bench --universal \
	--python-version 3.11 --generate-hashes --quiet -o requirements.lock

.PHONY: run serve test lint format venv lock wheel e2e bench screenshots clean messages translations

run: $(VENV)/.installed ## set up, load the demo data and serve http://127.0.0.1:5000
	$(BIN)/flask db upgrade
	$(BIN)/flask seed-demo
	$(BIN)/flask run --host 127.0.0.1 --port 5000

serve: $(VENV)/.installed ## production-like: migrations, then gunicorn (README "Production" lists what it needs)
	$(BIN)/flask db upgrade
	$(BIN)/gunicorn -c deploy/gunicorn.conf.py

BENCH_ARGS ?= --users 1000 --users 100000 --seconds 8 --rounds 5 --database both
bench: $(VENV)/.installed ## the benchmark (bench/run.py) as README reports it: ~25 minutes
	$(BIN)/python bench/run.py $(BENCH_ARGS)

test: $(VENV)/.installed ## set up and run every test (TEST_DATABASE_URL=postgresql://... for PostgreSQL)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

e2e: $(VENV)/.installed ## only the browser tests (tests/e2e, Debian's chromium); -m "not e2e" skips them
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

screenshots: $(VENV)/.installed ## remake the README's docs/screenshots/*.png from the running app
	$(BIN)/python -m tests.e2e.screenshots

# Translations (translations/, Flask-Babel): after changing visible text, `make messages`
# brings the new strings into every catalogue; translate them in translations/*/LC_MESSAGES/
# messages.po, then `make translations` compiles the .mo files (committed, so a fresh clone and
# the wheel need no compile step; tests/test_translations.py fails while one is out of date).

messages: $(VENV)/.installed ## extract visible text into translations/messages.pot and update every .po
	$(BIN)/pybabel --quiet extract -F babel.cfg --no-location --sort-output -k _l -o translations/messages.pot .
	$(BIN)/pybabel --quiet update --no-fuzzy-matching --ignore-pot-creation-date -i translations/messages.pot -d translations

translations: $(VENV)/.installed ## compile translations/*/LC_MESSAGES/messages.po into .mo files
	$(BIN)/pybabel compile --statistics -d translations

lint: $(VENV)/.installed ## ruff, and the layers (import-linter contracts in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

venv: $(VENV)/.installed

lock: $(BIN)/uv ## after changing a dependency in pyproject.toml: rewrite requirements.lock
	$(LOCK_COMMAND)

wheel: $(BIN)/uv ## dist/twostep-*.whl and dist/requirements.txt (README "Production")
	rm -rf dist build
	$(BIN)/uv build --wheel --out-dir dist --quiet .
	rm -rf build twostep.egg-info
	$(BIN)/uv pip compile pyproject.toml --constraint requirements.lock --universal \
		--python-version 3.11 --generate-hashes --quiet -o dist/requirements.txt

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"

# Exactly the versions in requirements.lock (hash-checked), then the project itself, editable;
# `pip check` fails when the lock lacks something pyproject.toml asks for.
$(VENV)/.installed: pyproject.toml requirements.lock $(BIN)/uv
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check || { echo "The lock lacks what pyproject.toml asks for: make lock" >&2; exit 1; }
	touch $@

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache build dist twostep.egg-info
