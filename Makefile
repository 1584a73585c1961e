PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The archive page tests drive Debian's Chromium; Playwright's own browser download cannot
# work on machines without internet access, so it is never used.
CHROMIUM := /usr/bin/chromium

.PHONY: test demo lint lint-dockerfile typecheck clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

chromium:
	@if [ -x $(CHROMIUM) ]; then \
		:; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian's chromium for the archive page tests"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends chromium; \
	else \
		echo "The archive page tests need $(CHROMIUM): run" \
			"'sudo apt-get install --no-install-recommends chromium' (Debian/Ubuntu)," \
			"then make test again." >&2; \
		exit 1; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# No Docker engine is needed to lint the Dockerfile; the linter comes from the npm registry.
lint-dockerfile:
	npx --yes dockerfilelint@1.8.0 Dockerfile

typecheck: $(STAMP)
	$(BIN)/mypy

demo: $(STAMP)
	$(BIN)/python -m appservice.demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-data
