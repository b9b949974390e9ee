"""The gate results page: one self-contained HTML file (inline CSS, no scripts, fonts or external URLs).

GX Data Docs pull styles and scripts from public CDNs and render blank offline, as in most bank networks;
this page needs nothing but the file itself.

AML results are confidential. An expectation is AML when its suite validates one of the AML marts
(`is_aml_table`, the one definition the gate page, the release report and the dbt docs split by): the
general page `<warehouse>/reports/<YYYY-MM>/gate.html` carries none of them (no name, no observed value,
no AML column in the reference figures), only a neutral line; they go to
`<warehouse>/restricted/reports/<YYYY-MM>/gate.html`, folders 0700 and files 0600 like
`restricted/aml.duckdb`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from html import escape
from pathlib import Path
from typing import Any, TypeVar

from flows.settings import Settings
from flows.stages.publishing import (
    AML_TABLES,
    RESTRICTED_FILE_MODE,
    _prepare_restricted_dir,
)

GATE_PAGE = "gate.html"
# The general pages' only word on AML: no name, no number.
AML_NOTE = "AML results: restricted report (AML staff only)"
# The reference figure listing the candidate's columns as `table.column` (expectations/classifications.py).
CANDIDATE_COLUMNS = "candidate_columns"
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------- AML


def is_aml_table(table: str) -> bool:
    """True for the tables of the gate's AML suites (expectations/aml_*.py: suite TABLE = AML mart)."""
    return table in AML_TABLES


def split_aml(items: Iterable[T], table: Callable[[T], Any] = lambda item: item.table,
              ) -> tuple[list[T], list[T]]:
    """(general, AML) items (gate results), by the table each one's expectation suite validates."""
    general: list[T] = []
    aml: list[T] = []
    for item in items:
        (aml if is_aml_table(str(table(item))) else general).append(item)
    return general, aml


def write_restricted_text(settings: Settings, path: Path, text: str) -> Path:
    """Write `path`, a file under `settings.restricted_dir`, atomically, its folders 0700 and the file 0600.

    Every folder from `restricted/` down is created (or put back) 0700 before anything is written, so the
    file is never readable by others, not even before its own mode is set.
    """
    root = settings.restricted_dir
    folder = root
    _prepare_restricted_dir(folder)
    for part in path.parent.relative_to(root).parts:
        folder = folder / part
        _prepare_restricted_dir(folder)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, RESTRICTED_FILE_MODE)
    os.replace(tmp, path)
    return path


def _general_reference(reference: dict[str, Any]) -> dict[str, Any]:
    """The reference figures without the AML marts' columns."""
    listed = reference.get(CANDIDATE_COLUMNS)
    if not isinstance(listed, str):
        return reference
    kept = [c for c in listed.split(",") if c and not is_aml_table(c.split(".", 1)[0])]
    return {**reference, CANDIDATE_COLUMNS: ",".join(kept)}


# ---------------------------------------------------------------------------------------------- page

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "PingFang SC", "Microsoft YaHei", sans-serif;
       margin: 24px; color: #1d2733; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
