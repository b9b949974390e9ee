"""Back-test a candidate rules file: what it changes, who would move between tiers, without publishing anything.

The candidate is validated first (flows.rules_lines: refused with the line of the problem) and compared with
the active rules file in business terms (flows.rules_diff). Then the working database is copied to a scratch
folder (under a shared lock; its raw views still read the warehouse's read-only Parquet files, its AML marts
are dropped), the dbt project is copied beside it with the candidate's seeds, and the back-tested month is
built there once, reading the state the month before left: the candidate applies from that month on, as
`tiering run` applies a changed rules file, so the grace counts from that month (DECISIONLOG R5). Nothing
shared is written: not the working or published database, not the raw zone, not dbt_project/seeds or target.
The candidate's `customer_segment` and `customer_tier` rows of the month are compared with the published
release's: one migration matrix per classification, and the customers whose value tier moves (movers.csv).
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

import duckdb

from flows.adapters.dbt_runner import DbtBuildError, Invoke, run_dbt
from flows.months import month_runs
from flows.reports.text_columns import aligned, display_width
from flows.rules import Rules, load_rules
from flows.rules_diff import NO_CHANGE, rule_changes
from flows.rules_lines import check_candidate
from flows.settings import Settings
from flows.sql_literals import sql_text

# Classification columns of customer_segment (docs/ARCHITECTURE.md, issue 3), compared when both the
# published release and the candidate have them.
CLASSIFICATION_COLUMNS = (
    "rfm_class", "activity_level", "value_activity_quadrant", "need_level", "credit_grade",
    "potential_flag", "customer_class", "churn_warning", "service_strategy",
)
# What the candidate rebuilds for the month: the two compared marts and their parents that read a rule seed
# (the seeds included). The other parents' rows of the month are the copied working database's: the facts the
# release was built from, and no rule reaches them.
MART_SELECTION = ("resource_type:seed+,+customer_segment", "resource_type:seed+,+customer_tier")
NONE_LABEL = "(none)"
CSV_COLUMNS = ("classification", "from", "to", "customers", "aum_cny")
# movers.csv: one row per customer whose value tier moves; personal data only as published (masked), never
# the certificate number.
MOVER_COLUMNS = ("cust_id", "branch_id", "cust_type", "cust_name_masked", "mobile_masked", "tier_published",
                 "tier_candidate", "direction", "measure", "measure_value_cny")
MOVERS_SHOWN = 20  # the largest movers by measure value on the HTML page
# Schemas of the working database dropped from its scratch copy: the marts (the candidate rebuilds the two it
# compares; the AML marts have no business in a report folder) and ingest's unmasked latest snapshot.
SCRATCH_DROPPED_SCHEMAS = ("main_marts", "raw_state")
# dbt's words when an incremental model's columns differ from the stored table's (on_schema_change: fail).
SCHEMA_OUT_OF_SYNC = "schemas on this incremental model are out of sync"


def hysteresis_note(as_of: dt.date) -> str:
    """The one sentence saying how the candidate's hysteresis was applied (terminal, page, README)."""
    return (f"The candidate applies from {as_of:%Y-%m} on, as `tiering run` applies a changed rules file: each "
            f"customer keeps the tier and months below that the month before left, so the grace counts from "
            f"{as_of:%Y-%m} and a customer newly below a floor is held on watch, not moved, until the grace of "
            "the tier held runs out.")


class BacktestError(RuntimeError):
    """The back-test cannot run (month not published, working database locked, dbt failed, …)."""


@dataclass(frozen=True)
class Cell:
    from_value: str
    to_value: str
    customers: int
    aum_cny: Decimal


