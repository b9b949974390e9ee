"""The gate results page: one self-contained HTML file (inline CSS, no scripts, fonts or external URLs).

GX Data Docs pull styles and scripts from public CDNs and render blank offline, as in most bank networks;
this page needs nothing but the file itself.
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from typing import Any

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


def _status(row: Any) -> tuple[str, str]:
    if row.success:
        return "passed", "passed"
    return ("failed-blocking", "FAILED") if row.severity == "blocking" else ("failed-warning", "warning")


def _details(raw: str) -> str:
    try:
        pretty = json.dumps(json.loads(raw), ensure_ascii=False, indent=2)
    except (TypeError, ValueError):
        pretty = raw or ""
    if pretty in ("", "{}"):
        return ""
    return f"<details><summary>details</summary><pre>{escape(pretty)}</pre></details>"


def render_gate_report(result: Any) -> str:
    """HTML of one gate run: verdict, reference figures from raw, then every check (failures first)."""
    blocking, warnings = result.blocking_failures, result.warning_failures
    if blocking:
        banner = (f'<div class="banner fail">Blocked: {len(blocking)} blocking expectation(s) failed — '
                  f'{escape(", ".join(blocking))}</div>')
    elif warnings:
        banner = (f'<div class="banner warn">Passed with {len(warnings)} warning(s) — '
                  f'{escape(", ".join(warnings))}</div>')
    else:
        banner = f'<div class="banner pass">Passed: all {len(result.results)} expectations met</div>'
    order = {"failed-blocking": 0, "failed-warning": 1, "passed": 2}
    rows = sorted(result.results, key=lambda r: (order[_status(r)[0]], r.table, r.name))
    body = []
    for r in rows:
        css, label = _status(r)
        body.append(
            f'<tr class="{css}"><td class="status">{label}</td><td>{escape(r.severity)}</td>'
            f"<td><code>{escape(r.table)}</code></td><td><code>{escape(r.name)}</code>"
            f'<div class="small">{escape(r.description)}</div></td>'
            f"<td>{escape(r.observed_value)}{_details(r.details)}</td></tr>")
    reference = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
                        for k, v in sorted(result.reference.items()))
    month = f"{result.as_of_month:%Y-%m}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gate {escape(month)} — {"passed" if result.success else "blocked"}</title>
<style>{CSS}</style></head>
<body>
<h1>Quality gate — {escape(month)}</h1>
<div class="meta">run <code>{escape(result.gate_run_id)}</code> · {escape(str(result.started_at))} →
{escape(str(result.finished_at))} · rules {escape(result.rules_version)} ·
{len(result.results)} expectations, {len(blocking)} blocking and {len(warnings)} warning failures</div>
{banner}
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


def write_gate_report(result: Any, reports_dir: Path) -> Path:
    """Write `<reports_dir>/<YYYY-MM>/gate.html` atomically (tmp file, then os.replace)."""
    target = Path(reports_dir) / f"{result.as_of_month:%Y-%m}" / "gate.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(render_gate_report(result), encoding="utf-8")
    os.replace(tmp, target)
    return target
