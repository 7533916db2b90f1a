PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python

.PHONY: test test-pure bench run soak clean typecheck docs

$(VPY):
	$(PY) -m venv $(VENV)

# one stamp per set of extras, redone when the package metadata changes
$(VENV)/.test: setup.cfg pyproject.toml | $(VPY)
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

$(VENV)/.bench: setup.cfg pyproject.toml | $(VPY)
	$(VPY) -m pip install -q -e '.[test,bench]'
	touch $@

$(VENV)/.typecheck: setup.cfg pyproject.toml | $(VPY)
	$(VPY) -m pip install -q -e '.[test,typecheck]'
	touch $@

$(VENV)/.docs: setup.cfg pyproject.toml | $(VPY)
	$(VPY) -m pip install -q -e '.[docs]'
	touch $@

# the compiled core (setup.py), rebuilt in place when its sources change
$(VENV)/.core: setup.py anyevent/reactor.py anyevent/handle.py | $(VENV)/.test
	$(VPY) setup.py -q build_ext --inplace
	touch $@

# the suite on the compiled core, then on the pure-Python reference
test: $(VENV)/.test $(VENV)/.core
	$(VPY) -m pytest -q
	ANYEVENT_PURE_PYTHON=1 $(VPY) -m pytest -q

test-pure: $(VENV)/.test
	ANYEVENT_PURE_PYTHON=1 $(VPY) -m pytest -q

soak: $(VENV)/.test $(VENV)/.core
	$(VPY) -m pytest -q -m soak

bench: $(VENV)/.bench $(VENV)/.core
	$(VPY) bench/run_all.py

run: $(VENV)/.test $(VENV)/.core
	$(VPY) examples/chat_server.py

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
	rm -rf $(VENV) build *.egg-info anyevent/*.c anyevent/*.so
