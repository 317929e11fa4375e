# `make test` and `make demo` set up .venv on first use (torch==2.13.0 first, then the package).
PY      := .venv/bin/python
STAMP   := .venv/.installed
THREADS ?= 2
export OMP_NUM_THREADS ?= $(THREADS)

.PHONY: setup test demo reference deep report controls explore lint bench docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Two workers, one test file each at a time (a file's shared fixtures are built once); bench/README.md has the timings.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(PY) -m ruff check src tests bench explorations notebooks train.py eval.py

demo: $(STAMP)
	$(PY) train.py --config-name exp/cpu_demo
	$(PY) -m interfere report

# The reference demo model's report: the weights the docs describe, on any CPU, no training.
reference: $(STAMP)
	$(PY) -m interfere report --ckpt ref:demo

# Every table in the docs that a command writes (python -m interfere docs; --check compares).
docs: $(STAMP)
	$(PY) -m interfere docs

# Eight layers on two cores (issue 35): train seed 0 of exp/cpu_deep, write its report, and H4 by layer against its
# controls (random init; the late half never trained).
deep: $(STAMP)
	$(PY) train.py --config-name exp/cpu_deep
	$(PY) -m interfere report --no-controls
	$(PY) -m interfere depth

report: $(STAMP)
	$(PY) -m interfere report $(if $(RUN_ID),--run-id $(RUN_ID))

explore: $(STAMP)
	$(PY) -m interfere explore $(if $(RUN_ID),--run-id $(RUN_ID))

# Negative controls for the report: a random-init checkpoint (train.steps=0) and a rule-blind model
# (the demo recipe on Conway's Life only), each reported alone, then the demo run (or RUN_ID) with both.
controls: $(STAMP)
	test -f checkpoints/control_random_init/latest.pt || $(PY) train.py --config-name exp/cpu_demo \
		train.steps=0 train.run_id=control_random_init train.final_eval=false
	test -f checkpoints/control_rule_blind/latest.pt || $(PY) train.py --config-name exp/cpu_demo \
		'data.rules=[B3/S23]' train.run_id=control_rule_blind
	$(PY) -m interfere report --run-id control_random_init --no-controls
	$(PY) -m interfere report --run-id control_rule_blind --no-controls
	$(PY) -m interfere report $(if $(RUN_ID),--run-id $(RUN_ID))

bench: $(STAMP)
	$(PY) bench/simulate.py

clean:
	rm -rf .venv .pytest_cache
