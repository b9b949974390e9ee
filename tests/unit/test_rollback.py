"""Rollback of the published release: a kept earlier release becomes current again in both catalogs and the
`exports` link, atomically, audited in release_log; refused (nothing changed) when it cannot or should not."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from flows.commands import rollback as rollback_module
from flows.commands.rollback import RollbackFailed, RollbackRefused, RollbackResult, rollback_release
from flows.stages.publishing import AML_TABLES, PUBLISHED_TABLES
from tests.support.isolation import settings_for
from tests.unit import test_publishing
from tests.unit.test_publishing import (
    AUG,
    FIRST,
    GATE,
    NOV,
    OCT,
    SEP,
    marts,
    publish,
    query,
    read_in_new_process,
    restate_september_and_add_a_customer,
    snapshot,
    view,
    working,
)

# test_publishing's fixtures: a small working database (a few customers, 2026-08 … 2026-11), with AML marts.
warehouse = test_publishing.warehouse
aml_warehouse = test_publishing.aml_warehouse
_no_postgres = test_publishing._no_postgres

RULES = "2026.11.1"  # the rules version the working marts (and so every release) carry


def served(warehouse: Path) -> dict[str, list]:
    """What consumers see: every view and release_months of both catalogs, and the exports link."""
    published, restricted = warehouse / "published.duckdb", warehouse / "restricted" / "aml.duckdb"
    state = {t: view(published, t) for t in PUBLISHED_TABLES}
    state["release_months"] = query(published, "SELECT * FROM release_months ORDER BY table_name, as_of_month")
    state["exports"] = os.readlink(warehouse / "exports")
    if restricted.exists():
        state |= {t: view(restricted, t) for t in AML_TABLES}
        state["aml release_months"] = query(restricted, "SELECT * FROM release_months "
                                                        "ORDER BY table_name, as_of_month")
    return state


def release_log(db: Path) -> list[tuple]:
    return query(db, "SELECT release_id, action, rolled_back_from, months_published FROM release_log "
                     "ORDER BY published_at")


def current_release(db: Path) -> str:
    return query(db, "SELECT release_id FROM release_log ORDER BY published_at DESC LIMIT 1")[0][0]


def test_rollback_to_the_previous_release_serves_it_everywhere_and_is_audited(aml_warehouse: Path) -> None:
    first = publish(aml_warehouse, *FIRST)
    as_first = served(aml_warehouse)
    restate_september_and_add_a_customer(aml_warehouse)
    second = publish(aml_warehouse, SEP, NOV)
    assert served(aml_warehouse) != as_first

    result = rollback_release(settings_for(warehouse=aml_warehouse), first.release_id, RULES)

    published, restricted = aml_warehouse / "published.duckdb", aml_warehouse / "restricted" / "aml.duckdb"
    assert isinstance(result, RollbackResult)
    assert (result.release_id, result.rolled_back_from, result.as_of_month) == (
        first.release_id, second.release_id, date(2026, 10, 31))
    assert (result.rules_version, result.forced) == (RULES, False)
    assert result.row_counts == first.row_counts and result.restricted_row_counts == first.restricted_row_counts
    assert result.restricted_db == restricted and result.release_dir == first.release_dir
    assert "\n" not in result.summary
    assert result.summary.startswith(f"rolled back to release {first.release_id} (2026-10, rules {RULES}) "
                                     f"from release {second.release_id}")
    # Views, release_months (writers and gate runs of every month, files of the first release), restricted
    # release and exports: exactly as when the first release was current.
    assert served(aml_warehouse) == as_first
    assert read_in_new_process(published, "SELECT count(*) FROM customer_segment") == [[3 + 4 + 5]]
    assert {p.name for p in (aml_warehouse / "exports" / "customer_segment").iterdir()} == {
        f"as_of_month={m}" for m in FIRST}
    # Audited in both catalogs: a new latest row naming the release it replaced.
    for db in (published, restricted):
        assert release_log(db) == [
            (first.release_id, "publish", None, "2026-08-31,2026-09-30,2026-10-31"),
            (second.release_id, "publish", None, "2026-09-30,2026-11-30"),
            (first.release_id, "rollback", second.release_id, None)], db
        assert current_release(db) == first.release_id
    audit = query(published, "SELECT as_of_month, published_at, rules_version, gate_run_id, customer_segment_rows, "
                             "restated_months, month_gate_runs FROM release_log WHERE action = 'rollback'")
    assert audit == [(date(2026, 10, 31), result.rolled_back_at, RULES, GATE[OCT], 12, None, None)]
    assert result.rolled_back_at > second.published_at
    # Nothing deleted (rolling forward undoes it), nothing temporary left, restricted modes kept.
    assert {p.name for p in (aml_warehouse / "releases").iterdir()} == {first.release_id, second.release_id}
    assert {p.name for p in (aml_warehouse / "restricted" / "releases").iterdir()} == {
        first.release_id, second.release_id}
    assert sorted(p.name for p in aml_warehouse.iterdir()) == [
        "exports", "published.duckdb", "releases", "restricted", "tiering.duckdb"]
    assert sorted(p.name for p in restricted.parent.iterdir()) == ["aml.duckdb", "releases"]
    for path in [restricted.parent, *restricted.parent.rglob("*")]:
        assert (path.stat().st_mode & 0o777) == (0o700 if path.is_dir() else 0o600), path


def test_a_rollback_is_undone_by_rolling_forward_and_the_next_publication_builds_on_it(warehouse: Path) -> None:
    first = publish(warehouse, *FIRST)
    as_first = served(warehouse)
    restate_september_and_add_a_customer(warehouse)
    second = publish(warehouse, SEP, NOV)
    as_second = served(warehouse)
    rollback_release(settings_for(warehouse=warehouse), first.release_id, RULES)
    rollback_release(settings_for(warehouse=warehouse), second.release_id, RULES)  # undone
    assert served(warehouse) == as_second
    rollback_release(settings_for(warehouse=warehouse), first.release_id, RULES)
    assert served(warehouse) == as_first

    # The next publication starts from the rolled-back-to release: its months are hard-linked, only the
    # new month is written; the release rolled back from is then the one too old to keep.
    third = publish(warehouse, NOV)
    assert third.restated_months == [] and third.row_counts["customer_segment"] == 3 + 4 + 5 + 6
    published = warehouse / "published.duckdb"
    assert view(published, "customer_segment") == as_first["customer_segment"] + marts(
        warehouse, "customer_segment", (NOV,))
    for table in PUBLISHED_TABLES:
        for month in FIRST:
            name = f"{table}/as_of_month={month}/data.parquet"
            assert (third.release_dir / name).stat().st_ino == (first.release_dir / name).stat().st_ino
    writers = query(published, "SELECT as_of_month, release_id, gate_run_id FROM release_months "
                               "WHERE table_name = 'customer_segment' ORDER BY as_of_month")
    assert writers == [(date.fromisoformat(m), first.release_id, GATE[m]) for m in FIRST] + [
        (date(2026, 11, 30), third.release_id, GATE[NOV])]
    assert {p.name for p in (warehouse / "releases").iterdir()} == {first.release_id, third.release_id}
    assert [(r, a) for r, a, *_ in release_log(published)] == [
        (first.release_id, "publish"), (second.release_id, "publish"), (first.release_id, "rollback"),
        (second.release_id, "rollback"), (first.release_id, "rollback"), (third.release_id, "publish")]
    assert query(published, "SELECT rolled_back_from, month_gate_runs FROM release_log WHERE release_id = ?",
                 [third.release_id]) == [(None, f"{NOV}={GATE[NOV]}")]


def test_another_rules_version_is_refused_unless_forced(warehouse: Path) -> None:
    working(warehouse, "UPDATE main_marts.customer_segment SET rules_version = '2026.10.1'")
    first = publish(warehouse, *FIRST)
    working(warehouse, f"UPDATE main_marts.customer_segment SET rules_version = '{RULES}'")
    publish(warehouse, NOV)
    before = snapshot(warehouse)
    with pytest.raises(RollbackRefused, match=f"^release {first.release_id} was built with rules version "
                                              f"2026.10.1, the active rules file is version {RULES}: use "
                                              "--force to roll back to it anyway$"):
        rollback_release(settings_for(warehouse=warehouse), first.release_id, RULES)
    assert snapshot(warehouse) == before

    result = rollback_release(settings_for(warehouse=warehouse), first.release_id, RULES, force=True)
    assert result.forced and result.rules_version == "2026.10.1"
    assert f"rules 2026.10.1, forced: the active rules are {RULES}" in result.summary
    assert current_release(warehouse / "published.duckdb") == first.release_id


def test_refusals_change_nothing(aml_warehouse: Path) -> None:
    def refused(release_id: str, message: str, error: type[Exception] = RollbackRefused) -> None:
        before = snapshot(aml_warehouse)
        with pytest.raises(error, match=message):
            rollback_release(settings_for(warehouse=aml_warehouse), release_id, RULES)
        assert snapshot(aml_warehouse) == before

    refused("r1", "^nothing is published in .*: there is no release to roll back to$")
    first = publish(aml_warehouse, AUG, SEP)
    second = publish(aml_warehouse, OCT)
    third = publish(aml_warehouse, NOV)  # the first release's folders are gone now
    refused("no-such-release", "^unknown release no-such-release: it is not in published.duckdb's release_log$")
    refused(third.release_id, f"^release {third.release_id} \\(2026-11\\) is already current: nothing to roll "
                              "back$")
    refused(first.release_id, f"^release {first.release_id}'s files were removed \\(only the current and "
                              "previous releases are kept\\): cannot roll back to it$")
    # Files that do not hold what release_log says (here: a month's file lost) are not served.
    lost = second.release_dir / f"tier_summary/as_of_month={AUG}/data.parquet"
    kept = lost.read_bytes()
    lost.unlink()
    refused(second.release_id, f"^release {second.release_id}'s tier_summary files hold \\d+ rows, its "
                               "release_log row says \\d+: cannot roll back to it$", RollbackFailed)
    lost.write_bytes(kept)
    shutil.rmtree(aml_warehouse / "restricted" / "releases" / second.release_id)
    refused(second.release_id, f"^release {second.release_id}'s restricted AML files were removed \\(only the "
                               "current and previous releases are kept\\): cannot roll back to it$")


def test_a_failure_at_any_step_leaves_everything_byte_for_byte(
        aml_warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = publish(aml_warehouse, *FIRST)
    second = publish(aml_warehouse, NOV)
    before, as_second = snapshot(aml_warehouse), served(aml_warehouse)
    real_replace = os.replace

    def check(*args, **kwargs):
        raise OSError("disk full")

    # The catalog is built and its verification fails; the restricted catalog, the main one or the exports
    # link cannot be replaced (the catalogs replaced before are put back).
    for failing in ("build", "aml.duckdb", "published.duckdb", "exports"):
        if failing == "build":
            monkeypatch.setattr(rollback_module, "_check_catalog", check)
        else:
            def replace(src, dst, *args, failing=failing, **kwargs):
                if Path(dst).name == failing:
                    raise OSError("I/O error")
                return real_replace(src, dst, *args, **kwargs)

            monkeypatch.setattr(os, "replace", replace)
        with pytest.raises(RollbackFailed, match=f"^rollback to release {first.release_id} failed, "
                                                 "published.duckdb unchanged: (disk full|I/O error)$"):
            rollback_release(settings_for(warehouse=aml_warehouse), first.release_id, RULES)
        monkeypatch.undo()
        assert snapshot(aml_warehouse) == before, failing
        assert served(aml_warehouse) == as_second, failing
        assert current_release(aml_warehouse / "restricted" / "aml.duckdb") == second.release_id, failing
    rollback_release(settings_for(warehouse=aml_warehouse), first.release_id, RULES)  # and then it works
    assert current_release(aml_warehouse / "published.duckdb") == first.release_id


def test_a_catalog_published_before_release_log_had_action_columns(aml_warehouse: Path) -> None:
    """Catalogs written by the previous version (no action, rolled_back_from, month_gate_runs) roll back and
    publish on: their rows read as publications."""
    first = publish(aml_warehouse, *FIRST)
    as_first = served(aml_warehouse)
    restate_september_and_add_a_customer(aml_warehouse)
    second = publish(aml_warehouse, SEP, NOV)
    for db in (aml_warehouse / "published.duckdb", aml_warehouse / "restricted" / "aml.duckdb"):
        mode = db.stat().st_mode
        con = duckdb.connect(str(db))
        for column in ("action", "rolled_back_from", "month_gate_runs"):
            con.execute(f"ALTER TABLE release_log DROP COLUMN {column}")
        con.close()
        os.chmod(db, mode)

    rollback_release(settings_for(warehouse=aml_warehouse), first.release_id, RULES)
    now = served(aml_warehouse)
    # September was restated by the second release: which gate run passed the first release's September
    # is written nowhere an old catalog kept it (the newer ones log it in month_gate_runs).
    for key in ("release_months", "aml release_months"):
        gate_lost = [r[:3] + (None,) + r[4:] if (r[1], r[2]) == (date(2026, 9, 30), first.release_id) else r
                     for r in as_first[key]]
        assert now[key] == gate_lost, key
    assert {k: v for k, v in now.items() if "release_months" not in k} == {
        k: v for k, v in as_first.items() if "release_months" not in k}
    published = aml_warehouse / "published.duckdb"
    assert release_log(published) == [
        (first.release_id, "publish", None, "2026-08-31,2026-09-30,2026-10-31"),
        (second.release_id, "publish", None, "2026-09-30,2026-11-30"),
        (first.release_id, "rollback", second.release_id, None)]
    third = publish(aml_warehouse, NOV)
    assert current_release(published) == third.release_id
    assert view(published, "customer_segment") == as_first["customer_segment"] + marts(
        aml_warehouse, "customer_segment", (NOV,))
    restricted = aml_warehouse / "restricted" / "aml.duckdb"
    assert view(restricted, "aml_customer_risk") == as_first["aml_customer_risk"] + marts(
        aml_warehouse, "aml_customer_risk", (NOV,))


def test_the_cli_rolls_back_under_the_warehouse_lock_and_status_says_so(warehouse: Path, capsys) -> None:
    from flows.cli import main

    first = publish(warehouse, *FIRST)
    restate_september_and_add_a_customer(warehouse)
    second = publish(warehouse, SEP, NOV)
    assert main(["rollback", "--to", "no-such-release", "--warehouse", str(warehouse)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tiering rollback: failed: ") and "no-such-release" in err and err.count("\n") == 1
    assert current_release(warehouse / "published.duckdb") == second.release_id

    assert main(["rollback", "--to", first.release_id, "--warehouse", str(warehouse)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"rolled back to release {first.release_id} (2026-10, rules {RULES})")
    assert re.search(r" at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(Asia/Shanghai, UTC\+08:00\): ", out), out
    assert current_release(warehouse / "published.duckdb") == first.release_id
    assert main(["status", "--warehouse", str(warehouse)]) == 0
    out = capsys.readouterr().out
    assert "last release: 2026-10 made current again by a rollback at " in out
    assert f"(Asia/Shanghai, UTC+08:00), replacing {second.release_id} ({first.release_id}, rules {RULES}" in out
    assert f'"pid": {os.getpid()},' in (warehouse / ".tiering.lock").read_text()  # it held the warehouse lock
    # The README's query of release_log, with the duckdb command installed beside the project.
    shown = subprocess.run([str(Path(sys.executable).parent / "duckdb"), "-readonly", "-csv",
                            str(warehouse / "published.duckdb"),
                            "select release_id, as_of_month, published_at, action, rules_version from release_log "
                            "order by published_at"], capture_output=True, text=True, check=True).stdout
    assert shown.splitlines()[-1].startswith(f"{first.release_id},2026-10-31,") and ",rollback," in shown
