PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python

.PHONY: test bench run soak clean docs

$(VPY):
	$(PY) -m venv $(VENV)

# one stamp per set of extras, redone when the package metadata changes
$(VENV)/.test: setup.cfg pyproject.toml | $(VPY)
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

$(VENV)/.bench: setup.cfg pyproject.toml | $(VPY)
	$(VPY) -m pip install -q -e '.[test,bench]'
	touch $@

$(VENV)/.docs: setup.cfg pyproject.toml | $(VPY)
	$(VPY) -m pip install -q -e '.[docs]'
	touch $@

test: $(VENV)/.test
	$(VPY) -m pytest -q

soak: $(VENV)/.test
	$(VPY) -m pytest -q -m soak

bench: $(VENV)/.bench
	$(VPY) bench/run_all.py

run: $(VENV)/.test
	$(VPY) examples/chat_server.py

# the documentation site into docs/_build/html; any warning fails the build
docs: $(VENV)/.docs
	$(VPY) -m sphinx -b html -E -W --keep-going -n -q docs docs/_build/html

clean:
	rm -rf $(VENV) build *.egg-info
