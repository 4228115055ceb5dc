# Two entry points for a fresh machine: `make run` (main job) and `make test` (test suite).
# Each creates the virtual environment if it is missing; `make test` adds the test, tf and ray extras. Every pip call goes through
# constraints.txt so no resolver can replace the CPU torch wheel with a CUDA build.
PYTHON ?= python3
VENV ?= .venv
PIP = $(VENV)/bin/pip install -c constraints.txt
ARGS ?=

.PHONY: run test venv clean

$(VENV)/.installed-base: setup.cfg constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-base
	$(PIP) -e ".[test,tf,ray]"
	touch $@

venv: $(VENV)/.installed-base

run: $(VENV)/.installed-base
	$(VENV)/bin/semcom run $(ARGS)

test: $(VENV)/.installed-test
	$(VENV)/bin/python -m pytest $(ARGS)

clean:
	rm -rf $(VENV) results
