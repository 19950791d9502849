# One entry point for people and CI. Every target creates .venv and installs from the
# committed constraints when needed, so `make run` / `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MANIFEST := dbt_project/target/manifest.json
DBT_SOURCES := $(shell find dbt_project/models dbt_project/macros dbt_project/tests dbt_project/seeds -type f 2>/dev/null) dbt_project/dbt_project.yml

.PHONY: install run dev test check bench clean docs chromium postgres-server

install: $(STAMP) $(MANIFEST) chromium

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# engine: spark (and its test) runs a JVM: Java 17 from Debian when none is installed.
	command -v java >/dev/null || (apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,spark]'
	touch $(STAMP)

# The dbt manifest is prepared here, not when Dagster imports the definitions.
$(MANIFEST): $(STAMP) $(DBT_SOURCES)
	cd dbt_project && ../$(BIN)/dbt parse --profiles-dir . --quiet
	touch $(MANIFEST)

run: install
	$(BIN)/crm-pipeline run

# Headless Chromium renders the pipeline report in its browser test; Debian's package,
# installed only when missing (the test fails, saying why, if it cannot be).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || \
		echo "warning: could not install chromium; the report's browser test will fail"

# dbt's documentation site (catalog included) into data/docs/, built from the warehouse
# (running the pipeline first when it has no marts yet).
docs: install
	$(BIN)/python -m orchestration.lib.report.dbt_docs

# The Dagster UI and daemon (schedule, sensors, run queue) with deploy/dagster.yaml.
dev: install
	DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/.dagster} ; mkdir -p $$DAGSTER_HOME ; \
	test -f $$DAGSTER_HOME/dagster.yaml || cp deploy/dagster.yaml $$DAGSTER_HOME/ ; \
	DAGSTER_HOME=$$DAGSTER_HOME PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dagster dev -m orchestration.definitions

test: install postgres-server
	$(BIN)/python -m pytest -n 2 --dist loadfile

# The publish tests start a throwaway PostgreSQL server (tests/local_postgres.py) from
# Debian's server binaries: installed here, only when initdb is nowhere to be found.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
postgres-server:
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "Installing the PostgreSQL server binaries (Debian package postgresql) for the tests"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; \
	fi

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install postgres-server
	$(BIN)/python bench/bench_scale.py --sizes 10000 100000 1000000
	$(BIN)/python bench/bench_generate.py 1000000
	$(BIN)/python bench/bench_pipeline.py 1000000
	$(BIN)/python bench/bench_validation.py 1000000
	$(BIN)/python bench/bench_adapters.py 1000000
	$(BIN)/python bench/bench_forecast_marts.py 1000000
	$(BIN)/python bench/bench_report.py 1000000
	$(BIN)/python bench/bench_publish.py 1000000
	$(BIN)/python bench/bench_spark.py 100000
	$(BIN)/python bench/bench_spark.py 1000000

clean:
	rm -rf data dbt_project/target dbt_project/logs .dagster
