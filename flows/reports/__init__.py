"""What people see: the release and gate report pages, dbt docs, Prefect UI artifacts, terminal progress."""