@dataclass
class Classification:
    """One migration matrix: current (published) value → candidate value."""

    name: str
    cells: list[Cell]
    order: list[str] = field(default_factory=list)

    @property
    def customers(self) -> int:
        return sum(c.customers for c in self.cells)

    @property
    def moved(self) -> int:
        return sum(c.customers for c in self.cells if c.from_value != c.to_value)

    @property
    def aum_moved_cny(self) -> Decimal:
        return sum((c.aum_cny for c in self.cells if c.from_value != c.to_value), Decimal(0))

    def values(self) -> tuple[list[str], list[str]]:
        """(rows, columns) in display order: ladder order first, the rest sorted."""
        def ordered(found: set[str]) -> list[str]:
            known = [v for v in self.order if v in found]
            return known + sorted(found - set(known))
        return (ordered({c.from_value for c in self.cells}), ordered({c.to_value for c in self.cells}))

    def count(self, from_value: str, to_value: str) -> int:
        return sum(c.customers for c in self.cells if (c.from_value, c.to_value) == (from_value, to_value))


@dataclass(frozen=True)
class Mover:
    """A customer whose value tier the candidate moves (a row of movers.csv)."""

    cust_id: str
    branch_id: str | None
    cust_type: str | None
    cust_name_masked: str | None
    mobile_masked: str | None
    tier_published: str
    tier_candidate: str
    direction: str  # up, down; in / out when one side has no tier
    measure: str | None
    measure_value_cny: Decimal | None


@dataclass
class BacktestResult:
    as_of: dt.date
    candidate_path: Path
    candidate_version: str
    current_version: str
    versions: list[tuple[str, str, str]]  # (rule set, published version, candidate version)
    classifications: list[Classification]
    out_dir: Path
    csv_path: Path
    html_path: Path
    changes: list[str] = field(default_factory=list)  # rule changes vs the active rules file
    active_rules: str = ""  # "<path> (version …)": what the changes are measured against
    movers: list[Mover] = field(default_factory=list)
    movers_path: Path | None = None
    on_watch: tuple[int, int] = (0, 0)  # customers held by grace in the month: published, candidate
    baseline_note: str | None = None  # the active rules file is not the one the month was built with

    @property
    def version_note(self) -> str | None:
        """The reminder to bump `version`, when the candidate changes something under the published one."""
        if self.candidate_version == self.current_version and (
                self.changes or any(c.moved for c in self.classifications)):
            return (f"note: the candidate keeps version {self.candidate_version} although "
                    f"{'rules change' if self.changes else 'customers move'}; bump `version` before it is used "
                    "for a release")
        return None


def default_out_dir(settings: Settings, as_of: dt.date, now: dt.datetime | None = None) -> Path:
    stamp = (now or dt.datetime.now()).strftime("%Y%m%dT%H%M%S")
    return settings.backtests_dir / f"{as_of:%Y-%m}-{stamp}"


def run_backtest(candidate: Path, as_of: dt.date, settings: Settings, out_dir: Path | None = None, *,
                 keep_scratch: bool = False, invoke: Invoke | None = None,
                 log: Callable[[str], None] = lambda _message: None) -> BacktestResult:
    """Evaluate `candidate` for the month `as_of` against the release published in `settings`' warehouse;
    write the CSVs and the HTML page."""
    rules = check_candidate(candidate)  # before any work: an invalid candidate starts nothing
    if settings.engine != "duckdb":
        # The scratch copy of a Spark warehouse's working database holds views over Spark's files, which
        # dbt-duckdb cannot re-seed; a back-test on Spark itself is not built yet (README, "Running on Spark").
        raise BacktestError(f"tiering backtest builds on DuckDB only (TIERING_ENGINE={settings.engine}): "
                            "run it on a warehouse built with TIERING_ENGINE=duckdb")
    current_version = _published_month(settings.published_db, as_of)
    if not settings.working_db.exists():
        raise BacktestError(f"no working database at {settings.working_db}")
    active = load_rules(settings.rules_path)
    baseline_note = _baseline_note(settings, as_of)
    out_dir = Path(out_dir) if out_dir else default_out_dir(settings, as_of)
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = out_dir / "scratch"
    try:
        scratch_settings = _prepare_scratch(settings, rules, scratch, log)
        log(f"building the candidate's marts for {as_of:%Y-%m} in {scratch}")
        run_dbt(["build", "--select", *MART_SELECTION, "--exclude-resource-type", "test",
                 "--exclude-resource-type", "unit_test", "--log-level", "warn"],
                scratch_settings, as_of=as_of, invoke=invoke).raise_on_failure()
        classifications, versions = compare(settings.published_db, scratch_settings.working_db, as_of, rules)
        movers, on_watch = list_movers(settings.published_db, scratch_settings.working_db, as_of, rules)
    except DbtBuildError as exc:
        if SCHEMA_OUT_OF_SYNC in str(exc):  # as the monthly run would be: the upgrade step is missing
            raise BacktestError("the working database predates the models' columns: run `tiering run "
                                "--full-refresh` once with the latest month (README, \"After upgrading the "
                                "pipeline\"), then back-test again") from None
        raise BacktestError(f"candidate build failed: {exc}") from None
    finally:
        if not keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    result = BacktestResult(as_of, Path(candidate), rules.version, current_version, versions, classifications,
                            out_dir, out_dir / "migration.csv", out_dir / "backtest.html",
                            changes=rule_changes(active, rules),
                            active_rules=f"{settings.rules_path} (version {active.version})",
                            baseline_note=baseline_note,
                            movers=movers, movers_path=out_dir / "movers.csv", on_watch=on_watch)
    write_csv(result)
    write_movers(result)
    write_html(result)
    return result


