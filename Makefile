PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python

.PHONY: test test-pure bench run soak clean

$(VPY):
	$(PY) -m venv $(VENV)

# one stamp per set of extras, redone when the package metadata changes
$(VENV)/.test: setup.cfg pyproject.toml | $(VPY)
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

$(VENV)/.bench: setup.cfg pyproject.toml | $(VPY)
	$(VPY) -m pip install -q -e '.[test,bench]'
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

clean:
	rm -rf $(VENV) build *.egg-info anyevent/*.c anyevent/*.so
