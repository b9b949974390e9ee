"""A local Spark Thrift server (HiveThriftServer2) for dbt-spark's `thrift` method, from the pip pyspark.

The pyspark wheel has no sbin/start-thriftserver.sh, but it ships the server's jar
(jars/spark-hive-thriftserver_2.13-*.jar) and bin/spark-submit, which is what that script runs:

    spark-submit --class org.apache.spark.sql.hive.thriftserver.HiveThriftServer2 --master local[2] \\
        --conf <catalog_conf: warehouse dir, Derby metastore, SQL semantics> ... \\
        --hiveconf hive.server2.thrift.port=<port> --hiveconf hive.server2.thrift.bind.host=127.0.0.1 \\
        spark-internal

The server holds the embedded Derby metastore under <spark_dir>/metastore for as long as it runs: Derby
admits one JVM, so this process must not start its own Spark session on that folder meanwhile.
Java ≥ 17 must be on PATH or in JAVA_HOME (bin/spark-class looks there; .ci/install-system-deps installs it).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from flows.adapters.local_server import _die_with
from flows.adapters.spark_engine import catalog_conf

SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
HOST = "127.0.0.1"
LOG_NAME = "thrift-server.log"
# Measured on 2 busy cores: 25–46 s to the open port (the first start also creates the Derby metastore).
DEFAULT_START_SECONDS = 180.0
STOP_SECONDS = 15.0


class ThriftServerError(RuntimeError):
    """The local Thrift server did not start (the message ends with its log's tail)."""


def spark_home() -> Path:
    """The pip pyspark's folder: bin/, jars/. Found without importing pyspark."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise ThriftServerError("pyspark is not installed (pip install '.[spark]')")
    return Path(next(iter(spec.submodule_search_locations)))


def server_command(spark_dir: Path, port: int, conf: Mapping[str, str] | None = None) -> list[str]:
    """The spark-submit command line of a server on HOST:port over the warehouse's Spark folder."""
    settings = {
        **catalog_conf(spark_dir, str(Path(spark_dir) / "warehouse")),
        "spark.master": "local[2]",
        "spark.app.name": "customer-tiering-thrift",
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "4",
        "spark.driver.memory": "1g",
        **(conf or {}),
    }
    command = [str(spark_home() / "bin" / "spark-submit"), "--class", SERVER_CLASS]
    for key, value in settings.items():
        command += ["--conf", f"{key}={value}"]
    # `spark-internal`: the primary resource start-thriftserver.sh passes (the class is in Spark's own jars).
    return command + ["--hiveconf", f"hive.server2.thrift.port={port}",
                      "--hiveconf", f"hive.server2.thrift.bind.host={HOST}", "spark-internal"]


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


def _tail(log: Path, lines: int = 25) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (spark-submit execs into the JVM, which may start helpers), then
    SIGKILL what is left after STOP_SECONDS."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextlib.contextmanager
def local_thrift_server(spark_dir: Path, port: int, conf: Mapping[str, str] | None = None,
                        start_seconds: float = DEFAULT_START_SECONDS) -> Iterator[subprocess.Popen]:
    """Run a Spark Thrift server on 127.0.0.1:`port` for the duration of the block; its log is
    <spark_dir>/thrift-server.log. Returns once the port accepts connections; raises ThriftServerError
    (with the log's tail) if the server exits or does not listen within `start_seconds`."""
    spark_dir = Path(spark_dir).resolve()
    spark_dir.mkdir(parents=True, exist_ok=True)
    log_path = spark_dir / LOG_NAME
    home = spark_home()
    # SPARK_HOME set: pyspark's bin/find-spark-home would otherwise ask whatever `python3` is on PATH.
    # SPARK_LOCAL_IP: the driver talks to itself on loopback, as the flow's session does.
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": HOST}
    with log_path.open("wb") as log:
        # Its own process group (killed whole on exit), and killed by the kernel if this process dies first.
        process = subprocess.Popen(server_command(spark_dir, port, conf), cwd=spark_dir, env=env,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=_die_with(os.getpid()))
    try:
        deadline = time.monotonic() + start_seconds
        while not _accepts(port):
            if process.poll() is not None:
                raise ThriftServerError(f"the Spark Thrift server exited with code {process.returncode} before "
                                        f"it listened on {HOST}:{port}; {log_path} ends with:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                raise ThriftServerError(f"the Spark Thrift server did not listen on {HOST}:{port} within "
                                        f"{start_seconds:g} s; {log_path} ends with:\n{_tail(log_path)}")
            time.sleep(0.25)
        yield process
    finally:
        _stop(process)
