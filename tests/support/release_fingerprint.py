"""A release's published content as digests, ids and timestamps aside: proof a refactor changed no result.

One digest per published column, over the rows in key order, so a difference names the table and the
columns that moved. Record a baseline with
`python -m tests.support.release_fingerprint WAREHOUSE > tests/fixtures/<name>.json`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb

# Published table → (database under the warehouse, key columns). release_log and release_months hold
# ids and timestamps only, so they are left out.
PUBLISHED_TABLES = {
    "customer_segment": ("published.duckdb", ("as_of_month", "cust_id")),
    "customer_tier": ("published.duckdb", ("as_of_month", "cust_id", "rule_set")),
    "tier_summary": ("published.duckdb", ("as_of_month", "rule_set", "tier")),
    "tier_migration": ("published.duckdb", ("as_of_month", "rule_set", "from_tier", "to_tier")),
    "aml_customer_risk": ("restricted/aml.duckdb", ("as_of_month", "cust_id")),
    "aml_trigger_transactions": ("restricted/aml.duckdb", ("as_of_month", "cust_id", "trigger", "txn_id")),
}


def fingerprint(warehouse: Path, columns: dict[str, list[str]] | None = None) -> dict[str, dict]:
    """{table: {rows, columns: {column: md5}}}; `columns` limits each table to a baseline's columns."""
    result = {}
    for table, (database, keys) in PUBLISHED_TABLES.items():
        with duckdb.connect(str(Path(warehouse) / database), read_only=True) as con:
            present = [row[0] for row in con.execute(
                "select column_name from information_schema.columns where table_name = ? "
                "order by ordinal_position", [table]).fetchall()]
            wanted = present if columns is None else columns[table]
            order = ", ".join(f'"{key}"' for key in keys)
            digests = {}
            for column in wanted:
                if column not in present:
                    digests[column] = "missing"
                    continue
                (digests[column],) = con.execute(
                    f"""select md5(string_agg(coalesce(cast("{column}" as varchar), '<null>'), '|'
                    order by {order})) from main."{table}" """).fetchone()
            (rows,) = con.execute(f'select count(*) from main."{table}"').fetchone()
        result[table] = {"rows": rows, "columns": digests}
    return result


def differences(baseline: dict[str, dict], current: dict[str, dict]) -> list[str]:
    """One line per table whose row count or column digests differ from the baseline."""
    lines = []
    for table, expected in baseline.items():
        got = current[table]
        if got["rows"] != expected["rows"]:
            lines.append(f"{table}: {got['rows']} rows, baseline {expected['rows']}")
        moved = [c for c, digest in expected["columns"].items() if got["columns"].get(c) != digest]
        if moved:
            lines.append(f"{table}: columns differ: {', '.join(moved)}")
    return lines


if __name__ == "__main__":
    json.dump(fingerprint(Path(sys.argv[1])), sys.stdout, indent=1, sort_keys=True)
    print()
