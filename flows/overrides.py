"""Tier overrides (特批): an append-only log of requests, decisions and revocations, and what it allows.

The log is `<warehouse>/overrides/override_log.jsonl`, one JSON object per action, never rewritten: it lives
outside everything a rebuild or `--full-refresh` recreates and is backed up with the warehouse folder. Each
run copies it into the working database (`overrides.tier_override_log`) before dbt builds, so a month's
evaluation uses the overrides decided before its run; dbt decides which override applies to a month
(int_customer_monthly_tier_overrides), the gate checks what the build applied against the same copy.

Months are named by their last day, like `as_of_month`. An override holds from its first month through its
`until` month: the first month is the requested `--from`, but never a month already published when it is
approved (a release is never changed after the fact); a revocation ends it from the first month not yet
published. Every refusal is an OverrideRefused with one line, raised before anything is written.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from flows.months import SHANGHAI, month_end
from flows.rules import Rules, load_rules
from flows.settings import Settings

LOG_DIR = "overrides"
LOG_FILE = "override_log.jsonl"
SNAPSHOT_SCHEMA = "overrides"
SNAPSHOT_TABLE = "tier_override_log"
ACTIONS = ("REQUEST", "APPROVE", "REJECT", "REVOKE")
STATUSES = ("PENDING", "APPROVED", "REJECTED", "REVOKED", "EXPIRED")
# The working-database copy of the log: one row per action (dbt source overrides.tier_override_log).
SNAPSHOT_COLUMNS = {
    "seq": "INTEGER", "override_id": "VARCHAR", "action": "VARCHAR", "acted_at": "TIMESTAMP",
    "acted_by": "VARCHAR", "cust_id": "VARCHAR", "cust_type": "VARCHAR", "tier": "VARCHAR",
    "from_month": "DATE", "until_month": "DATE", "text": "VARCHAR",
}


class OverrideRefused(ValueError):
    """A request, decision or revocation the rules do not allow; nothing was written."""


def log_path(settings: Settings) -> Path:
    return settings.warehouse / LOG_DIR / LOG_FILE


@dataclass(frozen=True)
class Action:
    """One line of the log."""

    seq: int
    override_id: str
    action: str
    acted_at: str  # ISO 8601 with the bank's offset
    acted_by: str
    text: str
    cust_id: str | None = None
    cust_type: str | None = None
    tier: str | None = None
    from_month: str | None = None  # REQUEST: asked (may be None); APPROVE: first month; REVOKE: ends from
    until_month: str | None = None


@dataclass
class Override:
    """One override folded from its actions."""

    override_id: str
    cust_id: str
    cust_type: str
    tier: str
    requested_from: dt.date | None
    until: dt.date
    reason: str
    requested_by: str
    requested_at: str
    status: str = "PENDING"  # PENDING, APPROVED, REJECTED, REVOKED (EXPIRED is derived: see status_at)
    first_month: dt.date | None = None
    decided_by: str | None = None
    decided_at: str | None = None
    decision_note: str | None = None
    revoked_by: str | None = None
    revoked_at: str | None = None
    revoke_reason: str | None = None
    revoked_from: dt.date | None = None
    actions: list[Action] = field(default_factory=list)

    def last_month(self) -> dt.date | None:
        """The last month it applies to (None: never applied)."""
        if self.first_month is None:
            return None
        if self.revoked_from is not None:
            end = self.revoked_from.replace(day=1) - dt.timedelta(days=1)
            return end if end >= self.first_month else None
        return self.until

    def applies_to(self, month: dt.date) -> bool:
        last = self.last_month()
        return self.first_month is not None and last is not None and self.first_month <= month <= last

    def status_at(self, first_unpublished: dt.date | None) -> str:
        """The status, with an approved override whose months are all published shown as EXPIRED."""
        if self.status == "APPROVED" and first_unpublished is not None and self.until < first_unpublished:
            return "EXPIRED"
        return self.status

    def as_dict(self, first_unpublished: dt.date | None = None) -> dict:
        data = {k: v for k, v in asdict(self).items() if k != "actions"}
        for key in ("requested_from", "until", "first_month", "revoked_from"):
            data[key] = _month_text(data[key])
        data["status"] = self.status_at(first_unpublished)
        return data


def _month_text(day: dt.date | None) -> str | None:
    return None if day is None else f"{day:%Y-%m}"


def _date(text: str | None) -> dt.date | None:
    return None if text is None else dt.date.fromisoformat(text)


def now_text() -> str:
    return dt.datetime.now(SHANGHAI).isoformat(timespec="seconds")


# --- the log file ---------------------------------------------------------------------------------------

@contextmanager
def _locked(path: Path, exclusive: bool) -> Iterator[object]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            handle.seek(0)
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _parse(lines: list[str], path: Path) -> list[Action]:
    actions = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            actions.append(Action(**json.loads(line)))
        except (ValueError, TypeError) as exc:
            raise OverrideRefused(f"{path}:{number}: not an override log line ({exc}); fix the file by hand "
                                  "from the warehouse backup") from None
    return actions


def read_actions(settings: Settings) -> list[Action]:
    """Every action of the log, in order (none when the log does not exist yet)."""
    path = log_path(settings)
    if not path.exists():
        return []
    with _locked(path, exclusive=False) as handle:
        return _parse(handle.read().splitlines(), path)


def fold(actions: list[Action]) -> dict[str, Override]:
    """The overrides the actions describe, by id, in request order."""
    overrides: dict[str, Override] = {}
    for action in actions:
        if action.action == "REQUEST":
            overrides[action.override_id] = Override(
                action.override_id, action.cust_id, action.cust_type, action.tier, _date(action.from_month),
                _date(action.until_month), action.text, action.acted_by, action.acted_at, actions=[action])
            continue
        item = overrides.get(action.override_id)
        if item is None:
            continue  # a decision without its request: the gate reports what the build applied from it
        item.actions.append(action)
        if action.action in ("APPROVE", "REJECT"):
            item.status = "APPROVED" if action.action == "APPROVE" else "REJECTED"
            item.decided_by, item.decided_at, item.decision_note = action.acted_by, action.acted_at, action.text
            if action.action == "APPROVE":
                item.first_month = _date(action.from_month)
        elif action.action == "REVOKE":
            item.status = "REVOKED"
            item.revoked_by, item.revoked_at, item.revoke_reason = action.acted_by, action.acted_at, action.text
            item.revoked_from = _date(action.from_month)
    return overrides


def load_overrides(settings: Settings) -> dict[str, Override]:
    return fold(read_actions(settings))


def _append(settings: Settings, make: callable) -> Action:
    """Under the log's lock: fold the log, let `make(overrides, next_seq)` check and return the action
    (or raise OverrideRefused: nothing written), append it and fsync."""
    path = log_path(settings)
    with _locked(path, exclusive=True) as handle:
        actions = _parse(handle.read().splitlines(), path)
        action = make(fold(actions), len(actions) + 1)
        handle.seek(0, os.SEEK_END)
        handle.write(json.dumps(asdict(action), ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return action


# --- what the published release says --------------------------------------------------------------------

@dataclass(frozen=True)
class PublishedState:
    """What a decision is checked against: the latest published month and the customers in it."""

    latest_month: dt.date | None

    @property
    def first_unpublished(self) -> dt.date | None:
        if self.latest_month is None:
            return None
        return month_end(self.latest_month + dt.timedelta(days=1))


def published_state(settings: Settings) -> PublishedState:
    import duckdb

    if not settings.published_db.exists():
        return PublishedState(None)
    con = duckdb.connect(str(settings.published_db), read_only=True)
    try:
        latest = con.execute("SELECT max(as_of_month) FROM release_months "
                             "WHERE table_name = 'customer_segment'").fetchone()[0]
    finally:
        con.close()
    return PublishedState(latest)


def published_customer_type(settings: Settings, cust_id: str, month: dt.date) -> str | None:
    import duckdb

    con = duckdb.connect(str(settings.published_db), read_only=True)
    try:
        row = con.execute("SELECT cust_type FROM customer_segment WHERE as_of_month = ? AND cust_id = ?",
                          [month, cust_id]).fetchone()
    finally:
        con.close()
    return row[0] if row else None


def ladder_for(rules: Rules, cust_type: str) -> tuple[str, list[str]]:
    """(name, tier codes) of the ladder a customer type is tiered on."""
    if cust_type in rules.corporate_cust_types:
        return "the corporate ladder", [t.code for t in rules.corporate_tiers]
    return f"active rule set {rules.active_rule_set}", [t.code for t in rules.active.tiers]


def months_between(first: dt.date, last: dt.date) -> int:
    """Months first … last, both included."""
    return (last.year - first.year) * 12 + last.month - first.month + 1


# --- the commands ---------------------------------------------------------------------------------------

def _who(user: str) -> str:
    user = (user or "").strip()
    if not user:
        raise OverrideRefused("--by must name a person")
    return user


def _text(text: str, option: str) -> str:
    text = (text or "").strip()
    if not text:
        raise OverrideRefused(f"{option} must say why")
    return text


def request(settings: Settings, cust_id: str, tier: str, until: dt.date, reason: str, by: str,
            from_month: dt.date | None = None) -> Action:
    """Record a request to hold `cust_id` at `tier` from `from_month` (default: the first month not yet
    published when approved) through `until`."""
    by, reason = _who(by), _text(reason, "--reason")
    rules = load_rules(settings.rules_path)
    state = published_state(settings)
    if state.latest_month is None:
        raise OverrideRefused(f"no release is published in {settings.warehouse}: overrides act on published "
                              "tiers")
    first_open = state.first_unpublished
    cust_type = published_customer_type(settings, cust_id, state.latest_month)
    if cust_type is None:
        raise OverrideRefused(f"customer {cust_id} is not in the latest release ({state.latest_month:%Y-%m})")
    ladder_name, codes = ladder_for(rules, cust_type)
    if tier not in codes:
        raise OverrideRefused(f"tier {tier} is not in {ladder_name} of customer {cust_id} (type {cust_type}): "
                              f"{', '.join(codes)}")
    start = max(from_month, first_open) if from_month else first_open
    if from_month and from_month > until:
        raise OverrideRefused(f"--from {from_month:%Y-%m} is after --until {until:%Y-%m}")
    if until < first_open:
        raise OverrideRefused(f"--until {until:%Y-%m} is already published (the first month not yet published "
                              f"is {first_open:%Y-%m})")
    limit = rules.overrides.max_override_months
    if months_between(start, until) > limit:
        raise OverrideRefused(f"--until {until:%Y-%m} is more than {limit} months (overrides.max_override_months "
                              f"in {rules.path.name}) from {start:%Y-%m}")

    def make(overrides: dict[str, Override], seq: int) -> Action:
        number = len(overrides) + 1
        return Action(seq, f"OVR-{number:04d}", "REQUEST", now_text(), by, reason, cust_id, cust_type, tier,
                      from_month.isoformat() if from_month else None, until.isoformat())

    return _append(settings, make)


def _pending(overrides: dict[str, Override], override_id: str) -> Override:
    item = overrides.get(override_id)
    if item is None:
        raise OverrideRefused(f"no override {override_id}")
    if item.status != "PENDING":
        raise OverrideRefused(f"{override_id} is {item.status.lower()} already "
                              f"(by {item.decided_by or item.revoked_by})")
    return item


def decide(settings: Settings, override_id: str, approve: bool, by: str, note: str = "") -> Action:
    """Approve or reject a pending request; the approver must not be its requester (four eyes)."""
    by = _who(by)
    rules = load_rules(settings.rules_path)
    state = published_state(settings)

    def make(overrides: dict[str, Override], seq: int) -> Action:
        item = _pending(overrides, override_id)
        if by == item.requested_by:
            raise OverrideRefused(f"{override_id} was requested by {by}; a second person must decide it")
        if not approve:
            return Action(seq, override_id, "REJECT", now_text(), by, (note or "").strip())
        first_open = state.first_unpublished
        start = max(item.requested_from, first_open) if item.requested_from else first_open
        if start > item.until:
            raise OverrideRefused(f"{override_id} ends {item.until:%Y-%m}, already published (the first "
                                  f"month not yet published is {first_open:%Y-%m}); reject it")
        ladder_name, codes = ladder_for(rules, item.cust_type)
        if item.tier not in codes:
            raise OverrideRefused(f"tier {item.tier} of {override_id} is no longer in {ladder_name}")
        limit = rules.overrides.max_override_months
        if months_between(start, item.until) > limit:
            raise OverrideRefused(f"{override_id} would hold more than {limit} months "
                                  "(overrides.max_override_months)")
        for other in overrides.values():
            if (other.override_id != override_id and other.cust_id == item.cust_id
                    and other.status in ("APPROVED", "REVOKED") and other.last_month() is not None
                    and other.first_month <= item.until and start <= other.last_month()):
                raise OverrideRefused(f"customer {item.cust_id} already has {other.override_id} "
                                      f"{other.first_month:%Y-%m} … {other.last_month():%Y-%m}: revoke it first")
        return Action(seq, override_id, "APPROVE", now_text(), by, (note or "").strip(),
                      from_month=start.isoformat())

    return _append(settings, make)


def revoke(settings: Settings, override_id: str, by: str, reason: str) -> Action:
    """End an approved override from the first month not yet published."""
    by, reason = _who(by), _text(reason, "--reason")
    state = published_state(settings)

    def make(overrides: dict[str, Override], seq: int) -> Action:
        item = overrides.get(override_id)
        if item is None:
            raise OverrideRefused(f"no override {override_id}")
        status = item.status_at(state.first_unpublished)
        if status != "APPROVED":
            raise OverrideRefused(f"{override_id} is {status.lower()}, not an approved override")
        ends_from = max(state.first_unpublished, item.first_month)
        return Action(seq, override_id, "REVOKE", now_text(), by, reason, from_month=ends_from.isoformat())

    return _append(settings, make)


def listing(settings: Settings, status: str | None = None) -> list[dict]:
    """Every override as a dict (status EXPIRED when its months are all published), optionally filtered."""
    first_unpublished = published_state(settings).first_unpublished
    rows = [item.as_dict(first_unpublished) for item in load_overrides(settings).values()]
    return [r for r in rows if status is None or r["status"] == status]


# --- the working-database copy --------------------------------------------------------------------------

def _create_snapshot_table(con, how: str) -> None:
    columns = ", ".join(f"{name} {kind}" for name, kind in SNAPSHOT_COLUMNS.items())
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SNAPSHOT_SCHEMA}")
    con.execute(f"{how} {SNAPSHOT_SCHEMA}.{SNAPSHOT_TABLE} ({columns})")


def ensure_snapshot_table(con) -> None:
    """An empty copy of the log when there is none yet (a working database dbt builds always has one)."""
    _create_snapshot_table(con, "CREATE TABLE IF NOT EXISTS")


def snapshot_into(con, settings: Settings) -> int:
    """Replace `overrides.tier_override_log` in the open working database with the log as it is now; return
    its rows. Called before every build (and the gate checks the build against this copy)."""
    actions = read_actions(settings)
    _create_snapshot_table(con, "CREATE OR REPLACE TABLE")
    rows = [(a.seq, a.override_id, a.action,
             dt.datetime.fromisoformat(a.acted_at).astimezone(SHANGHAI).replace(tzinfo=None), a.acted_by,
             a.cust_id, a.cust_type, a.tier, _date(a.from_month), _date(a.until_month), a.text)
            for a in actions]
    if rows:
        con.executemany(f"INSERT INTO {SNAPSHOT_SCHEMA}.{SNAPSHOT_TABLE} VALUES "
                        f"({', '.join(['?'] * len(SNAPSHOT_COLUMNS))})", rows)
    return len(rows)


__all__ = ["Action", "Override", "OverrideRefused", "decide", "fold", "listing", "load_overrides", "log_path",
           "request", "revoke", "snapshot_into"]
