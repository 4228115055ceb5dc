# Two entry points for a fresh machine: `make run` (main job) and `make test` (test suite).
# Each creates the virtual environment if it is missing and installs it from a hashed lock file
# (requirements/run.lock: the main job; requirements/test.lock: every extra + the test tools;
# requirements/docs.lock: the main job + the docs extra, for `make docs`), so the same commands install the
# same files next year. Every pip call also goes through constraints.txt so no resolver can replace the CPU
# torch wheel with a CUDA build. `make lock` regenerates the locks from setup.cfg.
PYTHON ?= python3
VENV ?= .venv
PIP = $(VENV)/bin/pip install -c constraints.txt
# the package itself: its dependencies come from the lock; setuptools (build backend) is in the lock too
PIP_SELF = $(PIP) --no-deps --no-build-isolation -e .
LOCK_RUN = requirements/run.lock
LOCK_TEST = requirements/test.lock
LOCK_DOCS = requirements/docs.lock
# where `make docs` writes the site (DOCS_OUT/html) and its staged sources (DOCS_OUT/src); never inside docs/
DOCS_OUT ?= build/docs
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

$(VENV)/.installed-docs: $(VENV)/.installed-base $(LOCK_DOCS)
	$(PIP) --require-hashes -r $(LOCK_DOCS)
	$(PIP_SELF)
	touch $@

venv: $(VENV)/.installed-base

run: $(VENV)/.installed-base
	$(VENV)/bin/semcom run $(ARGS)

test: $(VENV)/.installed-test
	$(VENV)/bin/python -m pytest $(ARGS)

# the documentation site with warnings as errors (needs only the docs extra): $(DOCS_OUT)/html/index.html;
# docs/build.py stages docs/ into $(DOCS_OUT)/src, so the API pages and the executed tutorials are generated there
docs: $(VENV)/.installed-docs
	$(VENV)/bin/python docs/build.py $(DOCS_OUT)

# test.lock first (every extra), then run.lock and docs.lock constrained by it, so all agree on every shared version
lock:
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	test -x $(VENV)/bin/pip-compile || $(PIP) pip-tools
	$(PIP_COMPILE) --extra all -o $(LOCK_TEST)
	$(PIP_COMPILE) -c $(LOCK_TEST) -o $(LOCK_RUN)
	$(PIP_COMPILE) -c $(LOCK_TEST) --extra docs -o $(LOCK_DOCS)

clean:
	rm -rf $(VENV) results build/docs
