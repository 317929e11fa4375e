# `make test` and `make demo` set up .venv on first use (torch CPU build first, then the package).
PY      := .venv/bin/python
STAMP   := .venv/.installed
THREADS ?= 2
export OMP_NUM_THREADS ?= $(THREADS)

.PHONY: setup test demo report lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check src tests bench explorations train.py eval.py

demo: $(STAMP)
	$(PY) train.py --config-name exp/cpu_demo
	$(PY) -m interfere.report

report: $(STAMP)
	$(PY) -m interfere.report $(if $(RUN_ID),--run-id $(RUN_ID))

bench: $(STAMP)
	$(PY) bench/simulate.py

clean:
	rm -rf .venv .pytest_cache
