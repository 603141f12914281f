# The two quick-start commands are `make demo` and `make test`; each creates or refreshes .venv itself.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# playwright (dev extras) drives the system's chromium in the browser test; it never downloads a browser
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: demo test lint typecheck check venv clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

## Run the main job on the embedded default: local Prefect server, OpenBao dev server, moto, example catalog.
demo: $(STAMP)
	$(BIN)/python -m envsteward.deployments.demo $(DEMO_ARGS)

## Run the whole test suite against real services on loopback, in two workers (a test module stays on one
## worker: its module fixtures start once; each worker starts its own session servers on free ports).
test: $(STAMP)
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/python -m pytest -n 2 --dist loadfile --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) .envsteward .demo
