"""Parse once (issue 10): `as_of` becomes a date where it comes in and one Settings object carries every
path of a run, from the CLI (or the monthly deployment's flow) through the parent flow to the subflows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flows.settings import Settings

URL = "postgresql://pub:s3cret@127.0.0.1:1/bi"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TIERING_* variable of the machine running the tests."""
    for key in [k for k in os.environ if k.startswith("TIERING_")]:
        monkeypatch.delenv(key)


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
    from flows.lib import raw_zone
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
