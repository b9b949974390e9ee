"""The boundaries to other systems: dbt, Great Expectations on DuckDB, PostgreSQL, a local Prefect server."""
