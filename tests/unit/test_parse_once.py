"""Parse once (issue 10): `as_of` becomes a date where it comes in and one Settings object carries every
path of a run, from the CLI (or the monthly deployment's flow) through the parent flow to the subflows."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

import flows  # noqa: F401  (no-telemetry environment before Prefect loads)
from flows.cli import main
from flows.settings import Settings

AS_OF = dt.date(2026, 10, 31)
URL = "postgresql://pub:s3cret@127.0.0.1:1/bi"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TIERING_* variable of the machine running the tests."""
    for key in [k for k in os.environ if k.startswith("TIERING_")]:
        monkeypatch.delenv(key)


# ---------------------------------------------------------------------------------------------- as_of


@pytest.mark.parametrize("command", [["run", "--landing", "x"], ["explain", "C1"], ["backtest", "--rules", "r.yml"]])
@pytest.mark.parametrize(("text", "message"), [
    ("2026-03-15", "as-of 2026-03-15 is not a month's last day: did you mean 2026-03-31?"),
    ("March", "as-of 'March' is not a date: use the month's last day, e.g. 2026-03-31"),
])
def test_the_cli_refuses_a_bad_as_of_with_the_parsers_one_line(capsys, command, text, message):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--as-of", text])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"tiering {command[0]}: error: argument --as-of: {message}"


def test_run_hands_its_own_date_and_settings_to_the_parent_flow(monkeypatch, tmp_path: Path, clean_env):
    from flows import cli

    calls = []
    monkeypatch.setattr(cli, "_prefect_api", lambda _timeout: contextlib.nullcontext())
    monkeypatch.setattr(cli, "_run_month", lambda *args, **kwargs: calls.append(args))
    monkeypatch.setattr(cli, "print_tier_summary", lambda *_args: None)
    (tmp_path / "landing").mkdir()
    assert main(["run", "--landing", str(tmp_path / "landing"), "--as-of", "2026-10",
                 "--warehouse", str(tmp_path / "wh")]) == 0
    ((landing, as_of, settings, force, full_refresh),) = calls
    assert type(as_of) is dt.date and as_of == AS_OF
    assert settings == Settings.from_env(warehouse=tmp_path / "wh")
    assert (landing, force, full_refresh) == (tmp_path / "landing", False, False)


def test_the_parent_flow_passes_the_date_and_its_settings_object_to_every_subflow(monkeypatch, tmp_path: Path):
    """Every subflow gets `as_of` (and the months of the plan) as dates, and the very Settings object."""
    from flows import pipeline
    from flows.stages.gate_checks import GateResult
    from flows.stages.publishing import Release

    received: dict[str, list[dict]] = {}

    def fake(name, result=None):
        def subflow(**kwargs):
            received.setdefault(name, []).append(kwargs)
            return result(kwargs) if result else None
        return subflow

    monkeypatch.setattr(pipeline, "get_run_logger", lambda: logging.getLogger("test"))
    monkeypatch.setattr(pipeline, "record_month_publication", lambda *args: None)
    monkeypatch.setattr(pipeline, "ingest_flow", fake("ingest"))
    monkeypatch.setattr(pipeline, "build_flow", fake("build"))
    monkeypatch.setattr(pipeline, "gate_flow", fake("gate", lambda kw: GateResult(
        gate_run_id=f"gate-{kw['as_of']:%Y-%m}", as_of_month=kw["as_of"], started_at=None, finished_at=None,
        rules_version="test", results=[])))
    monkeypatch.setattr(pipeline, "publish_flow", fake("publish", lambda kw: Release(
        "release-1", kw["as_of"], None, "", "", "", "", {}, Path("published.duckdb"))))
    monkeypatch.setattr(pipeline, "report_flow", fake("report", lambda kw: SimpleNamespace(path=tmp_path / "index.html")))
    settings = Settings(warehouse=tmp_path / "wh")

    pipeline.tiering_run.fn(landing="landing", as_of=AS_OF, settings=settings)

    assert set(received) == {"ingest", "build", "gate", "publish", "report"}
    for name, calls in received.items():
        for kwargs in calls:
            assert kwargs["settings"] is settings, name
            for key in ("as_of", "through"):
                if key in kwargs:
                    assert type(kwargs[key]) is dt.date and kwargs[key] == AS_OF, (name, key)
    assert received["build"][0]["months"] == [AS_OF]  # a new warehouse: the plan builds the month itself
    assert received["publish"][0]["gate_runs"] == {AS_OF: "gate-2026-10"}
    assert received["publish"][0]["months"] == [AS_OF]
    assert received["report"][0]["gate_run_id"] == "gate-2026-10"


