# Two commands matter on a fresh clone: `make demo` and `make test` (see README.md).

PYTHON ?= python3
VENV   ?= .venv
# This machine has a local CPU wheel of exactly this version; the package itself only asks for a range.
TORCH_PIN ?= torch==2.13.0
# Every transitive dependency at the exact version CI tested (`make lock` writes it; see README.md).
LOCK ?= requirements.lock
# The oldest Optuna pyproject.toml admits: the strategy-state tests also run against it (a folder put
# first on PYTHONPATH by those tests), so the range's lower end is tested, not assumed.
OPTUNA_OLDEST ?= optuna==4.0.0
# The lock's own tool, pinned too, in a venv of its own.
LOCK_TOOLS ?= pip==26.3 pip-tools==7.7.0

PY    := $(VENV)/bin/python
SRNAS := $(VENV)/bin/srnas
STAMP := $(VENV)/.installed
PIP   := -m pip install --quiet --disable-pip-version-check
TOOLS := .venv-tools
LATEST := .venv-latest
export SRNAS_OPTUNA_OLDEST := $(CURDIR)/$(VENV)/optuna-oldest

.PHONY: all venv demo test test-fast test-latest lock lock-upgrade lint clean bench-quick

all: test

# The venv is exactly the lock: rebuilt from nothing whenever the lock changes, so a package the lock
# dropped cannot linger. The package itself goes in editable, without resolving anything again.
$(VENV)/.locked: $(LOCK)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) $(PIP) -r $(LOCK)
	$(PY) $(PIP) --no-deps --target $(VENV)/optuna-oldest "$(OPTUNA_OLDEST)"
	touch $@

$(STAMP): $(VENV)/.locked pyproject.toml
	$(PY) $(PIP) --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $@

venv: $(STAMP)

$(TOOLS)/bin/pip-compile:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python $(PIP) $(LOCK_TOOLS)

# Regenerate requirements.lock from pyproject.toml (its extras test, postgres, lint) and the torch pin:
# `make lock` keeps every pin that still fits, `make lock-upgrade` takes the newest releases allowed.
# Either is a deliberate change: run `make test` on the new lock before committing it.
lock lock-upgrade: $(TOOLS)/bin/pip-compile
	echo "$(TORCH_PIN)" > $(TOOLS)/setup-pins.txt
	CUSTOM_COMPILE_COMMAND="make $@" $(TOOLS)/bin/pip-compile --quiet $(if $(filter lock-upgrade,$@),--upgrade) \
	    --extra test --extra postgres --extra lint --constraint $(TOOLS)/setup-pins.txt --strip-extras --allow-unsafe \
	    --no-emit-index-url --no-emit-find-links --output-file $(LOCK) pyproject.toml

# The suite on the newest releases pyproject.toml's ranges admit (torch held at the pin), in a venv of
# its own: how a drift like a new Optuna major is caught before users meet it. Prints what differs
# from the lock first.
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	echo "$(TORCH_PIN)" > $(LATEST)/setup-pins.txt
	$(LATEST)/bin/python $(PIP) --upgrade --upgrade-strategy eager -c $(LATEST)/setup-pins.txt -e ".[test,postgres,lint]"
	$(LATEST)/bin/python $(PIP) --no-deps --target $(LATEST)/optuna-oldest "$(OPTUNA_OLDEST)"
	$(LATEST)/bin/python .ci/lock_drift.py $(LOCK)
	SRNAS_OPTUNA_OLDEST=$(CURDIR)/$(LATEST)/optuna-oldest $(LATEST)/bin/python -m pytest

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

# The unit tier only (tests/unit): the inner loop, under two minutes on 2 CPU cores. `make test` runs it
# and the end-to-end runs of tests/integration.
test-fast: $(STAMP)
	$(PY) -m pytest tests/unit

# Every benchmark script in its --quick mode (minutes on 2 CPU cores); tables in benchmarks/README.md.
bench-quick: $(STAMP)
	$(PY) benchmarks/cost_model.py --quick
	$(PY) benchmarks/supernet_step.py --quick
	$(PY) benchmarks/fidelity.py --quick
	$(PY) benchmarks/throughput.py --quick
	$(PY) benchmarks/search_quality.py --quick
	$(PY) benchmarks/search_overhead.py --quick

lint: $(STAMP)
	$(PY) -m flake8 srnas_nni tests benchmarks

clean:
	rm -rf $(VENV) $(TOOLS) $(LATEST) runs build dist *.egg-info .pytest_cache