def _published_month(published_db: Path, as_of: dt.date) -> str:
    """The published rules version of the month; refuse when the month is not in the release."""
    if not published_db.exists():
        raise BacktestError(f"nothing published yet: no {published_db}")
    with duckdb.connect(str(published_db), read_only=True) as con:
        row = con.execute("select count(*), min(rules_version) from customer_segment where as_of_month = ?",
                          [as_of]).fetchone()
        if not row[0]:
            months = [m for (m,) in con.execute(
                "select distinct as_of_month from customer_segment order by 1").fetchall()]
            listed = month_runs(months) or "none"
            raise BacktestError(f"{as_of:%Y-%m} is not published (published months: {listed})")
    return str(row[1])


def _prepare_scratch(settings: Settings, rules: Rules, scratch: Path, log) -> Settings:
    """A scratch warehouse: a copy of the working database (every month's state, marts left out) and of the
    dbt project with the candidate's seeds."""
    from flows.overrides import snapshot_into
    from flows.rules import write_seeds
    from flows.stages import raw_zone

    scratch.mkdir(parents=True, exist_ok=True)
    # The scratch warehouse is another warehouse: its own paths, the run's DuckDB and dbt knobs.
    copy = replace(settings, warehouse=scratch, rules_path=rules.path, dbt_project_dir=scratch / "dbt_project")
    log(f"copying the working database {settings.working_db} to {copy.working_db}")
    # A shared (read-only) lock while the file is copied: no pipeline writes it meanwhile.
    con = _check_unlocked(settings.working_db, keep=True)
    try:
        for source in (settings.working_db, settings.working_db.with_name(settings.working_db.name + ".wal")):
            if source.exists():
                shutil.copyfile(source, copy.working_db.with_name(source.name))
    finally:
        con.close()
    con = duckdb.connect(str(copy.working_db))
    try:
        for schema in SCRATCH_DROPPED_SCHEMAS:
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        raw_zone.refresh_views(con, settings.warehouse)  # the original raw files, read-only
        # The warehouse's override log: an override never changes a published month (it starts at the first
        # month not yet published), so the month gets the overrides its release had.
        snapshot_into(con, settings)
    finally:
        con.close()
    shutil.copytree(settings.dbt_project_dir, copy.dbt_project_dir, ignore=shutil.ignore_patterns("target", "logs", ".user.yml"),
                    dirs_exist_ok=True)
    write_seeds(rules, copy.dbt_project_dir / "seeds")
    return copy


def _baseline_note(settings: Settings, as_of: dt.date) -> str | None:
    """A warning when the active rules file changed since the month was built: the release keeps only its
    checksum, so the rule changes are measured against the file as it is now. Fails early on a locked database."""
    from flows.stages.month_plan import built_rules_sha256, rules_sha256

    con = _check_unlocked(settings.working_db, keep=True)
    try:
        built = built_rules_sha256(con, as_of)
    finally:
        con.close()
    if built is None or built == rules_sha256(settings.rules_path):
        return None
    return (f"note: the active rules file changed since {as_of:%Y-%m} was built; the rule changes above are "
            "measured against it as it is now, not against the rules of the release")


