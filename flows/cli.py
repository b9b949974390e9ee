"""The `tiering` command: generate sample extracts, ingest, run a month, run the demo."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import shlex
import signal
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import flows  # noqa: F401  (sets the no-telemetry environment before anything else loads)
from flows.commands import preflight
from flows.months import BANK_TIMEZONE, complete_months, month_end, parse_as_of, parse_date, schedule_text
from flows.overrides import OverrideRefused
from flows.reports.progress import terminal_progress
from flows.settings import POSTGRES_ENV, Settings
from flows.warehouse_lock import WarehouseBusy, warehouse_lock

EXAMPLES = textwrap.dedent("""\
    examples:
      tiering generate --out landing --customers 20000 --start 2026-07-01 --end 2026-10-31
      tiering ingest --landing landing
      tiering run --landing landing --as-of 2026-10-31
      tiering explain C0000000105 --as-of 2026-10-31
      tiering backtest --rules candidate.yml --as-of 2026-10-31
      tiering status --landing landing
      tiering rollback --to <release_id from release_log>
      tiering override request C0000000105 --tier BLACK --until 2026-12 --reason '战略客户' --by alice
      tiering override approve OVR-0001 --by bob
      tiering events --as-of 2026-10 --branch B001
      tiering serve --landing landing --warehouse warehouse   (needs PREFECT_API_URL, see README)
      tiering demo
      .venv/bin/duckdb -readonly warehouse/published.duckdb "from tier_summary"   (the DuckDB CLI, installed with tiering)
    """)


def _argument(parse):
    """Wrap a parser so argparse shows its message (argparse hides a plain ValueError's text)."""

    def wrapped(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    wrapped.__name__ = parse.__name__
    return wrapped


_as_of_arg, _date_arg = _argument(parse_as_of), _argument(parse_date)
WAIT_HELP = ("if another run holds the warehouse, wait for it to end (default: refuse at once, naming the "
             "holder)")
POSTGRES_HELP = ("also publish the release to PostgreSQL, e.g. postgresql://tiering@db.example/bi "
                 "(default: $TIERING_PUBLISH_POSTGRES; keep the password in ~/.pgpass or $PGPASSWORD)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tiering", description="Customer tiering pipeline for banks (客户分层).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str, example: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=help_, epilog=f"example:\n  {example}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    warehouse_help = "warehouse folder (default: $TIERING_WAREHOUSE or ./warehouse)"

    gen = add("generate", "write sample core-banking extract batches per the extract spec",
              "tiering generate --out landing --customers 20000 --start 2026-07-01 --end 2026-10-31")
    gen.add_argument("--out", required=True, type=Path, help="landing folder to write batches into")
    gen.add_argument("--customers", required=True, type=int, help="number of customers")
    gen.add_argument("--start", required=True, type=_date_arg, help="first business date (YYYY-MM-DD)")
    gen.add_argument("--end", required=True, type=_date_arg, help="last business date (YYYY-MM-DD)")
    gen.add_argument("--seed", type=int, default=42, help="random seed (same seed, same files; default 42)")
    gen.add_argument("--encoding", default="GBK", choices=["GBK", "UTF-8"], help="file encoding (default GBK)")

    ing = add("ingest", "load every complete, not yet loaded batch from a landing folder",
              "tiering ingest --landing landing --date 2026-07-01 --force")
    ing.add_argument("--landing", required=True, type=Path, help="landing folder with <YYYYMMDD>/ batches")
    ing.add_argument("--date", type=_date_arg, help="only this business date")
    ing.add_argument("--force", action="store_true", help="replace a loaded date whose content changed")
    ing.add_argument("--warehouse", help=warehouse_help)
    ing.add_argument("--wait", action="store_true", help=WAIT_HELP)

    run = add("run", "ingest pending batches, build, gate and publish one month",
              "tiering run --landing landing --as-of 2026-10-31")
    run.add_argument("--landing", required=True, type=Path, help="landing folder with <YYYYMMDD>/ batches")
    run.add_argument("--as-of", required=True, type=_as_of_arg, help="the month's last day (or YYYY-MM)")
    run.add_argument("--warehouse", help=warehouse_help)
    run.add_argument("--rules", type=Path, help="rules file (default rules/tiering_rules.yml)")
    run.add_argument("--force", action="store_true", help="replace loaded dates whose content changed "
                     "(the next run restates every month from the first replaced date's month on)")
    run.add_argument("--full-refresh", action="store_true",
                     help="rebuild every evaluated month up to --as-of from raw (normally a run builds only the "
                          "months whose batches changed)")
    run.add_argument("--publish-postgres", metavar="URL", help=POSTGRES_HELP)
    run.add_argument("--wait", action="store_true", help=WAIT_HELP)

    srv = add("serve", "register the daily-ingest (02:00 Asia/Shanghai) and monthly (06:00 Asia/Shanghai on the 1st) "
              "deployments with the Prefect server at $PREFECT_API_URL and run them when due",
              "PREFECT_API_URL=http://127.0.0.1:4200/api tiering serve --landing landing --warehouse warehouse")
    srv.add_argument("--landing", required=True, type=Path, help="landing folder with <YYYYMMDD>/ batches")
    srv.add_argument("--warehouse", help=warehouse_help)
    srv.add_argument("--rules", type=Path, help="rules file (default rules/tiering_rules.yml)")
    srv.add_argument("--publish-postgres", metavar="URL", help=POSTGRES_HELP)

    demo = add("demo", "generate a sample (about 20 k customers, 4 months) and run every complete month",
               "tiering demo --dir demo --customers 20000 --months 4")
    demo.add_argument("--dir", type=Path, default=Path("demo"), help="demo folder (default ./demo)")
    demo.add_argument("--customers", type=int, default=20_000, help="customers (default 20000)")
    demo.add_argument("--start", type=_date_arg, default=dt.date(2026, 7, 1),
                      help="first day of the sample (default 2026-07-01)")
    demo.add_argument("--months", type=int, default=4, help="months of data (default 4)")
    demo.add_argument("--seed", type=int, default=42, help="random seed (default 42)")

    exp = add("explain", "why a customer has its published tier and classes (PIPL art. 24), with evidence",
              "tiering explain C0000000042 --as-of 2026-10 --json")
    exp.add_argument("cust_id", help="customer id")
    exp.add_argument("--as-of", type=_as_of_arg, help="evaluated month (default: the latest published)")
    exp.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    exp.add_argument("--aml", action="store_true",
                     help="also show AML risk and its trigger transactions (AML staff: reads restricted/aml.duckdb)")
    exp.add_argument("--warehouse", help=warehouse_help)

    st = add("status", "show loaded batches, failed or pending ones, the last gate run and the last release",
             "tiering status --landing landing --warehouse warehouse")
    st.add_argument("--landing", type=Path, help="landing folder: also list batches not loaded yet")
    st.add_argument("--warehouse", help=warehouse_help)

    bt = add("backtest", "evaluate a candidate rules file on a published month: who would move between "
             "tiers and classes (nothing is published)",
             "tiering backtest --rules candidate.yml --as-of 2026-10-31 --warehouse demo/warehouse")
    bt.add_argument("--rules", required=True, type=Path, help="the candidate rules file")
    bt.add_argument("--as-of", required=True, type=_as_of_arg, help="a published month's last day (or YYYY-MM)")
    bt.add_argument("--warehouse", help=warehouse_help)
    bt.add_argument("--out", type=Path,
                    help="report folder (default <warehouse>/backtests/<YYYY-MM>-<timestamp>/)")
    bt.add_argument("--keep-scratch", action="store_true", help="keep <out>/scratch (the candidate's database)")
    bt.add_argument("--wait", action="store_true", help=WAIT_HELP)
    rb = add("rollback", "make an earlier release current again (the current and the previous release are kept); "
             "audited in release_log",
             "tiering rollback --to 4f0a3b34-… --warehouse warehouse")
    rb.add_argument("--to", required=True, metavar="RELEASE_ID", help="the release to make current (release_log)")
    rb.add_argument("--force", action="store_true",
                    help="roll back even to a release built with another rules version than the rules file's")
    rb.add_argument("--warehouse", help=warehouse_help)
    rb.add_argument("--rules", type=Path, help="rules file (default rules/tiering_rules.yml)")
    rb.add_argument("--publish-postgres", metavar="URL", help=POSTGRES_HELP)
    rb.add_argument("--wait", action="store_true", help=WAIT_HELP)

    ovr = add("override", "tier overrides (特批): hold or lift a customer's published tier for a bounded time, "
              "with a reason and a second person's approval",
              "tiering override request C0000000042 --tier BLACK --until 2026-12 --reason '战略客户' --by alice")
    ovr_sub = ovr.add_subparsers(dest="override_command", required=True, metavar="ACTION")

    def ovr_add(name: str, help_: str, example: str) -> argparse.ArgumentParser:
        parsed = ovr_sub.add_parser(name, help=help_, description=help_, epilog=f"example:\n  {example}",
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        parsed.add_argument("--warehouse", help=warehouse_help)
        parsed.add_argument("--rules", type=Path, help="rules file (default rules/tiering_rules.yml)")
        return parsed

    req = ovr_add("request", "ask to publish TIER for a customer from --from through --until",
                  "tiering override request C0000000042 --tier BLACK --until 2026-12 --reason '战略客户' --by alice")
    req.add_argument("cust_id", help="customer id (in the latest release)")
    req.add_argument("--tier", required=True, help="tier code of the customer's ladder (active rule set, or "
                     "corporate for C/I/F)")
    req.add_argument("--from", dest="from_month", type=_as_of_arg, help="first month YYYY-MM (default: the "
                     "first month not yet published when approved; never a published month)")
    req.add_argument("--until", required=True, type=_as_of_arg, help="last month YYYY-MM (at most "
                     "overrides.max_override_months months)")
    req.add_argument("--reason", required=True, help="why (published as override_tier_reason)")
    req.add_argument("--by", required=True, help="who asks")
    for action, help_ in (("approve", "approve a pending request (not its requester)"),
                          ("reject", "reject a pending request (not its requester)")):
        dec = ovr_add(action, help_, f"tiering override {action} OVR-0001 --by bob --note '已核实'")
        dec.add_argument("override_id", help="e.g. OVR-0001 (tiering override list)")
        dec.add_argument("--by", required=True, help="who decides")
        dec.add_argument("--note", default="", help="a note kept with the decision")
    rev = ovr_add("revoke", "end an approved override from the first month not yet published",
                  "tiering override revoke OVR-0001 --by carol --reason '客户资产已回升'")
    rev.add_argument("override_id", help="e.g. OVR-0001")
    rev.add_argument("--by", required=True, help="who revokes")
    rev.add_argument("--reason", required=True, help="why")
    lst = ovr_add("list", "list overrides and their status", "tiering override list --status PENDING")
    lst.add_argument("--status", choices=["PENDING", "APPROVED", "REJECTED", "REVOKED", "EXPIRED"],
                     help="only overrides with this status")
    lst.add_argument("--json", action="store_true", help="print JSON")

    ev = add("events", "print a published month's change feed for the CRM (customer_event)",
             "tiering events --as-of 2026-10 --branch B001 --type TIER_UP")
    ev.add_argument("--as-of", required=True, type=_as_of_arg, help="a published month (YYYY-MM)")
    ev.add_argument("--branch", help="only this branch_id")
    ev.add_argument("--type", dest="event_type", help="only this event type, e.g. TIER_UP, WATCH_START")
    ev.add_argument("--warehouse", help=warehouse_help)
    return parser


def _generate(args) -> int:
    from rich.progress import Progress

    from flows.commands.generate import generate

    days = (args.end - args.start).days + 1
    with Progress(transient=True) as progress:
        task = progress.add_task("generating batches", total=max(days, 0))
        summary = generate(args.out, args.customers, args.start, args.end, seed=args.seed,
                           encoding=args.encoding, progress=lambda _day: progress.advance(task))
    print(f"wrote {summary.days} daily batches for {summary.customers} customers to {args.out}")
    return 0


def _quiet_task_run_logs() -> None:
    """Drop the per-task "Finished in state Completed()" lines; the UI shows task states anyway."""
    # Called after prefect is imported: its logging setup would otherwise reset the level.
    logging.getLogger("prefect.task_runs").setLevel(logging.WARNING)


def _ingest(args) -> int:
    settings = preflight.load_settings(args.warehouse)
    preflight.check_landing(args.landing)
    preflight.check_warehouse(settings.warehouse)
    timeout = preflight.check_prefect_start_timeout()
    with _holding(settings.warehouse, args.wait), _prefect_api(timeout):
        from flows.stages.ingest import ingest_flow

        _quiet_task_run_logs()
        with terminal_progress(sys.stderr.isatty()):
            report = ingest_flow(landing=str(args.landing), settings=settings, date=args.date, force=args.force)
    _print_ingest(report)
    return 0


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _holding(warehouse: Path, wait: bool) -> Iterator[None]:
    """The warehouse lock for the whole command, taken before any server start-up (flows.warehouse_lock)."""
    with warehouse_lock(warehouse, wait=wait, on_wait=lambda message: _say(message + " (Ctrl-C to stop)")):
        yield


@contextlib.contextmanager
def _prefect_api(start_timeout: float) -> Iterator[None]:
    """A Prefect API for this command's flows: the configured one (PREFECT_API_URL in the environment or the
    Prefect profile), else a temporary server of our own (flows.adapters.local_server) that ends with the command."""
    from flows.adapters.local_server import start_server

    configured = os.environ.get("PREFECT_API_URL")
    if configured is None and "prefect" in sys.modules:  # e.g. a test harness's temporary settings
        from prefect.settings import get_current_settings

        configured = get_current_settings().api.url
    if configured:
        yield
        return
    server = start_server()  # boots while the pipeline's modules are imported below
    healthy = False
    try:
        from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, get_current_settings, temporary_settings

        import flows.pipeline  # noqa: F401  (the import the server's start-up overlaps)

        if get_current_settings().api.url:  # the Prefect profile names a server: use it, not ours
            server.stop()
            yield
            return
        server.wait_healthy(start_timeout)
        healthy = True
        # No UI URL: this server serves no UI, so the logs must not link to one.
        with temporary_settings(updates={PREFECT_API_URL: server.api_url, PREFECT_UI_URL: ""}):
            try:
                yield
            finally:
                _drain_prefect_workers()
    finally:
        server.stop(keep_log=not healthy)


def _drain_prefect_workers() -> None:
    """Send the logs and events Prefect still buffers while the server is up (as prefect_test_harness does)."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        with contextlib.suppress(RuntimeError):  # a worker that never started
            result = APILogWorker.instance().drain()
            if inspect.isawaitable(result):
                await result
        result = EventsWorker.drain_all()
        if inspect.isawaitable(result):
            await result

    run_coro_as_sync(drain())


def _print_ingest(report) -> None:
    from rich.table import Table

    table = Table(title="batches")
    for column in ("batch", "outcome", "records", "loaded", "quarantined"):
        table.add_column(column)
    for batch in report.batches:
        counts = batch.tables.values()
        table.add_row(str(batch.batch_date), batch.outcome, str(sum(c.records for c in counts)),
                      str(sum(c.loaded for c in counts)), str(sum(c.quarantined for c in counts)))
    _console().print(table)


def _run_month(landing: Path, as_of: dt.date, settings: Settings, force: bool, full_refresh: bool = False):
    """The parent flow with the command's own as_of date and Settings object (parsed and built once, here)."""
    from flows.pipeline import tiering_run

    _quiet_task_run_logs()
    with terminal_progress(sys.stderr.isatty()):
        return tiering_run(landing=str(landing), as_of=as_of, settings=settings, force=force,
                           full_refresh=full_refresh)


def _use_postgres(url: str | None) -> None:
    """The URL travels in the environment, never as a flow parameter (Prefect stores and shows those)."""
    if url:
        os.environ[POSTGRES_ENV] = url


def _checked_run_settings(args) -> Settings:
    """What `run` and `serve` are given, checked before anything starts: the run's Settings."""
    settings = preflight.load_settings(args.warehouse, args.rules)
    preflight.check_landing(args.landing)
    preflight.check_warehouse(settings.warehouse)
    preflight.check_rules(settings.rules_path)
    preflight.check_postgres_url(args.publish_postgres or settings.publish_postgres)
    return settings


def _run(args) -> int:
    settings = _checked_run_settings(args)
    timeout = preflight.check_prefect_start_timeout()
    _use_postgres(args.publish_postgres)
    with _holding(settings.warehouse, args.wait), _prefect_api(timeout):
        _run_month(args.landing, args.as_of, settings, args.force, args.full_refresh)
    print_tier_summary(settings.published_db, args.as_of)
    print(f"release report: {settings.reports_dir / f'{args.as_of:%Y-%m}' / 'index.html'}")
    return 0


def _serve(args) -> int:
    settings = _checked_run_settings(args)
    from prefect import serve
    from prefect.settings import PREFECT_API_URL

    from flows.deployments import build_deployments
    from flows.warehouse_lock import ensure_warehouse_limit

    if not PREFECT_API_URL.value():
        raise RuntimeError("no Prefect server: start one with `prefect server start`, then "
                           "export PREFECT_API_URL=http://127.0.0.1:4200/api and run tiering serve again")
    _use_postgres(args.publish_postgres)
    settings.warehouse.mkdir(parents=True, exist_ok=True)
    deployments = build_deployments(args.landing, settings)
    limit = ensure_warehouse_limit(settings.warehouse, reset=True)
    print(f"warehouse {settings.warehouse}: concurrency limit {limit} (1 run at a time)")
    for deployment in deployments:
        schedule = deployment.schedules[0].schedule
        print(f"  {deployment.flow_name}/{deployment.name}: {schedule_text(schedule.cron)} "
              f"(cron {schedule.cron!r}, {schedule.timezone})")
    print(f"  the Prefect UI shows run times in your browser's time zone; ours are {BANK_TIMEZONE}, labelled")
    serve(*deployments)  # blocks; Ctrl-C pauses the schedules and stops
    return 0


def _demo(args) -> int:
    if args.months < 1 or args.start.day != 1:
        raise ValueError("demo needs --months ≥ 1 and --start on a month's first day")
    landing, warehouse = args.dir / "landing", args.dir / "warehouse"
    if args.dir.exists() and not args.dir.is_dir():
        raise preflight.PreflightError(f"demo folder {args.dir} is a file, not a folder")
    settings = preflight.load_settings(warehouse)
    preflight.check_warehouse(settings.warehouse)
    preflight.check_rules(settings.rules_path)
    timeout = preflight.check_prefect_start_timeout()
    end = month_end(args.start)
    for _ in range(args.months - 1):
        end = month_end(end + dt.timedelta(days=1))
    with _holding(settings.warehouse, wait=False), _prefect_api(timeout):
        from flows.commands.generate import generate

        print(f"generating {args.customers} customers, {args.start} … {end} into {landing}")
        generate(landing, args.customers, args.start, end, seed=args.seed)
        for as_of in complete_months(args.start, end):
            print(f"running month {as_of:%Y-%m}")
            _run_month(landing, as_of, settings, False)
    print_tier_summary(settings.published_db, end)
    print(where_to_look(settings, end))
    return 0


def duckdb_command() -> str:
    """The DuckDB command line as a user can type it here: the `duckdb` installed beside this Python (duckdb-cli,
    a project dependency), by a path relative to the current folder when it is below it. A bare `duckdb` would
    need the virtual environment activated."""
    cli = Path(sys.executable).parent / "duckdb"
    try:
        return shlex.quote(str(cli.relative_to(Path.cwd())))
    except ValueError:
        return shlex.quote(str(cli))


def where_to_look(settings: Settings, month: dt.date) -> str:
    """The demo's closing pointers; each command in it runs as printed (tests/integration/test_readme_commands.py)."""
    return textwrap.dedent(f"""
        where to look:
          release report    {settings.reports_dir}/{month:%Y-%m}/index.html (charts; gate page and dbt docs linked)
          published tiers   {duckdb_command()} -readonly {shlex.quote(str(settings.published_db))} "from customer_segment limit 10"
          Parquet exports   {settings.exports_dir}/
          gate results      {settings.reports_dir}/{month:%Y-%m}/gate.html
          working database  {settings.working_db} (raw, audit, dbt layers; pipeline only)
        """)


def _explain(args) -> int:
    from flows.commands.explain import explain_customer, render_text, to_json

    settings = Settings.from_env(warehouse=args.warehouse)
    explanation = explain_customer(settings, args.cust_id, args.as_of, include_aml=args.aml)
    print(to_json(explanation) if args.json else render_text(explanation))
    return 0


def _status(args) -> int:
    from flows.commands.status import collect_status, render_status

    status = collect_status(Settings.from_env(warehouse=args.warehouse), args.landing)
    print("\n".join(render_status(status)))
    return 0


def print_tier_summary(published_db: Path, as_of: dt.date) -> None:
    """Print the published tier summary of one month from the consumer database."""
    import duckdb
    from rich.table import Table

    with duckdb.connect(str(published_db), read_only=True) as con:
        rows = con.execute(
            "select rule_set, tier, tier_name, customers, on_watch_customers, total_avg_daily_aum_cny "
            "from tier_summary where as_of_month = ? order by rule_set, tier_rank desc", [as_of]).fetchall()
    table = Table(title=f"tier summary {as_of:%Y-%m} ({published_db})")
    for column in ("rule set", "tier", "name", "customers", "on watch", "Σ avg daily AUM (CNY)"):
        table.add_column(column, justify="right" if column[0] in "coΣ" else "left")
    for rule_set, tier, name, customers, watch, aum in rows:
        table.add_row(rule_set, tier, name, f"{customers:,}", f"{watch:,}", f"{aum:,.2f}")
    _console().print(table)


COMMANDS = {"generate": _generate, "ingest": _ingest, "run": _run, "demo": _demo}
COMMANDS["explain"] = _explain
COMMANDS["status"] = _status
COMMANDS["serve"] = _serve


def _backtest(args) -> int:
    settings = preflight.load_settings(args.warehouse)
    preflight.check_rules(args.rules)
    preflight.check_warehouse(settings.warehouse, must_exist=True)
    from flows.commands.backtest import render_terminal, run_backtest

    console = _console()
    # The whole back-test: it reads the raw files a forced re-delivery could replace.
    with _holding(settings.warehouse, args.wait):
        result = run_backtest(args.rules, args.as_of, settings, args.out,
                              keep_scratch=args.keep_scratch, log=lambda message: console.print(message, style="dim"))
    render_terminal(result, console)
    return 0


COMMANDS["backtest"] = _backtest


def _rollback(args) -> int:
    settings = preflight.load_settings(args.warehouse, args.rules)
    preflight.check_warehouse(settings.warehouse, must_exist=True)
    version = preflight.check_rules(settings.rules_path)
    preflight.check_postgres_url(args.publish_postgres or settings.publish_postgres)
    _use_postgres(args.publish_postgres)
    from flows.commands.rollback import rollback_release

    with _holding(settings.warehouse, args.wait):
        result = rollback_release(settings, args.to, version, force=args.force)
        print(result.summary)
        url = settings.publish_postgres
        if url:
            from flows.adapters.postgres_publish import publish_to_postgres

            copy = publish_to_postgres(settings.published_db, url)
            print(f"PostgreSQL {copy.target}, schema {copy.schema}: now release {copy.release_id} ({copy.mode})")
    return 0


COMMANDS["rollback"] = _rollback


def _override(args) -> int:
    from flows import overrides
    from flows.commands.override import decision_text, render_list, request_text

    settings = Settings.from_env(warehouse=args.warehouse, rules=args.rules)
    if args.override_command == "request":
        action = overrides.request(settings, args.cust_id, args.tier, args.until, args.reason, args.by,
                                   args.from_month)
        print(request_text(settings, action))
    elif args.override_command in ("approve", "reject"):
        print(decision_text(overrides.decide(settings, args.override_id, args.override_command == "approve",
                                             args.by, args.note)))
    elif args.override_command == "revoke":
        print(decision_text(overrides.revoke(settings, args.override_id, args.by, args.reason)))
    else:
        print(render_list(overrides.listing(settings, args.status), args.json))
    return 0


def _events(args) -> int:
    from flows.commands.override import month_events, render_events

    settings = Settings.from_env(warehouse=args.warehouse)
    print(render_events(month_events(settings, args.as_of, args.branch, args.event_type), args.as_of))
    return 0


COMMANDS["override"] = _override
COMMANDS["events"] = _events


def _console():
    from rich.console import Console

    console = Console()
    # Piped output (CI logs, `make demo | tee`) would otherwise be cut to 80 columns.
    return console if console.is_terminal else Console(width=120)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `tiering` console script; exit 0 on success, 1 with a one-line reason otherwise."""
    args = _parser().parse_args(argv)
    previous = _stop_on_sigterm()
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"tiering {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tiering explain … | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except preflight.PreflightError as exc:  # checked before any work: nothing was started
        print(f"tiering {args.command}: {exc}", file=sys.stderr)
        return 2
    except OverrideRefused as exc:  # a decision the rules do not allow: nothing was written
        print(f"tiering {_command_name(args)}: refused: {exc}", file=sys.stderr)
        return 2
    except WarehouseBusy as exc:  # EX_TEMPFAIL: a scheduler may simply try again later
        print(f"tiering {args.command}: {exc}", file=sys.stderr)
        return 75
    except Terminated:
        return _stopped_by_sigterm(args.command)
    except Exception as exc:  # every failure ends as one actionable line, not a traceback
        if SIGTERM_RECEIVED.is_set():  # the signal surfaced as another error: DuckDB says "Query interrupted"
            return _stopped_by_sigterm(args.command)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"tiering {args.command}: failed: {reason}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _command_name(args) -> str:
    sub = getattr(args, "override_command", None)
    return f"{args.command} {sub}" if sub else args.command


class Terminated(BaseException):
    """SIGTERM (a scheduler's time-out, systemd, kill): unwind so that the temporary server and locks end."""


# Set by the SIGTERM handler: a query running when the signal lands ends in DuckDB's own RuntimeError
# ("Query interrupted"), not in Terminated, and must still end as a SIGTERM stop.
SIGTERM_RECEIVED = threading.Event()


def _raise_terminated(signum, frame):
    SIGTERM_RECEIVED.set()
    raise Terminated()


def _stopped_by_sigterm(command: str) -> int:
    print(f"tiering {command}: stopped by SIGTERM; nothing half-done was published (run it again to finish)",
          file=sys.stderr)
    return 128 + signal.SIGTERM


def _stop_on_sigterm():
    """Turn SIGTERM into an orderly exit (Prefect marks the flow run crashed, then calls this handler);
    returns the previous handler, or None off the main thread (where signals cannot be handled)."""
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(main())
