PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python

.PHONY: test bench run soak clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q -e '.[test,bench]'
	touch $@

test: $(VENV)/.installed
	$(VPY) -m pytest -q

bench: $(VENV)/.installed
	$(VPY) bench/run_all.py

run: $(VENV)/.installed
	$(VPY) examples/chat_server.py

soak: $(VENV)/.installed
	$(VPY) -m pytest -q -m soak

clean:
	rm -rf $(VENV) build *.egg-info
