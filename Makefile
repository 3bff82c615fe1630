# Two commands on a fresh machine: `make run` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
FACE_RECOGNITION := face_recognition==1.3.0

.PHONY: install run test lint format typecheck migrate flower bench fuzz clean-var help

help:
	@echo "make run      install, migrate, start API + worker (embedded servers unless DATABASE_URL/REDIS_URL)"
	@echo "make test     the whole test suite"
	@echo "make lint     ruff check, ruff format --check, mypy"
	@echo "make migrate  alembic upgrade head"
	@echo "make flower   Flower dashboard for the workers"
	@echo "make bench    benchmarks (prints figures)"
	@echo "make fuzz     schemathesis against /openapi.json as every role (FUZZ_EXAMPLES=60)"

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv
	$(UV) pip install -q -p $(PY) -e '.[embedded,faces,flower,dev]'
	# face_recognition declares the `dlib` sdist (a long compile); dlib-bin above provides it.
	$(UV) pip install -q -p $(PY) --no-deps $(FACE_RECOGNITION)
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m common.cli run

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: install
	$(VENV)/bin/mypy

migrate: install
	$(PY) -m common.cli migrate

flower: install
	$(PY) -m common.cli flower

bench: install
	$(PY) -m common.cli exec $(PY) bench/run_all.py

FUZZ_EXAMPLES ?= 60
fuzz: install
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest tests/fuzz $(PYTEST_ARGS)

clean-var:
	rm -rf var
