# One venv for everything; `make demo` and `make test` work on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench clean

$(BIN)/sipdialer: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/sipdialer

demo: setup
	$(BIN)/sipdialer demo

test: setup
	$(BIN)/ruff check sipdialer tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check sipdialer tests bench
	$(BIN)/ruff format --check sipdialer tests bench
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/sip_parse.py
	$(BIN)/python bench/sip_uas.py
	$(BIN)/python bench/rtp_rewrite.py
	$(BIN)/python bench/media_relay.py
	$(BIN)/python bench/originate.py
	$(BIN)/python bench/member_lease.py
	$(BIN)/python bench/loop_stall.py

clean:
	rm -rf $(VENV) build *.egg-info
