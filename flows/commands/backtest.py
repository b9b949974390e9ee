"""Back-test a candidate rules file: who would move between tiers, without publishing anything.

The candidate is validated first (flows.rules_lines: refused with the line of the problem). Then a
scratch working database is made that reads the warehouse's raw zone (its batch log copied, the raw views
pointing at the same read-only Parquet files), the dbt project is copied beside it with the candidate's
seeds, and every evaluated month up to the back-tested one is built there in order: the history is
replayed under the candidate rules, so its hysteresis is the candidate's own (DECISIONLOG R5). Nothing
shared is written: not the working or published database, not the raw zone, not dbt_project/seeds or
target. The candidate's `customer_segment` and `customer_tier` rows of the month are compared with the
published release's: one migration matrix per classification, with customers moved and the AUM they hold.
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
from flows.rules import Rules
from flows.rules_lines import check_candidate
from flows.settings import Settings

# Classification columns of customer_segment (docs/ARCHITECTURE.md, issue 3), compared when both the
# published release and the candidate have them.
CLASSIFICATION_COLUMNS = (
    "rfm_class", "activity_level", "value_activity_quadrant", "need_level", "credit_grade",
    "potential_flag", "customer_class", "churn_warning", "service_strategy",
)
# The models the candidate is built for; `+` also builds their parents (seeds included).
MART_SELECTION = ("+customer_segment", "+customer_tier")
NONE_LABEL = "(none)"
CSV_COLUMNS = ("classification", "from", "to", "customers", "aum_cny")


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


def default_out_dir(settings: Settings, as_of: dt.date, now: dt.datetime | None = None) -> Path:
    stamp = (now or dt.datetime.now()).strftime("%Y%m%dT%H%M%S")
    return settings.backtests_dir / f"{as_of:%Y-%m}-{stamp}"


def run_backtest(candidate: Path, as_of: dt.date, settings: Settings, out_dir: Path | None = None, *,
                 keep_scratch: bool = False, invoke: Invoke | None = None,
                 log: Callable[[str], None] = lambda _message: None) -> BacktestResult:
    """Evaluate `candidate` for the month `as_of` against the release published in `settings`' warehouse;
    write CSV and HTML."""
    rules = check_candidate(candidate)  # before any work: an invalid candidate starts nothing
    current_version = _published_month(settings.published_db, as_of)
    if not settings.working_db.exists():
        raise BacktestError(f"no working database at {settings.working_db}")
    _check_unlocked(settings.working_db)
    out_dir = Path(out_dir) if out_dir else default_out_dir(settings, as_of)
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = out_dir / "scratch"
    try:
        scratch_settings = _prepare_scratch(settings, rules, scratch, log)
        months = _months_to_replay(scratch_settings.working_db, as_of)
        args = ["build", "--select", *MART_SELECTION, "--exclude-resource-type", "test",
                "--exclude-resource-type", "unit_test", "--log-level", "warn"]
        for month in months:
            log(f"building the candidate's marts for {month:%Y-%m} in {scratch}")
            run_dbt(args, scratch_settings, as_of=month, invoke=invoke).raise_on_failure()
        classifications, versions = compare(settings.published_db, scratch_settings.working_db, as_of, rules)
    except DbtBuildError as exc:
        raise BacktestError(f"candidate build failed: {exc}") from None
    finally:
        if not keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    result = BacktestResult(as_of, Path(candidate), rules.version, current_version, versions, classifications,
                            out_dir, out_dir / "migration.csv", out_dir / "backtest.html")
    write_csv(result)
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
    """A scratch warehouse reading the warehouse's raw zone, and a copy of the dbt project with the
    candidate's seeds."""
    from flows.overrides import snapshot_into
    from flows.rules import write_seeds
    from flows.stages import raw_zone

    scratch.mkdir(parents=True, exist_ok=True)
    # The scratch warehouse is another warehouse: its own paths, the run's DuckDB and dbt knobs.
    copy = replace(settings, warehouse=scratch, rules_path=rules.path, dbt_project_dir=scratch / "dbt_project")
    log(f"reading the raw zone of {settings.warehouse} from {copy.working_db}")
    # A shared (read-only) lock while the batch log is read: no pipeline commits a batch meanwhile.
    con = _check_unlocked(settings.working_db, keep=True)
    try:
        batch_log = con.execute("SELECT * FROM audit.batch_log").arrow()
    finally:
        con.close()
    con = duckdb.connect(str(copy.working_db))
    try:
        con.execute("CREATE SCHEMA audit")
        con.register("batch_log_rows", batch_log)
        con.execute("CREATE TABLE audit.batch_log AS SELECT * FROM batch_log_rows")
        con.execute("CREATE SCHEMA raw")
        raw_zone.refresh_views(con, settings.warehouse)  # the original raw files, read-only
        # The warehouse's override log: an override never changes a published month (it starts at the first
        # month not yet published), so the replayed months get the overrides their releases had.
        snapshot_into(con, settings)
    finally:
        con.close()
    shutil.copytree(settings.dbt_project_dir, copy.dbt_project_dir, ignore=shutil.ignore_patterns("target", "logs", ".user.yml"),
                    dirs_exist_ok=True)
    write_seeds(rules, copy.dbt_project_dir / "seeds")
    return copy


