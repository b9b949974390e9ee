# Every target bootstraps .venv first, so a fresh clone needs only `make demo` or `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Nothing phones home, whatever runs below (also set in flows/__init__.py for direct use).
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: setup system-deps demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# PostgreSQL, Chromium and Java 17 for the postgres-, browser- and spark-marked tests (apt-get, only if
# missing). pyspark finds Debian's java on PATH (/usr/bin/java), so nothing here sets JAVA_HOME.
system-deps:
	.ci/install-system-deps

demo: setup
	$(BIN)/tiering demo

# Two pytest-xdist workers, one per core (a single pytest process keeps ~1.1 busy): each has its own dbt project
# copy and port range; a unit of work is a module, longest first (tests/conftest.py). `-n 0`: one process.
XDIST := -n 2 --dist loadfile --no-loadscope-reorder

# pytest exits 5 when it collects no test: say so instead of failing with make's generic code.
test: setup system-deps
	@$(BIN)/python -m pytest $(XDIST) --durations=15; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests were collected"; exit 0; fi; exit $$rc

test-fast: setup
	$(BIN)/python -m pytest $(XDIST) -m "not integration and not postgres and not browser and not spark"

# ruff, then sqlfluff (dbt templater, config in pyproject.toml). dbt must parse the project to lint it: the rule
# seeds are written first, and profiles.yml gets an in-memory DuckDB, so a fresh clone needs no warehouse.
lint: setup
	$(BIN)/ruff check flows expectations tests benchmarks
	$(BIN)/python -m flows.rules >/dev/null
	TIERING_WORKING_DB=:memory: $(BIN)/sqlfluff lint dbt_project

bench: setup
	$(BIN)/python benchmarks/bench_generate.py --customers 1000000 --days 1
	$(BIN)/python benchmarks/bench_ingest.py --rows 1000000
	$(BIN)/python benchmarks/bench_gate.py --rows 1000000

clean:
	rm -rf demo warehouse .pytest_cache dbt_project/target dbt_project/logs
