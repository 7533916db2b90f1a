PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python

# python -X dev shows what the default filters hide; the -W options (and the
# filterwarnings of setup.cfg, which also catch warnings raised in __del__)
# turn a socket left to the garbage collector or a deprecated call into a failure
PYTEST := -X dev -W error::ResourceWarning -W error::DeprecationWarning -m pytest
# -X dev also turns on anyevent's debug mode (anyevent.debug: watchers and
# handles wrapped, threads checked), as it does asyncio's.  The compiled and
# model runs turn it off (ANYEVENT_DEBUG=0) to test the path programs run;
# the pure-Python run keeps it, so that every test also runs wrapped
NODEBUG := ANYEVENT_DEBUG=0
# make run PORT=6000 HOST=0.0.0.0
PORT ?= 5555
HOST ?= 127.0.0.1
# make test-all: the suite on every supported minor version found here
PYTHONS ?= $(foreach v,3.10 3.11 3.12 3.13,$(firstword $(wildcard $(HOME)/.pyenv/versions/$(v).*/bin/python) $(shell command -v python$(v))))

.PHONY: test test-pure test-models test-all bench run soak clean typecheck docs dist sdist-test

$(VPY):
	$(PY) -m venv $(VENV)

# one stamp per set of extras, redone when the package metadata changes; the
# editable install skips the compiled core (ANYEVENT_PURE_PYTHON at build
# time), which .core below builds once, in place
PIP := ANYEVENT_PURE_PYTHON=1 $(VPY) -m pip install -q -e
$(VENV)/.test: setup.cfg pyproject.toml | $(VPY)
	$(PIP) '.[test]'
	touch $@

$(VENV)/.bench: setup.cfg pyproject.toml | $(VPY)
	$(PIP) '.[test,bench]'
	touch $@

$(VENV)/.typecheck: setup.cfg pyproject.toml | $(VPY)
	$(PIP) '.[test,typecheck]'
	touch $@

$(VENV)/.dist: setup.cfg pyproject.toml | $(VPY)
	$(PIP) '.[dist]'
	touch $@

$(VENV)/.docs: setup.cfg pyproject.toml | $(VPY)
	$(PIP) '.[docs]'
	touch $@

# the compiled core (setup.py), rebuilt in place when its sources change
$(VENV)/.core: setup.py $(wildcard anyevent/reactor.p* anyevent/handle/*.p* anyevent/_speedups.p*) | $(VENV)/.test
	ANYEVENT_BUILD_STRICT=1 $(VPY) setup.py -q build_ext --inplace
	touch $@

# the suite on the compiled core, then on the pure-Python reference in the
# debug mode
test: $(VENV)/.test $(VENV)/.core
	$(NODEBUG) $(VPY) $(PYTEST) -q
	ANYEVENT_PURE_PYTHON=1 $(VPY) $(PYTEST) -q

test-pure: $(VENV)/.test
	ANYEVENT_PURE_PYTHON=1 $(VPY) $(PYTEST) -q

# the suite on the compiled core under the asyncio and uvloop models
test-models: $(VENV)/.test $(VENV)/.core
	$(NODEBUG) ANYEVENT_MODEL=asyncio $(VPY) $(PYTEST) -q
	$(NODEBUG) ANYEVENT_MODEL=uvloop $(VPY) $(PYTEST) -q

# one venv per minor version (.venv-3.X), each with .[test]; every version
# runs, then the versions that failed are listed
test-all:
	@test -n "$(strip $(PYTHONS))" || { echo "no Python 3.10-3.13 found" >&2; exit 1; }
	@failed=""; for py in $(PYTHONS); do \
	    v=$$($$py -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	    echo "== Python $$v ($$py)"; \
	    { test -x .venv-$$v/bin/python || $$py -m venv .venv-$$v; } && \
	    .venv-$$v/bin/python -m pip install -q -e '.[test]' && \
	    .venv-$$v/bin/python $(PYTEST) -q -p no:cacheprovider || failed="$$failed $$v"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-all: failed on$$failed" >&2; exit 1; fi; \
	echo "test-all: passed on every version"

soak: $(VENV)/.test $(VENV)/.core
	$(NODEBUG) $(VPY) $(PYTEST) -q -m soak

bench: $(VENV)/.bench $(VENV)/.core
	$(VPY) bench/run_all.py --plot

run: $(VENV)/.test $(VENV)/.core
	$(VPY) examples/chat_server.py --host $(HOST) --port $(PORT)

# mypy --strict and pyright on the package and the examples, then pyright's
# completeness score of the public API (PYTHONPATH: pyright cannot see editable installs)
# (all three run; the target fails if any of them does)
PYRIGHT := PYTHONPATH=. $(VENV)/bin/pyright --pythonpath $(VPY)
typecheck: $(VENV)/.typecheck
	@status=0; \
	$(VENV)/bin/mypy --strict --python-version 3.10 anyevent examples || status=1; \
	$(PYRIGHT) --pythonversion 3.10 anyevent examples || status=1; \
	$(PYRIGHT) --verifytypes anyevent --ignoreexternal --outputjson \
	  | $(VPY) -c "import json, sys; s = json.load(sys.stdin)['typeCompleteness']['completenessScore']; \
	    print('pyright --verifytypes anyevent: %.1f %% (need 95)' % (100 * s)); sys.exit(s < 0.95)" \
	  || status=1; \
	exit $$status

# the documentation site into docs/_build/html; any warning fails the build
docs: $(VENV)/.docs
	$(VPY) -m sphinx -b html -E -W --keep-going -n -q docs docs/_build/html

clean:
	rm -rf $(VENV) .venv-3.* build dist *.egg-info anyevent/*.c anyevent/*.so \
	  anyevent/handle/*.c anyevent/handle/*.so

# What a release uploads, in dist/: the sdist, and a wheel for this Python
# that a package index accepts (auditwheel gives it the oldest manylinux tag
# its symbols allow and strips the extensions' debug info); then checked:
# twine's metadata check, the tag, the size (< 1.5 MB), the sdist's contents
dist: $(VENV)/.dist
	rm -rf dist build/dist-raw
	ANYEVENT_BUILD_STRICT=1 $(VPY) -m build --outdir build/dist-raw
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VPY) -m auditwheel repair --strip \
	  -w dist build/dist-raw/*.whl
	cp build/dist-raw/*.tar.gz dist/
	$(VPY) -m twine check --strict dist/*
	$(VPY) .ci/check_dist.py dist

# The unpacked sdist's own tests against the wheel of dist/ (make dist first),
# in a venv of their own (PYTHONSAFEPATH: the wheel, not the unpacked sources,
# is imported): every test must collect, then PYTEST_ARGS (default: all) run
SDIST_TMP := build/sdist-test
sdist-test:
	rm -rf $(SDIST_TMP) && mkdir -p $(SDIST_TMP)
	tar xzf dist/*.tar.gz -C $(SDIST_TMP) --strip-components=1
	$(PY) -m venv $(SDIST_TMP)/.venv
	$(SDIST_TMP)/.venv/bin/pip install -q "$$(ls dist/*.whl)[test]"
	cd $(SDIST_TMP) && PYTHONSAFEPATH=1 .venv/bin/python -m pytest -p no:cacheprovider \
	  --collect-only -q | tail -1
	cd $(SDIST_TMP) && PYTHONSAFEPATH=1 .venv/bin/python $(PYTEST) -p no:cacheprovider \
	  $(PYTEST_ARGS)

