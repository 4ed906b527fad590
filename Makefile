# observatoire — the two commands of the README, and a few helpers.
#   make demo   set everything up, run the demo on the simulator, print where the site is
#   make test   set everything up and run the whole test suite (what CI runs)
.PHONY: setup demo test lint format bench clean

VENV := .venv
BIN := $(VENV)/bin

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/observatoire demo --out demo-output

test: setup
	@bash scripts/test.sh

lint: setup
	$(BIN)/ruff check observatoire tests benchmarks migrations
	$(BIN)/ruff format --check observatoire tests benchmarks migrations
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format observatoire tests benchmarks migrations
	$(BIN)/ruff check --fix observatoire tests benchmarks migrations

bench: setup
	$(BIN)/python -m benchmarks.sweep

clean:
	rm -rf demo-output .pytest_cache .ruff_cache .mypy_cache
