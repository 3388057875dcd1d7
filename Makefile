# Quick start: `make demo` and `make test` each do all their own set-up:
# a venv for the Python found (3.12, then 3.11; or make PYTHON=...), the
# pinned requirements, and (as root, with apt) the Debian packages for the data set.
PYTHON ?=
# "PATH VERSION" of the chosen Python; empty if none is supported (the venv rule then says why).
FOUND := $(shell bash scripts/find-python.sh '$(PYTHON)' 2>/dev/null)
PYVER := $(or $(word 2,$(FOUND)),none)
# One venv per Python version, so switching never mixes them.
VENV := .venv-$(PYVER)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PIP := $(VENV)/bin/pip install -q --disable-pip-version-check
# Debian package:path that shows it is installed. g++ builds d2lnets' fused
# CPU kernels for LeNet (d2lnets/perf/kernels_build.py); without it LeNet trains 2-3x slower.
SYSTEM_DEPS := graphviz:/usr/bin/dot g++:/usr/bin/g++
# The docs build fetches onnxruntime-web for the browser page with npm (docs/browser/README.md).
DOCS_DEPS := npm:/usr/bin/npm
# What only the tests need: network namespaces as hosts (iproute2), a real
# sshd to launch over (tests/test_launch.py), Debian's Chromium to drive the
# browser page headless (tests/test_browser.py), and what the docs build needs.
TEST_DEPS := iproute2:/usr/sbin/ip openssh-server:/usr/sbin/sshd chromium:/usr/bin/chromium $(DOCS_DEPS)
# Fashion-MNIST: needed only when d2lnets' data locator finds no copy of it
# (--data-dir, $$D2LNETS_DATA, $$MXNET_HOME/datasets, Debian's folder).
DATA_DEPS := dataset-fashion-mnist:/usr/share/datasets/fashion-mnist

.PHONY: all setup system demo test docs notebooks constraints clean

all: demo

$(STAMP): requirements.txt requirements-dev.txt constraints.txt setup.py
	@bash scripts/find-python.sh '$(PYTHON)' >/dev/null
	$(word 1,$(FOUND)) -m venv $(VENV)
	$(PIP) -r requirements-dev.txt -c constraints.txt
	$(PIP) --no-deps -e .
	@touch $(STAMP)

# .venv: the venv of the last make, for the commands the docs give (an old
# .venv that is a folder of its own is left alone).
setup: $(STAMP) system
	@if [ -L .venv ] || [ ! -e .venv ]; then ln -sfn $(VENV) .venv; fi

system: $(STAMP)
	@bash scripts/system-deps.sh $(SYSTEM_DEPS) \
	  $$($(PY) -c 'import d2lnets.data as d; print("" if d.locate("fashion-mnist") else "$(DATA_DEPS)")')
	@$(PY) -m d2lnets.perf.kernels_build || true

# LeNet with the lecture's recipe (batch 256, lr 0.9, 10 epochs) on the real
# Fashion-MNIST; the last line names the run directory and its curves.png.
demo: setup
	$(VENV)/bin/d2lnets train lenet

test: setup
	@bash scripts/system-deps.sh $(TEST_DEPS)
	$(PY) -m pytest

# The documentation site, in strict mode: a warning (broken link, missing page) is an error.
docs: setup
	@bash scripts/system-deps.sh $(DOCS_DEPS)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# Run every notebook top to bottom for real (the committed outputs), in place.
notebooks: setup
	cd notebooks && for nb in *.ipynb; do ../$(VENV)/bin/jupyter execute --inplace --timeout=-1 "$$nb" || exit 1; done

# constraints.txt anew: the newest versions requirements*.txt allow, resolved
# in a fresh venv for each supported Python found. Then run make test on each
# (make test PYTHON=...) and commit it only if both pass.
constraints:
	bash scripts/find-python.sh '$(PYTHON)' >/dev/null
	$(word 1,$(FOUND)) scripts/constraints.py

clean:
	rm -rf .venv .venv-* .pytest_cache build *.egg-info site docs/generated docs/browser/node_modules
