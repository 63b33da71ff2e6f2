# The two set-up commands: `make up` runs the stack, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test up lint format bench clean lexicons

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench tools
	$(BIN)/ruff format src tests bench tools

up: $(STAMP)
	$(BIN)/atstack up --data-dir ./data

bench: $(STAMP)
	$(BIN)/atstack bench core

lexicons: $(STAMP)
	$(BIN)/python tools/bundle_lexicons.py ../shared/atproto/lexicons src/atstack/lexicons/bundle.json

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