def _check_unlocked(working_db: Path, keep: bool = False):
    """Fail in one line when a pipeline holds the working database; with keep, return the read-only connection."""
    try:
        con = duckdb.connect(str(working_db), read_only=True)
    except duckdb.Error as exc:
        raise BacktestError(f"working database {working_db} is in use by a pipeline, "
                            f"try again when it has finished ({_first_line(exc)})") from None
    if keep:
        return con
    con.close()
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _label(column: str) -> str:
    return f"coalesce(cast({column} as varchar), '{NONE_LABEL}')"


def compare(published_db: Path, candidate_db: Path, as_of: dt.date,
            rules: Rules) -> tuple[list[Classification], list[tuple[str, str, str]]]:
    """Migration matrices published → candidate for the month, and the rule-set versions of both."""
    con = duckdb.connect()
    try:
        con.execute(f"attach {sql_text(str(published_db))} as pub (read_only)")
        con.execute(f"attach {sql_text(str(candidate_db))} as cand (read_only)")
        shared = _shared_columns(con)
        pairs = ", ".join(f"c.{col} as cur_{col}, n.{col} as cand_{col}" for col in ["value_tier", *shared])
        con.execute(f"""
            create temp table seg as
            select coalesce(c.cust_id, n.cust_id) as cust_id,
                   coalesce(c.avg_daily_aum_cny, n.avg_daily_aum_cny) as aum, {pairs}
            from (select * from pub.main.customer_segment where as_of_month = $1) as c
            full outer join (select * from cand.main_marts.customer_segment where as_of_month = $1) as n
                on c.cust_id = n.cust_id""", [as_of])
        results = [_matrix(con, "value_tier", _value_tier_order(rules))]
        results += [_matrix(con, column, []) for column in shared]
        rule_sets = [r for (r,) in con.execute("""
            select rule_set from pub.main.customer_tier where as_of_month = $1
            union select rule_set from cand.main_marts.customer_tier where as_of_month = $1
            order by 1""", [as_of]).fetchall()]
        versions = []
        for rule_set in rule_sets:
            results.append(_tier_matrix(con, rule_set, as_of, rules))
            versions.append(tuple([rule_set] + [
                con.execute(f"select coalesce(min(rule_set_version), '{NONE_LABEL}') from {table} "
                            "where as_of_month = ? and rule_set = ?", [as_of, rule_set]).fetchone()[0]
                for table in ("pub.main.customer_tier", "cand.main_marts.customer_tier")]))
    finally:
        con.close()
    return results, versions


def _shared_columns(con) -> list[str]:
    def columns(catalog: str, schema: str) -> set[str]:
        return {c for (c,) in con.execute(
            "select column_name from information_schema.columns "
            "where table_catalog = ? and table_schema = ? and table_name = 'customer_segment'",
            [catalog, schema]).fetchall()}
    both = columns("pub", "main") & columns("cand", "main_marts")
    return [c for c in CLASSIFICATION_COLUMNS if c in both]


def _matrix(con, name: str, order: list[str]) -> Classification:
    rows = con.execute(f"""
        select {_label('cur_' + name)}, {_label('cand_' + name)}, count(*), coalesce(sum(aum), 0)
        from seg group by 1, 2 order by 1, 2""").fetchall()
    return Classification(name, [Cell(f, t, n, Decimal(a)) for f, t, n, a in rows], order)


