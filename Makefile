# Two commands on a fresh machine: `make run` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
FACE_RECOGNITION := face_recognition==1.3.0
# `make faces-blas`: dlib compiled against OpenBLAS in place of the dlib-bin wheel (see below).
# The wheel is built once into $(DLIB_WHEELS); later installs (and `make install`) reuse it.
DLIB_SOURCE := dlib==20.0.1
DLIB_WHEELS := $(VENV)/dlib-blas
DLIB_BLAS_INSTALL = $(UV) pip install -q -p $(PY) --reinstall-package dlib $(DLIB_WHEELS)/dlib-*.whl

.PHONY: install run test lint format typecheck migrate flower bench fuzz faces-blas openapi clean-var help

help:
	@echo "make run      install, migrate, start API + worker (embedded servers unless DATABASE_URL/REDIS_URL)"
	@echo "make test     the whole test suite"
	@echo "make lint     ruff check, ruff format --check, mypy"
	@echo "make migrate  alembic upgrade head"
	@echo "make flower   Flower dashboard for the workers"
	@echo "make bench    benchmarks (prints figures)"
	@echo "make fuzz     schemathesis against /openapi.json as every role (FUZZ_EXAMPLES=60)"
	@echo "make faces-blas  dlib built against OpenBLAS for a biometrics worker (~15 min, once)"
	@echo "make openapi  write the API's schema to openapi.json (for client generators)"

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv
	$(UV) pip install -q -p $(PY) -e '.[embedded,faces,flower,dev]'
	# face_recognition declares the `dlib` sdist (a long compile); dlib-bin above provides it.
	$(UV) pip install -q -p $(PY) --no-deps $(FACE_RECOGNITION)
	# After `make faces-blas`, keep its OpenBLAS build of dlib rather than dlib-bin.
	if ls $(DLIB_WHEELS)/dlib-*.whl >/dev/null 2>&1; then \
		$(UV) pip uninstall -q -p $(PY) dlib-bin && $(DLIB_BLAS_INSTALL); fi
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

# dlib-bin (the default: a wheel, no compiler) runs the face encoder's network without BLAS,
# ~140 ms a face here; compiled against OpenBLAS it takes ~35 ms, while its HOG detector gets
# ~2x slower. Needs g++ and libopenblas-dev (Debian); the first build takes ~15 minutes on 2
# cores, later installs reuse the wheel. Dockerfile.worker builds the same.
faces-blas: install
	ls $(DLIB_WHEELS)/dlib-*.whl >/dev/null 2>&1 || DLIB_NO_GUI_SUPPORT=ON \
		CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip wheel -q --no-deps --no-binary dlib \
		-w $(DLIB_WHEELS) $(DLIB_SOURCE)
	$(UV) pip uninstall -q -p $(PY) dlib-bin
	$(DLIB_BLAS_INSTALL)
	$(PY) -c 'import dlib, sys; sys.exit(0 if dlib.DLIB_USE_BLAS else "dlib was built without BLAS: is libopenblas-dev installed?")'

bench: install
	$(PY) -m common.cli exec $(PY) bench/run_all.py

FUZZ_EXAMPLES ?= 60
fuzz: install
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest tests/fuzz $(PYTEST_ARGS)

# The schema client generators read, without starting a server (README: Clients).
openapi: install
	$(PY) -m api.openapi openapi.json

clean-var:
	rm -rf var
