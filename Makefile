# Quick start: `make demo` and `make test` each do all their own set-up:
# a .venv with Python 3.11, the requirements, and (as root, with apt) the
# Debian packages for the data set.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Debian package:path that shows it is installed
SYSTEM_DEPS := dataset-fashion-mnist:/usr/share/datasets/fashion-mnist

.PHONY: all setup system demo test clean

all: demo

$(STAMP): requirements.txt setup.py
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
	  echo "make: $(PYTHON) not found. d2lnets needs Python 3.11 (MXNet 1.9.1 imports only with numpy<1.24,"; \
	  echo "      which has no wheels for Python 3.12+). Install Python 3.11, or run make PYTHON=/path/to/python3.11"; \
	  exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
	  echo "make: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'), d2lnets needs Python 3.11."; \
	  echo "      Install Python 3.11, or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP) system

# Fashion-MNIST counts as there when d2lnets' locator finds any copy of it
# ($$D2LNETS_DATA, $$MXNET_HOME/datasets, Debian's folder); else apt installs it.
system: $(STAMP)
	@$(PY) -c 'import sys, d2lnets.data as d; sys.exit(d.locate("fashion-mnist") is None)' \
	  || bash scripts/system-deps.sh $(SYSTEM_DEPS)

# LeNet with the lecture's recipe (batch 256, lr 0.9, 10 epochs) on the real
# Fashion-MNIST; the last line names the run directory and its curves.png.
demo: setup
	$(VENV)/bin/d2lnets train lenet

test: setup
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
