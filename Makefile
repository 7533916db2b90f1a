PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python

# python -X dev shows what the default filters hide; the -W options (and the
# filterwarnings of setup.cfg, which also catch warnings raised in __del__)
# turn a socket left to the garbage collector or a deprecated call into a failure
PYTEST := -X dev -W error::ResourceWarning -W error::DeprecationWarning -m pytest
# make run PORT=6000 HOST=0.0.0.0
PORT ?= 5555
HOST ?= 127.0.0.1
# make test-all: the suite on every supported minor version found here
PYTHONS ?= $(foreach v,3.10 3.11 3.12 3.13,$(firstword $(wildcard $(HOME)/.pyenv/versions/$(v).*/bin/python) $(shell command -v python$(v))))

.PHONY: test test-all bench run soak clean

$(VPY):
	$(PY) -m venv $(VENV)

# one stamp per set of extras, redone when the package metadata changes
$(VENV)/.test: setup.cfg pyproject.toml | $(VPY)
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

$(VENV)/.bench: setup.cfg pyproject.toml | $(VPY)
	$(VPY) -m pip install -q -e '.[test,bench]'
	touch $@

test: $(VENV)/.test
	$(VPY) $(PYTEST) -q

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

soak: $(VENV)/.test
	$(VPY) $(PYTEST) -q -m soak

bench: $(VENV)/.bench
	$(VPY) bench/run_all.py

run: $(VENV)/.test
	$(VPY) examples/chat_server.py --host $(HOST) --port $(PORT)

clean:
	rm -rf $(VENV) .venv-3.* build dist *.egg-info
