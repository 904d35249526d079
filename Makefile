# Set-up is self-contained: `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench postgres clean example-plan

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,pg16]'
	touch $(STAMP)

install: $(STAMP) postgres

# PostgreSQL server binaries: Debian's postgresql-15 when missing (root only); the pgserver wheel brings 16.
postgres:
	@bash scripts/ensure-postgres.sh

demo: install
	$(BIN)/consolidator demo

test: install
	$(BIN)/ruff check consolidator tests bench
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check consolidator tests bench

bench: install
	$(BIN)/python bench/inventory_many_databases.py
	$(BIN)/python bench/dump_vs_pgdump.py $(BENCH_DUMP_ARGS)
	$(BIN)/python bench/verify_vs_count.py
	$(BIN)/python bench/logical_cutover_window.py
	$(BIN)/python bench/tui_responsiveness.py

clean:
	rm -rf $(VENV) build *.egg-info

# Regenerate the example plan under plans/ from the demo's legacy server (tests keep it current).
example-plan: install
	rm -rf plans/example
	$(BIN)/consolidator demo --out plans/example --plan-only --scale-mb 20