def test_prefect_hands_each_subflow_the_date_and_the_same_settings_object(monkeypatch, tmp_path: Path):
    """Prefect validates a subflow's parameters before the call and stores them serialised: a date stays
    a date, the Settings object is passed as is, and what Prefect stores (and the UI shows) holds the paths
    but never the PostgreSQL URL, which may carry a password."""
    from flows.stages.build import build_flow
    from flows.stages.gate import gate_flow
    from flows.stages.ingest import ingest_flow
    from flows.stages.publish import publish_flow
    from flows.stages.report import report_flow

    monkeypatch.setenv("TIERING_PUBLISH_POSTGRES", URL)
    settings = Settings(warehouse=tmp_path / "wh")
    assert settings.publish_postgres == URL
    calls = [
        (ingest_flow, {"landing": "landing", "settings": settings, "through": AS_OF}),
        (build_flow, {"months": [AS_OF], "settings": settings, "inputs_loaded_at": {AS_OF: None}}),
        (gate_flow, {"as_of": AS_OF, "settings": settings}),
        (publish_flow, {"as_of": AS_OF, "settings": settings, "gate_runs": {AS_OF: "g"}, "months": [AS_OF]}),
        (report_flow, {"as_of": AS_OF, "settings": settings, "gate_run_id": "g"}),
    ]
    for subflow, parameters in calls:
        validated = subflow.validate_parameters(parameters)
        assert validated["settings"] is settings, subflow.name
        assert {key: validated[key] for key in parameters} == parameters, subflow.name
        stored = subflow.serialize_parameters(validated)
        assert stored["settings"]["warehouse"] == str(settings.warehouse), subflow.name
        assert "s3cret" not in repr(stored), subflow.name
    assert gate_flow.serialize_parameters({"as_of": AS_OF})["as_of"] == "2026-10-31"


def test_the_monthly_deployment_parses_as_of_and_builds_the_one_settings_object(monkeypatch, tmp_path, clean_env):
    from prefect.exceptions import ParameterTypeError

    from flows import deployments

    flow = deployments.monthly_tiering_run
    assert flow.validate_parameters({"landing": "l", "as_of": "2026-10"})["as_of"] == AS_OF
    assert flow.validate_parameters({"landing": "l", "as_of": "2026-10-31"})["as_of"] == AS_OF
    assert flow.validate_parameters({"landing": "l"}).get("as_of") is None  # the scheduled run's default
    with pytest.raises(ParameterTypeError, match="as-of 2026-10-15 is not a month's last day: did you mean "
                                                 "2026-10-31?"):
        flow.validate_parameters({"landing": "l", "as_of": "2026-10-15"})

    calls = []

    class Run:
        @staticmethod
        def fn(**kwargs):
            calls.append(kwargs)

    monkeypatch.setattr(deployments, "tiering_run", Run)
    flow.fn(landing="l", as_of=AS_OF, warehouse=str(tmp_path / "wh"), rules=None)
    ((kwargs),) = calls
    assert kwargs["as_of"] == AS_OF and kwargs["settings"] == Settings.from_env(warehouse=tmp_path / "wh")


# ---------------------------------------------------------------------------------------------- Settings


def test_settings_name_every_path_of_the_warehouse(tmp_path: Path):
    settings = Settings(warehouse=tmp_path / "wh")
    wh = (tmp_path / "wh").resolve()
    assert {
        "working_db": settings.working_db,
        "published_db": settings.published_db,
        "raw_dir": settings.raw_dir,
        "releases_dir": settings.releases_dir,
        "exports_dir": settings.exports_dir,
        "restricted_dir": settings.restricted_dir,
        "restricted_db": settings.restricted_db,
        "restricted_releases_dir": settings.restricted_releases_dir,
        "reports_dir": settings.reports_dir,
        "restricted_reports_dir": settings.restricted_reports_dir,
        "backtests_dir": settings.backtests_dir,
        "lock_file": settings.lock_file,
        "temp_dir": settings.temp_dir,
    } == {
        "working_db": wh / "tiering.duckdb",
        "published_db": wh / "published.duckdb",
        "raw_dir": wh / "raw",
        "releases_dir": wh / "releases",
        "exports_dir": wh / "exports",
        "restricted_dir": wh / "restricted",
        "restricted_db": wh / "restricted" / "aml.duckdb",
        "restricted_releases_dir": wh / "restricted" / "releases",
        "reports_dir": wh / "reports",
        "restricted_reports_dir": wh / "restricted" / "reports",
        "backtests_dir": wh / "backtests",
        "lock_file": wh / ".tiering.lock",
        "temp_dir": wh / "tmp",
    }
    # The modules that work from a bare warehouse folder agree with Settings.
    from flows.stages import raw_zone
    from flows.warehouse_lock import lock_path

    assert raw_zone.raw_root(settings.warehouse) == settings.raw_dir
    assert lock_path(settings.warehouse) == settings.lock_file


def test_two_settings_of_one_warehouse_agree(monkeypatch, tmp_path: Path, clean_env):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "other").mkdir()
    built = [Settings.from_env(warehouse="wh"), Settings.from_env(warehouse=tmp_path / "other" / ".." / "wh"),
             Settings(warehouse=tmp_path / "wh")]
    monkeypatch.setenv("TIERING_WAREHOUSE", "wh")
    built.append(Settings.from_env())
    first = built[0]
    assert first.warehouse == (tmp_path / "wh").resolve() and first.warehouse.is_absolute()
    for other in built[1:]:
        assert other == first and hash(other) == hash(first)
        assert other.restricted_db == first.restricted_db and other.duckdb_config() == first.duckdb_config()
    assert Settings.from_env(warehouse=tmp_path / "elsewhere") != first


def test_the_postgres_url_is_read_from_the_environment_and_never_shown(monkeypatch, tmp_path: Path):
    from dataclasses import asdict

    monkeypatch.delenv("TIERING_PUBLISH_POSTGRES", raising=False)
    settings = Settings.from_env(warehouse=tmp_path)
    assert settings.publish_postgres is None
    monkeypatch.setenv("TIERING_PUBLISH_POSTGRES", URL)
    assert settings.publish_postgres == URL
    assert "s3cret" not in repr(settings) and "s3cret" not in repr(asdict(settings))
