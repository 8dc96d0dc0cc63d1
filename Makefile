# The two commands: `make run` (set up everything, serve the app) and `make test` (every test).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= -n 2
FRONTEND_SOURCES := $(shell find frontend/src -type f 2>/dev/null) frontend/package.json frontend/vite.config.js

.PHONY: run test test-clock lint format frontend messages clean-db help

help:
	@echo "make run    set up (venv, deps, canvas build, embedded PostgreSQL and Redis, migrations, demo data) and serve"
	@echo "make test   run every test (pytest on PostgreSQL, Vitest for the canvas)"
	@echo "make test-clock CLOCK=\"2028-02-29 23:59:00\"   every test with the machine's clock moved (UTC, or add a zone)"
	@echo "make lint   ruff check and format check"

run: $(VENV)/.installed frontend/dist/.vite/manifest.json
	$(PY) -m cdp.quickstart

test: $(VENV)/.installed frontend/dist/.vite/manifest.json
	cd frontend && npm test --silent
	database_url="$$($(PY) -m cdp.localdb url)" && DATABASE_URL="$$database_url" $(PY) -m pytest $(PYTEST_ARGS)

# `make test` with the clock of every process moved (Python, Node, Chromium, a PostgreSQL of its own),
# e.g. CLOCK="2027-01-31 23:59:00 Asia/Shanghai" (libfaketime, from requirements-dev.txt).
test-clock: $(VENV)/.installed frontend/dist/.vite/manifest.json
	@test -n "$(CLOCK)" || { echo 'Set CLOCK, e.g. make test-clock CLOCK="2028-02-29 23:59:00"'; exit 1; }
	$(PY) -m tests.clock "$(CLOCK)" -- $(MAKE) --no-print-directory test

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

frontend: frontend/dist/.vite/manifest.json

# Rebuilt only when a requirements file changes.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed (set PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

frontend/node_modules/.package-lock.json: frontend/package-lock.json
	@node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=19)?0:1)' \
		|| { echo "Node.js 20.19 or newer is needed for the canvas build (found $$(node --version))"; exit 1; }
	cd frontend && npm ci --no-audit --no-fund

frontend/dist/.vite/manifest.json: frontend/node_modules/.package-lock.json $(FRONTEND_SOURCES)
	cd frontend && npm run build --silent

# Regenerates the translation catalogues (needs GNU gettext); the compiled .mo files are committed.
messages: $(VENV)/.installed
	$(PY) manage.py makemessages --locale zh_Hans --ignore '.venv/*' --ignore 'frontend/*' --no-obsolete
	$(PY) manage.py compilemessages --locale zh_Hans --ignore '.venv/*' --ignore 'frontend/*'

# The database and the queued tasks that refer to it go together.
clean-db:
	rm -rf var/pgdata var/redis
