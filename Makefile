# Two entry points for a fresh machine: `make run` (main job) and `make test` (test suite).
# Each creates the virtual environment if it is missing and installs it from a hashed lock file
# (requirements/run.lock: the main job; requirements/test.lock: every extra + the test tools), so the same
# commands install the same files next year. Every pip call also goes through constraints.txt so no resolver
# can replace the CPU torch wheel with a CUDA build. `make lock` regenerates both locks from setup.cfg.
PYTHON ?= python3
VENV ?= .venv
PIP = $(VENV)/bin/pip install -c constraints.txt
# the package itself: its dependencies come from the lock; setuptools (build backend) is in the lock too
PIP_SELF = $(PIP) --no-deps --no-build-isolation -e .
LOCK_RUN = requirements/run.lock
LOCK_TEST = requirements/test.lock
PIP_COMPILE = $(VENV)/bin/pip-compile setup.cfg -c constraints.txt --generate-hashes --allow-unsafe \
	--strip-extras --no-emit-index-url --no-emit-find-links --annotation-style line --quiet
ARGS ?=

.PHONY: run test venv lock clean docs

$(VENV)/.installed-base: setup.cfg constraints.txt $(LOCK_RUN)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --require-hashes -r $(LOCK_RUN)
	$(PIP_SELF)
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-base $(LOCK_TEST)
	$(PIP) --require-hashes -r $(LOCK_TEST)
	$(PIP_SELF)
	touch $@

venv: $(VENV)/.installed-base

run: $(VENV)/.installed-base
	$(VENV)/bin/semcom run $(ARGS)

test: $(VENV)/.installed-test
	$(VENV)/bin/python -m pytest $(ARGS)

# the API reference from the docstrings (docs/api; Sphinx is in the test extra): docs/api/_build/html/index.html
docs: $(VENV)/.installed-test
	$(VENV)/bin/python -m sphinx -b html -W --keep-going docs/api docs/api/_build/html

# test.lock first (every extra), then run.lock constrained by it, so the two agree on every shared version
lock:
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	test -x $(VENV)/bin/pip-compile || $(PIP) pip-tools
	$(PIP_COMPILE) --extra all -o $(LOCK_TEST)
	$(PIP_COMPILE) -c $(LOCK_TEST) -o $(LOCK_RUN)

clean:
	rm -rf $(VENV) results docs/api/_build docs/api/_modules
