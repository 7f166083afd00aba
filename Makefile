# `make demo` and `make test` bootstrap .venv themselves on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test deps lint bench dashboards clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/secton-harness demo

# The Debian packages the tests run for real (Prometheus, nginx, HAProxy), installed when
# missing: the same step CI runs (.ci/install-deps).
deps:
	.ci/install-deps

test: $(STAMP) deps
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy secton_harness loadtests/ratelimit

bench: $(STAMP)
	$(BIN)/python -m benchmarks

dashboards: $(STAMP)
	$(BIN)/secton-harness dashboards export --out dashboards/generated

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
