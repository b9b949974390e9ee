"""`tiering override …` and `tiering events`: the relationship managers' commands.

Overrides (特批) are decided in flows/overrides.py; this module turns them and the published change feed
(`customer_event`) into what a person reads.
"""

from __future__ import annotations

import datetime as dt
import json

from flows import overrides
from flows.reports.text_columns import aligned
from flows.rules import load_rules
from flows.settings import Settings

LIST_COLUMNS = ("override_id", "status", "cust_id", "tier", "months", "requested_by", "decided_by", "reason")


def _months(row: dict) -> str:
    first = row["first_month"] or (f"{row['requested_from']} (asked)" if row["requested_from"] else "on approval")
    last = row["until"]
    if row["status"] == "REVOKED" and row["revoked_from"]:
        last = f"{row['until']}, revoked from {row['revoked_from']}"
    return f"{first} … {last}"


def request_text(settings: Settings, action: overrides.Action) -> str:
    rules = load_rules(settings.rules_path)
    name = _tier_name(rules, action.cust_type, action.tier)
    until = dt.date.fromisoformat(action.until_month)
    start = (f"from {dt.date.fromisoformat(action.from_month):%Y-%m}" if action.from_month
             else "from the first month not yet published when approved")
    return (f"{action.override_id} requested by {action.acted_by}: {action.cust_id} at {action.tier} ({name}) "
            f"{start} through {until:%Y-%m}. A second person approves it: "
            f"tiering override approve {action.override_id} --by <approver>")


def decision_text(action: overrides.Action) -> str:
    if action.action == "APPROVE":
        first = dt.date.fromisoformat(action.from_month)
        return (f"{action.override_id} approved by {action.acted_by}: it applies from {first:%Y-%m} "
                "(the next run of that month publishes it)")
    if action.action == "REJECT":
        return f"{action.override_id} rejected by {action.acted_by}"
    first = dt.date.fromisoformat(action.from_month)
    return (f"{action.override_id} revoked by {action.acted_by}: from {first:%Y-%m} on the customer gets the "
            "computed tier again")


def _tier_name(rules, cust_type: str | None, tier: str | None) -> str:
    if cust_type in rules.corporate_cust_types:
        names = {t.code: t.name for t in rules.corporate_tiers}
    else:
        names = {t.code: t.name for t in rules.active.tiers}
    return names.get(tier, "?")


def render_list(rows: list[dict], as_json: bool) -> str:
    if as_json:
        return json.dumps(rows, ensure_ascii=False, indent=2)
    if not rows:
        return "no overrides"
    return "\n".join(aligned([LIST_COLUMNS, *[
        (r["override_id"], r["status"], r["cust_id"], r["tier"], _months(r), r["requested_by"],
         r["decided_by"] or "", r["reason"]) for r in rows]]))


# --- tiering events -------------------------------------------------------------------------------------

EVENT_COLUMNS = ("event_type", "cust_id", "branch_id", "cust_name_masked", "from_value", "to_value",
                 "effective_from", "suggested_action")


def month_events(settings: Settings, as_of: dt.date, branch: str | None = None,
                 event_type: str | None = None) -> list[dict]:
    """The published change feed of one month, optionally for one branch or one event type."""
    import duckdb

    if not settings.published_db.exists():
        raise overrides.OverrideRefused(f"no release is published in {settings.warehouse}")
    con = duckdb.connect(str(settings.published_db), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "customer_event" not in tables:
            raise overrides.OverrideRefused("the current release has no customer_event (published before the "
                                            "change feed existed): run the month again")
        published = con.execute("SELECT count(*) FROM release_months WHERE table_name = 'customer_event' "
                                "AND as_of_month = ?", [as_of]).fetchone()[0]
        if not published:
            raise overrides.OverrideRefused(f"no published change feed for {as_of:%Y-%m}")
        sql = (f"SELECT {', '.join(EVENT_COLUMNS)} FROM customer_event WHERE as_of_month = ?"
               + (" AND branch_id = ?" if branch else "") + (" AND event_type = ?" if event_type else "")
               + " ORDER BY branch_id, event_type, cust_id")
        params = [as_of, *([branch] if branch else []), *([event_type] if event_type else [])]
        cursor = con.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()


def render_events(rows: list[dict], as_of: dt.date) -> str:
    if not rows:
        return f"no events in {as_of:%Y-%m} for this selection"
    lines = aligned([EVENT_COLUMNS, *[tuple(r[c] for c in EVENT_COLUMNS) for r in rows]])
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["event_type"]] = counts.get(row["event_type"], 0) + 1
    summary = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
    return "\n".join([*lines, f"{len(rows)} event(s) in {as_of:%Y-%m}: {summary}"])
