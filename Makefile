# The two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench soak scale clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[all,test]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/yokedcache demo

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

bench: install
	$(BIN)/python benchmarks/overhead.py

soak: install
	$(BIN)/python benchmarks/soak.py --duration 600

scale: install
	$(BIN)/python benchmarks/scale.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