def _tier_matrix(con, rule_set: str, as_of: dt.date, rules: Rules) -> Classification:
    rows = con.execute(f"""
        select {_label('c.tier')}, {_label('n.tier')}, count(*),
               coalesce(sum(coalesce(seg_c.avg_daily_aum_cny, seg_n.avg_daily_aum_cny)), 0)
        from (select * from pub.main.customer_tier where as_of_month = $1 and rule_set = $2) as c
        full outer join (select * from cand.main_marts.customer_tier where as_of_month = $1 and rule_set = $2) as n
            on c.cust_id = n.cust_id
        left join pub.main.customer_segment as seg_c
            on seg_c.as_of_month = $1 and seg_c.cust_id = coalesce(c.cust_id, n.cust_id)
        left join cand.main_marts.customer_segment as seg_n
            on seg_n.as_of_month = $1 and seg_n.cust_id = coalesce(c.cust_id, n.cust_id)
        group by 1, 2 order by 1, 2""", [as_of, rule_set]).fetchall()
    if rule_set in rules.rule_sets:
        order = [t.code for t in reversed(rules.rule_sets[rule_set].tiers)]
    else:
        order = [t.code for t in reversed(rules.corporate_tiers)]
    return Classification(f"customer_tier.{rule_set}", [Cell(f, t, n, Decimal(a)) for f, t, n, a in rows],
                          order)


def _value_tier_order(rules: Rules) -> list[str]:
    return [t.code for t in reversed(rules.active.tiers)] + [t.code for t in reversed(rules.corporate_tiers)]


def list_movers(published_db: Path, candidate_db: Path, as_of: dt.date,
                rules: Rules) -> tuple[list[Mover], tuple[int, int]]:
    """The customers whose value tier the candidate moves in the month, largest measure value first, and the
    customers on watch (held by grace) in the release and under the candidate."""
    order = {code: rank for rank, code in enumerate(reversed(_value_tier_order(rules)))}  # lowest first
    con = duckdb.connect()
    try:
        con.execute(f"attach {sql_text(str(published_db))} as pub (read_only)")
        con.execute(f"attach {sql_text(str(candidate_db))} as cand (read_only)")
        rows = con.execute(f"""
            select coalesce(c.cust_id, n.cust_id), coalesce(c.branch_id, n.branch_id),
                   coalesce(c.cust_type, n.cust_type), c.cust_name_masked, c.mobile_masked,
                   {_label('c.value_tier')}, {_label('n.value_tier')}, c.tier_floor_cny, n.tier_floor_cny,
                   t.measure, t.measure_value_cny
            from (select * from pub.main.customer_segment where as_of_month = $1) as c
            full outer join (select * from cand.main_marts.customer_segment where as_of_month = $1) as n
                on c.cust_id = n.cust_id
            left join cand.main_marts.customer_tier as t
                on t.as_of_month = $1 and t.cust_id = n.cust_id and t.rule_set = n.rule_set
            where c.value_tier is distinct from n.value_tier
            order by t.measure_value_cny desc nulls last, 1""", [as_of]).fetchall()
        on_watch = con.execute("""
            select (select count(*) from pub.main.customer_segment where as_of_month = $1 and on_watch),
                   (select count(*) from cand.main_marts.customer_segment where as_of_month = $1 and on_watch)
            """, [as_of]).fetchone()
    finally:
        con.close()
    movers = [Mover(*person, now, then, _direction(now, then, floor_now, floor_then, order), measure, value)
              for *person, now, then, floor_now, floor_then, measure, value in rows]
    return movers, (on_watch[0], on_watch[1])


def _direction(now: str, then: str, floor_now: Decimal | None, floor_then: Decimal | None,
               order: dict[str, int]) -> str:
    if now == NONE_LABEL or then == NONE_LABEL:
        return "in" if now == NONE_LABEL else "out"
    if now in order and then in order:  # both in the candidate's ladders
        return "up" if order[then] > order[now] else "down"
    return "up" if (floor_then or 0) > (floor_now or 0) else "down"  # a tier the candidate removed


def write_movers(result: BacktestResult) -> Path:
    """movers.csv: every mover, largest measure value first; UTF-8 with a BOM (Excel reads the Chinese names
    right), amounts as exact decimal text."""
    with result.movers_path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(MOVER_COLUMNS)
        for mover in result.movers:
            writer.writerow(["" if getattr(mover, column) is None else str(getattr(mover, column))
                             for column in MOVER_COLUMNS[:-1]]
                            + ["" if mover.measure_value_cny is None else f"{mover.measure_value_cny:.2f}"])
    return result.movers_path


