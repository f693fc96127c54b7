# The two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint docs docs-samples bench bench-pipelining bench-peers soak scale screenshot clean

# Not --quiet: the first install takes a minute or so, and pip's "Collecting ..." lines show it moving.
$(STAMP): pyproject.toml
	@echo "creating $(VENV) and installing yokedcache-otel[all,test] into it (a minute or so, once)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check --progress-bar on -e ".[all,test]"
	touch $(STAMP)
	@echo "installed: $(BIN)/yokedcache, $(BIN)/python"

install: $(STAMP)

# The manual's tools (MkDocs, Material, mkdocstrings): for make test, make docs and the samples,
# not for make demo, whose first value should not wait for them.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[all,test,docs]"
	touch $(DOCS_STAMP)

# "@": the demo's first line is the status page's URL, not make's echo of the command.
demo: install
	@$(BIN)/yokedcache demo

# The real Etsy StatsD daemon for tests/test_etsy_statsd.py, from the npm registry (git-ignored).
ETSY_STATSD := tests/.node/node_modules/statsd/stats.js
$(ETSY_STATSD):
	@if command -v npm >/dev/null 2>&1; then \
	  echo "installing statsd@0.9.0 (npm) into tests/.node"; \
	  npm install --prefix tests/.node --no-audit --no-fund --ignore-scripts --loglevel=error statsd@0.9.0; \
	else echo "npm not found: the Etsy StatsD test will skip (apt-get install nodejs npm)"; fi

# Older redis-py beside the installed one for tests/test_redis_otel.py (git-ignored): 7.3.0, the
# first whose asyncio client has OpenTelemetry of its own, and 5.0.1, the lowest the cache runs on.
REDIS_PY_VERSIONS := 7.3.0 5.0.1
REDIS_PY_OLDER := $(foreach v,$(REDIS_PY_VERSIONS),tests/.redis-py/$(v)/redis/__init__.py)
tests/.redis-py/%/redis/__init__.py: | install
	$(BIN)/pip install --disable-pip-version-check --quiet --no-deps --target tests/.redis-py/$* redis==$*

# lint first: CI (.ci/run) runs `make test` only, and the layering, complexity and dead-code
# rules must hold there too
test: install $(DOCS_STAMP) $(ETSY_STATSD) $(REDIS_PY_OLDER) lint
	$(BIN)/python -m pytest

# radon prints every block rated D or worse (issue 17: none may be); vulture reports code nothing
# uses, at 80 % confidence, except the names vulture_whitelist.py explains.
lint: install
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks
	@complex="$$($(BIN)/radon cc -s -n D src)"; \
	  if [ -n "$$complex" ]; then echo "radon: blocks rated worse than C:"; echo "$$complex"; exit 1; fi
	$(BIN)/vulture src vulture_whitelist.py --min-confidence 80

# The manual (docs/, mkdocs.yml): served with live reload; tests/test_docs.py builds it --strict.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# The sample outputs the manual shows, made by the commands they show (tests/docs_samples.py).
docs-samples: $(DOCS_STAMP)
	$(BIN)/python -m tests.docs_samples

bench: install
	$(BIN)/python benchmarks/overhead.py

# Auto-pipelining vs raw redis-py, aiocache and cashews (README "Performance"): the [bench] extra.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[all,test,bench]"
	touch $(BENCH_STAMP)

bench-pipelining: $(BENCH_STAMP)
	$(BIN)/python benchmarks/pipelining.py --peers

# Node's ioredis for the side-by-side table (benchmarks/peers.py runs it when present; git-ignored).
IOREDIS := tests/.node/node_modules/ioredis/package.json
$(IOREDIS):
	@if command -v npm >/dev/null 2>&1; then \
	  echo "installing ioredis@5 (npm) into tests/.node"; \
	  npm install --prefix tests/.node --no-audit --no-fund --ignore-scripts --loglevel=error ioredis@5; \
	else echo "npm not found: benchmarks/peers.py leaves ioredis out (apt-get install nodejs npm)"; fi

# The side-by-side table of docs/peers.md: GLIDE's mix against GLIDE, coredis, aiocache, cashews
# and Node's ioredis, as goodput ratios to raw redis-py.
bench-peers: $(BENCH_STAMP) $(IOREDIS)
	$(BIN)/python benchmarks/peers.py

soak: install
	$(BIN)/python benchmarks/soak.py --duration 600

scale: install
	$(BIN)/python benchmarks/scale.py

# The README's picture of the status page: the demo for a minute, then headless chromium.
screenshot: install
	$(BIN)/python -m tests.screenshot docs/status-page.png --height 1180

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site
