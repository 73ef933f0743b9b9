# Two commands matter on a fresh clone: `make demo` and `make test` (see README.md).

PYTHON ?= python3
VENV   ?= .venv
# This machine has a local CPU wheel of exactly this version; the package itself only asks for a range.
TORCH_PIN ?= torch==2.13.0

PY    := $(VENV)/bin/python
SRNAS := $(VENV)/bin/srnas
STAMP := $(VENV)/.installed

.PHONY: all venv demo test lint clean

all: test

$(STAMP): pyproject.toml setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "$(TORCH_PIN)"
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

# A short real job on the images that ship with scikit-image/scikit-learn: every baseline trained
# with the same small budget, then evaluated and costed side by side.
demo: $(STAMP)
	$(SRNAS) compare --scale 2 --train-steps 200 --batch-size 8 --patch-size 48 --lr 1e-3 --output-dir runs/demo

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m pip install --quiet flake8 && $(PY) -m flake8 srnas_nni tests benchmarks

clean:
	rm -rf $(VENV) runs build dist *.egg-info .pytest_cache