def _movers_line(result: BacktestResult) -> str:
    ups = sum(m.direction == "up" for m in result.movers)
    downs = sum(m.direction == "down" for m in result.movers)
    return (f"{len(result.movers):,} customers change value tier ({ups:,} up, {downs:,} down); "
            f"on watch (held by grace): published {result.on_watch[0]:,}, candidate {result.on_watch[1]:,}")


def write_csv(result: BacktestResult) -> Path:
    """migration.csv, long form: classification, from, to, customers, aum_cny (every non-empty cell)."""
    with result.csv_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for classification in result.classifications:
            for cell in classification.cells:
                writer.writerow([classification.name, cell.from_value, cell.to_value, cell.customers,
                                 f"{cell.aum_cny:.2f}"])
    return result.csv_path


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "–"


def render_terminal(result: BacktestResult, console) -> None:
    """What changed, versions, how the hysteresis was applied, a summary per classification, each matrix with
    at least one move, and the movers."""
    from rich.markup import escape as e
    from rich.table import Table

    console.print(e(f"back-test {result.as_of:%Y-%m}: candidate {result.candidate_path}"))
    console.print(e(f"rules version: published {result.current_version} → candidate {result.candidate_version}"))
    console.print(e(f"what the candidate changes (vs the active rules file {result.active_rules}):"))
    for change in result.changes or [NO_CHANGE]:
        console.print(f"  {change}", markup=False, highlight=False)
    if result.baseline_note:
        console.print(result.baseline_note, markup=False, highlight=False)
    versions = Table(title="rule-set versions")
    for column in ("rule set", "published", "candidate"):
        versions.add_column(column)
    for row in result.versions:
        versions.add_row(*map(e, row))
    console.print(versions)
    console.print(hysteresis_note(result.as_of), markup=False, highlight=False)
    summary = Table(title=f"customers moving, {result.as_of:%Y-%m} (published → candidate)")
    for column in ("classification", "customers", "moved", "share moved", "AUM moved (CNY)"):
        summary.add_column(column, justify="left" if column == "classification" else "right")
    for c in result.classifications:
        summary.add_row(e(c.name), f"{c.customers:,}", f"{c.moved:,}", _share(c.moved, c.customers),
                        _money(c.aum_moved_cny))
    console.print(summary)
    for c in result.classifications:
        if c.moved:
            console.print()
            for line in matrix_lines(c, console.width):
                # soft_wrap: rich neither wraps nor cuts a line; labels stay whole.
                console.print(line, markup=False, highlight=False, soft_wrap=True)
    unchanged = [c.name for c in result.classifications if not c.moved]
    if unchanged:
        console.print(e(f"no customer moves in: {', '.join(unchanged)}"))
    console.print(_movers_line(result), markup=False, highlight=False)
    if result.version_note:
        console.print(result.version_note, markup=False, highlight=False)
    console.print(f"written: {result.movers_path} ({len(result.movers):,} movers)\n"
                  f"         {result.csv_path}\n         {result.html_path}", markup=False, highlight=False,
                  soft_wrap=True)


