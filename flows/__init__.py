"""Customer tiering pipeline for banks: extracts → DuckDB → dbt → GX gate → published tiers."""

import os

# Nothing may phone home: set before prefect, dbt or great_expectations are imported.
for _key, _value in {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DBT_USE_COLORS": "false",
}.items():
    os.environ.setdefault(_key, _value)