.meta { color: #5b6775; margin-bottom: 16px; }
.banner { padding: 10px 14px; border-radius: 6px; font-weight: 600; margin: 12px 0 18px; }
.pass { background: #e6f4ea; color: #17612e; }
.fail { background: #fce8e6; color: #a52714; }
.warn { background: #fef7e0; color: #7a5a00; }
table { border-collapse: collapse; width: 100%; margin-bottom: 22px; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px; border-bottom: 1px solid #e3e7ec; }
th { background: #f4f6f8; font-weight: 600; }
td.status { font-weight: 600; white-space: nowrap; }
tr.failed-blocking td.status { color: #a52714; }
tr.failed-warning td.status { color: #7a5a00; }
tr.passed td.status { color: #17612e; }
code, pre { font: 12px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
pre { white-space: pre-wrap; word-break: break-all; margin: 4px 0 0; background: #f7f8fa; padding: 6px; }
details summary { cursor: pointer; color: #3b5b7a; }
.small { color: #5b6775; font-size: 12px; }
"""


def check_verdict(severity: str, success: bool) -> str:
    """How one check's result reads: a blocking check passed or FAILED; a warning never fails, it is raised
    or not (`passed` on a warning read as if its bound did not matter)."""
    if severity == "blocking":
        return "passed" if success else "FAILED"
    return "warning not raised" if success else "warning raised"


def _status(row: Any) -> tuple[str, str]:
    if row.success:
        return "passed", check_verdict(row.severity, row.success)
    return ("failed-blocking" if row.severity == "blocking" else "failed-warning"), check_verdict(row.severity,
                                                                                                   row.success)


def _details(raw: str) -> str:
    try:
        pretty = json.dumps(json.loads(raw), ensure_ascii=False, indent=2)
    except (TypeError, ValueError):
        pretty = raw or ""
    if pretty in ("", "{}"):
        return ""
    return f"<details><summary>details</summary><pre>{escape(pretty)}</pre></details>"


def render_gate_report(result: Any, restricted: bool = False) -> str:
    """HTML of one gate run: verdict, reference figures from raw, then every check (failures first).

    The general page (default) leaves the AML expectations out and says only that their results are in
    the restricted report (and, when one blocked the run, that a restricted expectation did); the
    restricted page (`restricted=True`) has the AML expectations only.
    """
    general, aml = split_aml(result.results)
    shown = aml if restricted else general
    blocking = [r.full_name for r in shown if r.severity == "blocking" and not r.success]
    warnings = [r.full_name for r in shown if r.severity != "blocking" and not r.success]
    aml_blocked = any(r.severity == "blocking" and not r.success for r in aml)
    banners = []
    if blocking:
        banners.append(f'<div class="banner fail">Blocked: {len(blocking)} blocking expectation(s) failed — '
                       f'{escape(", ".join(blocking))}</div>')
    if not restricted and aml_blocked:
        banners.append(f'<div class="banner fail">Blocked by restricted AML expectations — '
                       f"{escape(AML_NOTE)}</div>")
    if warnings:
        banners.append(f'<div class="banner warn">{"Also" if banners else "Passed with"} {len(warnings)} '
                       f'warning(s) — {escape(", ".join(warnings))}</div>')
    if not banners:
        banners.append(f'<div class="banner pass">Passed: all {len(shown)} expectations met</div>')
    order = {"failed-blocking": 0, "failed-warning": 1, "passed": 2}
    rows = sorted(shown, key=lambda r: (order[_status(r)[0]], r.table, r.name))
    body = []
    for r in rows:
        css, label = _status(r)
        body.append(
            f'<tr class="{css}"><td class="status">{label}</td><td>{escape(r.severity)}</td>'
            f"<td><code>{escape(r.table)}</code></td><td><code>{escape(r.name)}</code>"
            f'<div class="small">{escape(r.description)}</div></td>'
            f"<td>{escape(r.observed_value)}{_details(r.details)}</td></tr>")
    figures = result.reference if restricted else _general_reference(result.reference)
    reference = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
                        for k, v in sorted(figures.items()))
    month = f"{result.as_of_month:%Y-%m}"
    if restricted:
        title, heading = f"AML gate {month}", f"AML quality gate — {month} (restricted, AML staff only)"
    else:
        title, heading = f"Gate {month}", f"Quality gate — {month}"
    aml_note = f'<p class="small">{escape(AML_NOTE)}</p>' if aml and not restricted else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} — {"passed" if result.success else "blocked"}</title>
<style>{CSS}</style></head>
<body>
<h1>{escape(heading)}</h1>
<div class="meta">run <code>{escape(result.gate_run_id)}</code> · {escape(str(result.started_at))} →
{escape(str(result.finished_at))} · rules {escape(result.rules_version)} ·
{len(shown)} expectations, {len(blocking)} blocking and {len(warnings)} warning failures</div>
{chr(10).join(banners)}
{aml_note}
<h2>Reference figures (computed from raw)</h2>
<table>{reference or '<tr><td>none</td></tr>'}</table>
<h2>Expectations</h2>
<table><thead>
<tr><th>status</th><th>severity</th><th>table</th><th>expectation</th><th>observed</th></tr>
</thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
</body></html>
"""


def write_gate_report(result: Any, settings: Settings) -> Path:
    """Write `<reports>/<YYYY-MM>/gate.html` atomically (tmp file, then os.replace) without the AML
    expectations, and, when the run has AML results, `<restricted reports>/<YYYY-MM>/gate.html` with them
    (0700 folders, 0600 file)."""
    month = f"{result.as_of_month:%Y-%m}"
    target = settings.reports_dir / month / GATE_PAGE
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(render_gate_report(result), encoding="utf-8")
    os.replace(tmp, target)
    if split_aml(result.results)[1]:
        write_restricted_text(settings, settings.restricted_reports_dir / month / GATE_PAGE,
                              render_gate_report(result, restricted=True))
    return target
