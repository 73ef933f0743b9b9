# Two commands matter on a fresh clone: `make demo` and `make test` (see README.md).

PYTHON ?= python3
VENV   ?= .venv
# This machine has a local CPU wheel of exactly this version; the package itself only asks for a range.
TORCH_PIN ?= torch==2.13.0

PY    := $(VENV)/bin/python
SRNAS := $(VENV)/bin/srnas
STAMP := $(VENV)/.installed

.PHONY: all venv demo test lint clean bench-quick

all: test

$(STAMP): pyproject.toml setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "$(TORCH_PIN)"
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

# A short real search on the photos that ship with scikit-image/scikit-learn: the HNAS proxy space
# searched by the hierarchical RL controller (examples/hnas.yaml), its Pareto front printed and
# plotted. Run again, it continues (or just reprints) runs/demo instead of starting over.
DEMO_DIR ?= runs/demo

demo: $(STAMP)
	@if [ -f $(DEMO_DIR)/run.json ]; then $(SRNAS) search --resume $(DEMO_DIR); \
	else $(SRNAS) search examples/hnas.yaml --output-dir $(DEMO_DIR); fi
	$(SRNAS) plot $(DEMO_DIR)

test: $(STAMP)
	$(PY) -m pytest

# Every benchmark script in its --quick mode (minutes on 2 CPU cores); tables in benchmarks/README.md.
bench-quick: $(STAMP)
	$(PY) benchmarks/cost_model.py --quick
	$(PY) benchmarks/supernet_step.py --quick
	$(PY) benchmarks/fidelity.py --quick
	$(PY) benchmarks/throughput.py --quick
	$(PY) benchmarks/search_quality.py --quick
	$(PY) benchmarks/search_overhead.py --quick

lint: $(STAMP)
	$(PY) -m pip install --quiet flake8 && $(PY) -m flake8 srnas_nni tests benchmarks

clean:
	rm -rf $(VENV) runs build dist *.egg-info .pytest_cache
