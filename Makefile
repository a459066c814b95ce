# a3s-gateway: `make run` and `make test` bootstrap everything they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TYPEROOT := .build/typeroot
PYTEST_ARGS ?=

.PHONY: run test lint typecheck pytest bench l4-floods docs screenshots test-deps clean acme-demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/a3s-gateway run --config examples/quickstart.hcl

# System packages the tests talk to for real (graphviz's dot, redis-server, curl, nginx...).
test-deps:
	bash scripts/install-test-deps.sh

test: $(STAMP) test-deps lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check compiler runtime stdlib tests property_tests benchmarks
	$(BIN)/ruff format --check compiler runtime stdlib tests property_tests benchmarks

# mypy resolves `a3s_gateway.*` through a tree of symlinks that mirrors the package mapping
# of pyproject.toml (the editable install uses an import hook that mypy cannot follow).
typecheck: $(STAMP)
	mkdir -p $(TYPEROOT)/a3s_gateway
	ln -sfn ../../../compiler $(TYPEROOT)/a3s_gateway/compiler
	ln -sfn ../../../runtime $(TYPEROOT)/a3s_gateway/runtime
	ln -sfn ../../../stdlib $(TYPEROOT)/a3s_gateway/stdlib
	MYPYPATH=$(TYPEROOT) $(BIN)/mypy -p a3s_gateway.compiler -p a3s_gateway.runtime -p a3s_gateway.stdlib

# Two workers: CI has two cores. Tests bind free ports and never assume a fixed one.
pytest: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 $(PYTEST_ARGS) tests property_tests

# docs/reference.md is generated from the config models, and the metric list of
# docs/observability.md from runtime/observe/metric_names.py (tests fail when either is stale).
docs: $(STAMP)
	$(BIN)/python -c "from a3s_gateway.compiler.reference import render_reference as r; open('docs/reference.md', 'w').write(r())"
	$(BIN)/python -c "from a3s_gateway.runtime.observe.metric_docs import with_metric_list as w; p = 'docs/observability.md'; t = open(p).read(); open(p, 'w').write(w(t))"

# The dashboard's screenshots in docs/img/, taken by its browser test (make test writes them to a
# temporary directory instead).
screenshots: $(STAMP) test-deps
	A3S_SCREENSHOTS=docs/img $(BIN)/python -m pytest -q -n 0 tests/test_dashboard_browser.py

# A certificate from a local pebble (Let's Encrypt's test CA), in one command: docs/tls.md.
acme-demo: $(STAMP) test-deps
	$(BIN)/python scripts/acme_demo.py

bench: $(STAMP)
	bash benchmarks/run.sh

# The layer-4 bad-input tests at the issue's scale: 10,000 TCP connections that never speak, a
# UDP flood from 100,000 source ports (`make test` runs them at a reduced count; docs/l4.md).
l4-floods: $(STAMP)
	A3S_L4_FULL_SCALE=1 $(BIN)/python -m pytest -q -n 0 tests/test_l4_floods.py

clean:
	rm -rf $(VENV) .build .mypy_cache .ruff_cache .hypothesis