def matrix_lines(c: Classification, width: int) -> list[str]:
    """A migration matrix as aligned text lines; when the labels make it wider than `width`, the columns are
    numbered and listed under it (labels are never cut)."""
    rows, columns = c.values()
    corner = "published ↓ / candidate →"

    def lines(headers: list[str]) -> list[str]:
        table = [(corner, *headers)]
        table += [(row, *(f"{c.count(row, column):,}" if c.count(row, column) else "·" for column in columns))
                  for row in rows]
        return aligned(table, right=range(1, len(columns) + 1))

    title = f"{c.name}: {c.moved:,} customers move, AUM moved {_money(c.aum_moved_cny)} CNY"
    text = lines(columns)
    if max(display_width(line) for line in text) <= width:
        return [title, *text]
    numbered = [f"[{i}]" for i in range(1, len(columns) + 1)]
    return [title, *lines(numbered), *(f"  {n} {column}" for n, column in zip(numbered, columns, strict=True))]


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.3em .6em}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
td.same{background:#eef5ee}td.up{background:#fde8c8;font-weight:bold}td.zero{color:#bbb}
.muted{color:#666}.note{background:#fff4d6;padding:.4em .6em}
"""


def write_html(result: BacktestResult) -> Path:
    """backtest.html: one self-contained page (inline CSS, no external URL)."""
    e = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>back-test {result.as_of:%Y-%m}</title><style>{_CSS}</style></head><body>",
        f"<h1>Back-test of {e(result.candidate_path.name)} for {result.as_of:%Y-%m}</h1>",
        f"<p>rules version: published <b>{e(result.current_version)}</b> → candidate "
        f"<b>{e(result.candidate_version)}</b>. Nothing was published; current = the published release.</p>",
    ]
    if result.version_note:
        parts.append(f"<p class='note'>{e(result.version_note)}</p>")
    parts += [
        f"<h2>What the candidate changes</h2><p class='muted'>against the active rules file "
        f"{e(result.active_rules)}</p><ul>",
        *(f"<li>{e(change)}</li>" for change in result.changes or [NO_CHANGE]),
        "</ul>",
        *([f"<p class='note'>{e(result.baseline_note)}</p>"] if result.baseline_note else []),
        "<table><tr><th>rule set</th><th>published</th><th>candidate</th></tr>",
        *(f"<tr><td>{e(r)}</td><td>{e(p)}</td><td>{e(c)}</td></tr>" for r, p, c in result.versions),
        f"</table><h2>Hysteresis</h2><p>{e(hysteresis_note(result.as_of))}</p>",
        "<h2>Summary</h2><table><tr><th>classification</th><th>customers</th><th>moved</th>"
        "<th>share moved</th><th>AUM moved (CNY)</th></tr>",
    ]
    for c in result.classifications:
        parts.append(f"<tr><td><a href='#{e(c.name)}'>{e(c.name)}</a></td><td class='n'>{c.customers:,}</td>"
                     f"<td class='n'>{c.moved:,}</td><td class='n'>{_share(c.moved, c.customers)}</td>"
                     f"<td class='n'>{_money(c.aum_moved_cny)}</td></tr>")
    parts.append("</table>")
    parts += _movers_html(result)
    for c in result.classifications:
        rows, columns = c.values()
        parts.append(f"<h2 id='{e(c.name)}'>{e(c.name)}</h2><p class='muted'>{c.moved:,} of {c.customers:,} "
                     f"customers move; AUM moved {_money(c.aum_moved_cny)} CNY. Rows: published, "
                     "columns: candidate.</p><table><tr><th></th>")
        parts.extend(f"<th>{e(column)}</th>" for column in columns)
        parts.append("</tr>")
        for row in rows:
            parts.append(f"<tr><th>{e(row)}</th>")
            for column in columns:
                n = c.count(row, column)
                kind = "same" if row == column else ("up" if n else "zero")
                parts.append(f"<td class='n {kind}'>{n:,}</td>")
            parts.append("</tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    result.html_path.write_text("".join(parts), encoding="utf-8")
    return result.html_path


def _movers_html(result: BacktestResult) -> list[str]:
    e = html.escape
    shown = result.movers[:MOVERS_SHOWN]
    parts = [f"<h2 id='movers'>Who moves</h2><p>{e(_movers_line(result))}. "
             f"The {len(shown):,} largest by the value the tier is measured on are below; all "
             f"{len(result.movers):,} are in <code>{e(str(result.movers_path))}</code> (UTF-8 with BOM).</p>"]
    if shown:
        parts.append("<table><tr>" + "".join(f"<th>{e(column)}</th>" for column in MOVER_COLUMNS) + "</tr>")
        for mover in shown:
            cells = [getattr(mover, column) for column in MOVER_COLUMNS]
            parts.append("<tr>" + "".join(
                f"<td class='n'>{_money(v)}</td>" if isinstance(v, Decimal) else f"<td>{e('' if v is None else str(v))}</td>"
                for v in cells) + "</tr>")
        parts.append("</table>")
    return parts
