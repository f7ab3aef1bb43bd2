# Two commands for a newcomer: `make run` and `make test`. Each creates .venv itself and is quick when
# nothing changed (stamps track pyproject.toml).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501
# OpenMP threads sleep instead of spinning when idle: concurrent torch work (a training race beside a page, a
# test beside a server) otherwise slows down many times over on 2 cores.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: run serve test test-fast bench lint chromium nginx clean mutants notebooks

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel

$(VENV)/.installed-app: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

# The test extra, then Quantus (the reference the trust scores are checked against) without its requirements: it
# asks for opencv-python, which writes the same cv2/ as grad-cam's opencv-python-headless (and needs libGL); the
# rest of what it imports is already here. resnet_core never imports it; tests/core/test_cam_trust.py does.
$(VENV)/.installed-test: pyproject.toml setup.py | $(BIN)/python
	@start=$$(date +%s); $(BIN)/python -m pip install -q -e '.[test]' && \
	echo "venv install (test extra): $$(( $$(date +%s) - start )) s"
	$(BIN)/python -m pip install -q --no-deps 'quantus==0.6.0' 'cachetools>=5'
	touch $@ $(VENV)/.installed-app

# Loopback only (app/.streamlit/config.toml); `make run ADDRESS=0.0.0.0` serves a class on the local network.
run: $(VENV)/.installed-app
	$(BIN)/streamlit run app/main.py --server.port $(PORT)$(if $(ADDRESS), --server.address $(ADDRESS))

# Browser tests need Debian's chromium; install it where we may (root, e.g. CI), else they skip with a reason.
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium for the browser tests"; start=$$(date +%s); \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		echo "chromium install: $$(( $$(date +%s) - start )) s"; \
	else echo "chromium not found and not root: browser tests will be skipped (sudo apt-get install chromium)"; fi

# Debian's nginx for `make serve` and the proxy test, installed as chromium is: by apt-get when root (no service
# is started: policy-rc.d refuses it during the install, and the package's own site on port 80 is never run;
# serve runs nginx under a private prefix with its own config), else one sentence saying how.
nginx:
	@if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's nginx for make serve and the proxy test"; start=$$(date +%s); \
		own_policy=0; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
			chmod +x /usr/sbin/policy-rc.d; own_policy=1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; rc=$$?; \
		if [ $$own_policy = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi; \
		echo "nginx install: $$(( $$(date +%s) - start )) s"; exit $$rc; \
	else echo "nginx not found and not root: install Debian's nginx (sudo apt-get install nginx); the proxy test is skipped"; fi

# N replicas of the app on loopback ports behind nginx on PORT (ADDRESS=0.0.0.0 serves a local network):
# `make serve REPLICAS=4 ADDRESS=0.0.0.0`. See README "Serving a class".
REPLICAS ?= 2
serve: $(VENV)/.installed-app nginx
	$(BIN)/python -m resnet_explorer.serve --replicas $(REPLICAS) --port $(PORT)$(if $(ADDRESS), --address $(ADDRESS))

# Random order (pytest-randomly): the seed is printed as "Using --randomly-seed=N"; rerun a failing order with
# `make test PYTEST_ARGS="-p randomly --randomly-seed=N"`. The 15 slowest tests are listed at the end (suite time).
# Two workers (pytest-xdist): the browser tests on one (their server and Chromium), the AppTests on the other
# (Streamlit's caches per process, as on one server), the library's tests on both (the groups are folders:
# tests/conftest.py's scheduler), each worker's torch on one core; TEST_WORKERS=0 runs in one process. Most tests wait on a server, a browser or Python, so two workers use two cores where one used ~1.2.
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS) --dist loadgroup)
test: $(VENV)/.installed-test chromium nginx
	@start=$$(date +%s); $(BIN)/python -m pytest -q -p randomly $(XDIST) --durations=15 $(PYTEST_ARGS); rc=$$?; \
	echo "pytest wall time: $$(( $$(date +%s) - start )) s (the venv and chromium above not counted)"; exit $$rc

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q $(XDIST) -m "not browser and not slow" $(PYTEST_ARGS)

$(VENV)/.installed-bench: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $@ $(VENV)/.installed-test $(VENV)/.installed-app

bench: $(VENV)/.installed-bench
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# Curated bugs in the scientific core, each run against the tests that should catch it, in a private copy of
# the repository (the working tree is never touched). Not part of `make test`: it takes several minutes.
mutants: $(VENV)/.installed-test
	$(BIN)/python tools/mutants.py $(MUTANTS_ARGS)

# The embedded demo models (resnet_core/weights/demo_models/): ResNet-20 and Plain-20 trained on Shapes by the project's
# own trainer with a fixed seed, on the CPU with 2 threads (15-20 minutes on a busy 2-core machine). Commit what it writes.
.PHONY: demo-models
demo-models: $(VENV)/.installed-app
	$(BIN)/python tools/make_demo_models.py $(DEMO_ARGS)

# Every page's notebook and the tour (notebooks/*.ipynb), regenerated from resnet_core.notebooks and executed at
# full size so that they are committed with their outputs (Plotly JSON, and a PNG of each figure drawn offline by
# kaleido with Chromium for viewers that run no JavaScript); prints each one's execution time. Commit what it writes.
notebooks: $(VENV)/.installed-test chromium
	$(BIN)/python notebooks/make_notebooks.py $(NOTEBOOKS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check resnet_core resnet_explorer app pages tests benchmarks notebooks tools setup.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache artifacts