def _months_to_replay(working_db: Path, as_of: dt.date) -> list[dt.date]:
    """Every evaluated month up to `as_of`, in order (the hysteresis replays from the first)."""
    from flows.stages.month_plan import evaluated_months

    con = duckdb.connect(str(working_db), read_only=True)
    try:
        months = evaluated_months(con, as_of)
    finally:
        con.close()
    return months if months and months[-1] == as_of else [*months, as_of]


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
        con.execute(f"attach '{_sql_path(published_db)}' as pub (read_only)")
        con.execute(f"attach '{_sql_path(candidate_db)}' as cand (read_only)")
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


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


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
    """Versions, a summary per classification and each matrix with at least one move, as rich tables."""
    from rich.markup import escape as e
    from rich.table import Table

    console.print(e(f"back-test {result.as_of:%Y-%m}: candidate {result.candidate_path}"))
    console.print(e(f"rules version: published {result.current_version} → candidate {result.candidate_version}"))
    versions = Table(title="rule-set versions")
    for column in ("rule set", "published", "candidate"):
        versions.add_column(column)
    for row in result.versions:
        versions.add_row(*map(e, row))
    console.print(versions)
    summary = Table(title=f"customers moving, {result.as_of:%Y-%m} (published → candidate)")
    for column in ("classification", "customers", "moved", "share moved", "AUM moved (CNY)"):
        summary.add_column(column, justify="left" if column == "classification" else "right")
    for c in result.classifications:
        summary.add_row(e(c.name), f"{c.customers:,}", f"{c.moved:,}", _share(c.moved, c.customers),
                        _money(c.aum_moved_cny))
    console.print(summary)
    for c in result.classifications:
        if not c.moved:
            continue
        rows, columns = c.values()
        table = Table(title=f"{e(c.name)}: {c.moved:,} customers move, AUM moved {_money(c.aum_moved_cny)} CNY")
        table.add_column("published ↓ / candidate →")
        for column in columns:
            table.add_column(e(column), justify="right")
        for row in rows:
            cells = []
            for column in columns:
                n = c.count(row, column)
                text = f"{n:,}" if n else "·"
                cells.append(f"[bold]{text}[/bold]" if row != column and n else text)
            table.add_row(e(row), *cells)
        console.print(table)
    unchanged = [c.name for c in result.classifications if not c.moved]
    if unchanged:
        console.print(e(f"no customer moves in: {', '.join(unchanged)}"))
    if result.candidate_version == result.current_version and any(c.moved for c in result.classifications):
        console.print(f"note: the candidate keeps version {result.candidate_version} although customers move; "
                      "bump `version` before it is used for a release")
    console.print(f"written: {result.csv_path}\n         {result.html_path}")


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.3em .6em}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
td.same{background:#eef5ee}td.up{background:#fde8c8;font-weight:bold}td.zero{color:#bbb}
.muted{color:#666}
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
        "<table><tr><th>rule set</th><th>published</th><th>candidate</th></tr>",
        *(f"<tr><td>{e(r)}</td><td>{e(p)}</td><td>{e(c)}</td></tr>" for r, p, c in result.versions),
        "</table><h2>Summary</h2><table><tr><th>classification</th><th>customers</th><th>moved</th>"
        "<th>share moved</th><th>AUM moved (CNY)</th></tr>",
    ]
    for c in result.classifications:
        parts.append(f"<tr><td><a href='#{e(c.name)}'>{e(c.name)}</a></td><td class='n'>{c.customers:,}</td>"
                     f"<td class='n'>{c.moved:,}</td><td class='n'>{_share(c.moved, c.customers)}</td>"
                     f"<td class='n'>{_money(c.aum_moved_cny)}</td></tr>")
    parts.append("</table>")
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
