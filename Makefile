# Quick start: `make demo` and `make test` each do all their own set-up:
# a .venv with Python 3.11, the requirements, and (as root, with apt) the
# Debian packages for the data set.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Debian package:path that shows it is installed. g++ builds d2lnets' fused
# CPU kernels for LeNet (d2lnets/perf/fused.py); without it LeNet trains 2-3x slower.
SYSTEM_DEPS := graphviz:/usr/bin/dot g++:/usr/bin/g++
# What only the tests need: network namespaces as hosts (iproute2) and a real
# sshd to launch over (tests/test_launch.py).
TEST_DEPS := iproute2:/usr/sbin/ip openssh-server:/usr/sbin/sshd
# Fashion-MNIST: needed only when d2lnets' data locator finds no copy of it
# (--data-dir, $$D2LNETS_DATA, $$MXNET_HOME/datasets, Debian's folder).
DATA_DEPS := dataset-fashion-mnist:/usr/share/datasets/fashion-mnist

.PHONY: all setup system demo test docs notebooks clean

all: demo

$(STAMP): requirements.txt requirements-dev.txt setup.py
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
	  echo "make: $(PYTHON) not found. d2lnets needs Python 3.11 (MXNet 1.9.1 imports only with numpy<1.24,"; \
	  echo "      which has no wheels for Python 3.12+). Install Python 3.11, or run make PYTHON=/path/to/python3.11"; \
	  exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
	  echo "make: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'), d2lnets needs Python 3.11."; \
	  echo "      Install Python 3.11, or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP) system

system: $(STAMP)
	@bash scripts/system-deps.sh $(SYSTEM_DEPS) \
	  $$($(PY) -c 'import d2lnets.data as d; print("" if d.locate("fashion-mnist") else "$(DATA_DEPS)")')
	@$(PY) -m d2lnets.perf.fused || true

# LeNet with the lecture's recipe (batch 256, lr 0.9, 10 epochs) on the real
# Fashion-MNIST; the last line names the run directory and its curves.png.
demo: setup
	$(VENV)/bin/d2lnets train lenet

test: setup
	@bash scripts/system-deps.sh $(TEST_DEPS)
	$(PY) -m pytest

# The documentation site, in strict mode: a warning (broken link, missing page) is an error.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# Run every notebook top to bottom for real (the committed outputs), in place.
notebooks: setup
	cd notebooks && for nb in *.ipynb; do ../$(VENV)/bin/jupyter execute --inplace --timeout=-1 "$$nb" || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info site docs/generated
