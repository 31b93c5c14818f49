# facerecon: `make demo` and `make test` work on a fresh clone (Python 3.11, CPU only).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
SHARED_ICT := $(abspath ../shared/assets/ict-facekit/ICT-FaceKit-FaceXModel.tar.xz)
# Use the shared copy of ICT-FaceKit for tests and the demo when it is there and the
# user has not pointed FACERECON_ICT elsewhere.
ifeq ($(origin FACERECON_ICT), undefined)
ifneq ($(wildcard $(SHARED_ICT)),)
export FACERECON_ICT := $(SHARED_ICT)
endif
endif
export MPLBACKEND := Agg

.PHONY: install assets demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# Exactly 2.13.0 (a CPU build); a range admitting newer releases would pull several GB of CUDA.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

assets: $(STAMP)
	$(VENV)/bin/facerecon assets build

demo: assets
	bash scripts/demo.sh

test: assets
	$(PY) -m pytest -q tests

# accuracy (synthetic, real scans, TrueDepth sweep), the fitting baseline, speed per stage and
# peak memory for fast and paper -> docs/benchmarks.md (about 15 minutes on 2 cores)
bench: assets
	$(PY) benchmarks/evaluate.py --pose fast=src/facerecon/weights/pose_fast.safetensors --shape fast=src/facerecon/weights/shape_fast.safetensors

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info out
