"""A throwaway PostgreSQL cluster for tests, run from the Debian binaries (`/usr/lib/postgresql/<v>/bin`).

PostgreSQL refuses to run as root, so under uid 0 every server command runs as the `postgres` OS user
(`runuser`), with the cluster in a fresh /tmp directory owned by it (pytest's tmp dirs are 0700 root).
The server listens on 127.0.0.1 only, on a free port, with its socket in that directory; fsync is off
because the cluster dies with the test session.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from tests.support.isolation import free_port  # this pytest-xdist worker's port range

INSTALL_HINT = ("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
                "run .ci/install-system-deps")
ADMIN_USER = "tiering_admin"
ADMIN_PASSWORD = "admin-secret"
DATABASE = "tiering"
SERVER_USER = "postgres"  # the OS user that runs the server when the tests run as root


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


@dataclass(frozen=True)
class PostgresServer:
    """A running test cluster: connect with `url()` (the admin superuser unless told otherwise)."""

    host: str
    port: int
    data_dir: Path
    bin_dir: Path

    def url(self, user: str = ADMIN_USER, password: str = ADMIN_PASSWORD, database: str = DATABASE) -> str:
        credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"postgresql://{credentials}@{self.host}:{self.port}/{database}"


def find_bin_dir() -> Path:
    """The newest `/usr/lib/postgresql/<version>/bin` that has initdb and pg_ctl."""
    candidates = []
    for bin_dir in Path("/usr/lib/postgresql").glob("*/bin"):
        version = re.fullmatch(r"\d+", bin_dir.parent.name)
        if version and (bin_dir / "initdb").is_file() and (bin_dir / "pg_ctl").is_file():
            candidates.append((int(version.group()), bin_dir))
    if not candidates:
        raise PostgresUnavailable(INSTALL_HINT)
    return max(candidates)[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str]) -> None:
    done = subprocess.run(_as_server_user(cmd), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        output = done.stderr.strip() or done.stdout
        raise RuntimeError(f"{Path(cmd[0]).name} failed ({done.returncode}): {output}")


def _create_database(server: PostgresServer) -> None:
    import psycopg

    with psycopg.connect(server.url(database="postgres"), autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{DATABASE}"')


@contextlib.contextmanager
def running_postgres_server() -> Iterator[PostgresServer]:
    """Start a fresh cluster (initdb, pg_ctl start), yield it, then stop it and delete its files."""
    bin_dir = find_bin_dir()
    base = Path(tempfile.mkdtemp(prefix="tiering-pg-"))
    data_dir, log_file = base / "data", base / "server.log"
    try:
        password_file = base / "admin.pw"
        password_file.write_text(ADMIN_PASSWORD + "\n")
        if os.geteuid() == 0:
            owner = pwd.getpwnam(SERVER_USER)
            for path in (base, password_file):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        _run([str(bin_dir / "initdb"), "-D", str(data_dir), "-U", ADMIN_USER, f"--pwfile={password_file}",
              "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"])
        options = f"-F -h 127.0.0.1 -k {base} -c full_page_writes=off -c synchronous_commit=off"
        server = None
        for _attempt in range(3):  # the free port can be taken between the probe and the start
            port = free_port()
            try:
                _run([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-l", str(log_file), "-w", "-t", "60",
                      "-o", f"{options} -p {port}", "start"])
            except RuntimeError:
                continue
            server = PostgresServer(host="127.0.0.1", port=port, data_dir=data_dir, bin_dir=bin_dir)
            break
        if server is None:
            tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            raise RuntimeError(f"the test PostgreSQL server did not start: {tail}")
        try:
            _create_database(server)
            yield server
        finally:
            _run([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(base, ignore_errors=True)
