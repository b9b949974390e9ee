"""Every command of the README that a consumer types (queries, `tiering explain|events|status|override list`)
runs as written against a real published warehouse, and so does the demo's "where to look" command.

The README's examples are from the demo (months 2026-07 … 2026-10); the session's warehouse holds 2026-01 …
2026-03, so their months are moved to 2026-03. The commands run from a folder laid out like the repository's:
`warehouse` and `demo/warehouse` are that warehouse, `.venv` this project's environment, and `tiering` is on
PATH as after `source .venv/bin/activate` (which the README asks for).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows.cli import where_to_look
from tests.support.isolation import settings_for

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
VENV_BIN = Path(sys.executable).parent
# Commands a consumer types to read: each is run. Everything else in the README writes (runs, overrides, a
# rollback, a server) and is covered by its own tests; a command in neither list fails the test, so a new README
# command cannot go untested by accident.
READ_COMMANDS = (".venv/bin/duckdb ", "tiering explain ", "tiering events ", "tiering status", "tiering override list")
WRITE_COMMANDS = ("make ", ".venv/bin/pytest ", ".venv/bin/prefect ", ".venv/bin/tiering serve ", "export ",
                  "tiering override request ", "tiering override approve ", "tiering override revoke ",
                  "tiering rollback ", "tiering run ", "tiering ingest ", "tiering backtest ")


@dataclass(frozen=True)
class Command:
    line: int
    shell: str
    stdin: str | None = None


def _logical_lines(block: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Shell lines of a block, joining `\\` continuations and double quotes left open across lines."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, text in block:
        if pending is None:
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            pending = (number, text)
        else:
            pending = (pending[0], pending[1] + "\n" + text)
        joined = pending[1]
        if joined.endswith("\\") or joined.count('"') % 2:
            continue
        out.append(pending)
        pending = None
    assert pending is None, f"README line {pending[0]}: unterminated command"
    return out


def readme_commands() -> list[Command]:
    """Shell commands of ```bash blocks and `$ ` lines of plain blocks; a ```sql block is the input of the
    interactive `duckdb` command just before it, or of the one its first comment names."""
    lines = README.read_text(encoding="utf-8").splitlines()
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        fence = lines[i]
        if not fence.startswith("```"):
            i += 1
            continue
        lang, start = fence[3:].strip(), i + 1
        i = start
        while not lines[i].startswith("```"):
            i += 1
        block = [(n + 1, lines[n]) for n in range(start, i)]
        i += 1
        if lang in ("bash", "sh"):
            commands += [Command(n, text) for n, text in _logical_lines(block)]
        elif lang == "":
            commands += [Command(n, text[2:]) for n, text in block if text.startswith("$ ")]
        elif lang == "sql":
            sql = "\n".join(text for _, text in block)
            named = re.search(r"(\.venv/bin/duckdb -readonly \S+)", block[0][1])
            if named:
                commands.append(Command(block[0][0], named.group(1), sql))
            elif commands and re.fullmatch(r"\.venv/bin/duckdb -readonly \S+", commands[-1].shell):
                commands[-1] = Command(commands[-1].line, commands[-1].shell, sql)
    return commands


def _moved_to_fixture_months(shell: str) -> str:
    shell = re.sub(r"2026-(0[789]|10)-3[01]", "2026-03-31", shell)
    return re.sub(r"2026-(0[789]|10)", "2026-03", shell)


@pytest.fixture(scope="module")
def repository_like_folder(published_warehouse, tmp_path_factory):
    _, warehouse, _ = published_warehouse
    root = tmp_path_factory.mktemp("readme")
    (root / "warehouse").symlink_to(warehouse)
    (root / "demo").mkdir()
    (root / "demo" / "warehouse").symlink_to(warehouse)
    (root / ".venv").symlink_to(VENV_BIN.parent)
    return root


def _run(shell: str, cwd: Path, stdin: str | None = None, path_prefix: bool = True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERING_WAREHOUSE")}
    if path_prefix:
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    return subprocess.run(["bash", "-c", shell], cwd=cwd, input=stdin, capture_output=True, text=True, env=env,
                          timeout=120)


def test_every_readme_command_is_classified_and_the_reading_ones_run(repository_like_folder):
    commands = readme_commands()
    unknown = [c for c in commands if not c.shell.startswith(READ_COMMANDS + WRITE_COMMANDS)]
    assert not unknown, f"README commands neither run here nor listed as writes: {unknown}"
    reads = [c for c in commands if c.shell.startswith(READ_COMMANDS)]
    # The README's query sections: the published database, the working database's audit, explain and the feed.
    assert len(reads) >= 8 and {c.shell.split()[1] for c in reads if c.shell.startswith("tiering")} >= {
        "explain", "events", "override"}
    assert any(c.stdin for c in reads), "the ```sql blocks are no longer attached to a duckdb command"
    for command in reads:
        shell = _moved_to_fixture_months(command.shell)
        done = _run(shell, repository_like_folder, command.stdin)
        assert done.returncode == 0, f"README line {command.line}: {shell!r} failed: {done.stderr[-800:]}"
        assert "Error" not in done.stderr, f"README line {command.line}: {done.stderr[-800:]}"
        assert done.stdout.strip(), f"README line {command.line}: {shell!r} printed nothing"


def test_the_demos_where_to_look_command_runs_as_printed(published_warehouse):
    """Printed by `make demo`, typed by a newcomer who has not activated the environment: no PATH help."""
    _, warehouse, as_of = published_warehouse
    text = where_to_look(settings_for(warehouse=warehouse), as_of)
    line = next(x for x in text.splitlines() if "published tiers" in x)
    shell = line.split("published tiers", 1)[1].strip()
    assert shlex.split(shell)[0].endswith("duckdb") and shlex.split(shell)[0] != "duckdb"
    done = _run(shell, Path.cwd(), path_prefix=False)
    assert done.returncode == 0, done.stderr
    assert "cust_id" in done.stdout and "value_tier" in done.stdout
