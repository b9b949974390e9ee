"""SIGTERM ends a command as a SIGTERM stop (exit 143), even when it lands inside a running DuckDB query."""

from __future__ import annotations

import os
import signal
import threading

import duckdb

from flows import cli


def test_a_sigterm_during_a_query_exits_143_not_as_a_failure(monkeypatch, capsys) -> None:
    def long_query(args) -> int:
        # The signal arrives while DuckDB runs: DuckDB interrupts the query and raises its own RuntimeError.
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
        duckdb.sql("select count(*) from range(1000000000000) as a(i) where i % 7 = 3").fetchall()
        return 0

    monkeypatch.setitem(cli.COMMANDS, "status", long_query)
    monkeypatch.setattr(cli, "SIGTERM_RECEIVED", threading.Event())
    assert cli.main(["status"]) == 128 + signal.SIGTERM
    assert "tiering status: stopped by SIGTERM" in capsys.readouterr().err


def test_an_error_without_a_sigterm_is_still_a_failure(monkeypatch, capsys) -> None:
    def broken(args) -> int:
        raise RuntimeError("Query interrupted")

    monkeypatch.setitem(cli.COMMANDS, "status", broken)
    monkeypatch.setattr(cli, "SIGTERM_RECEIVED", threading.Event())
    assert cli.main(["status"]) == 1
    assert "tiering status: failed: Query interrupted" in capsys.readouterr().err
