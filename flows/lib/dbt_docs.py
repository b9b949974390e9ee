"""dbt docs as one offline page: `dbt docs generate --static`, copied next to the month's release report.

dbt's static page inlines the manifest and catalog, so it opens from disk with no server. Its only way
to the network is the usage tracker (a script from a CDN, loaded when the manifest allows tracking);
the copy disables it even if tracking were switched on, so the page never tries to phone home.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from flows.lib.dbt_runner import Invoke, run_dbt
from flows.months import month_end
from flows.settings import Settings

log = logging.getLogger(__name__)

DBT_DOCS_PAGE = "dbt-docs.html"
STATIC_INDEX = "static_index.html"
PARTIAL_PARSE = "partial_parse.msgpack"
# (what, pattern, replacement): the tracker's switch and its CDN script, neutralised in the copy.
NEUTRALISE = (
    ("usage tracking", re.compile(r"track:\w+\.send_anonymous_usage_stats"), "track:!1"),
    ("tracker script", re.compile(r'\.src="(?:https?:)?//[^"]*"'), '.src=""'),
)


class DbtDocsError(RuntimeError):
    """`dbt docs generate` failed; the message is one line from dbt."""


@dataclass(frozen=True)
class DbtDocs:
    """The offline dbt docs page of one month and how it was made."""

    path: Path
    seconds: float
    neutralised: tuple[str, ...]


def dbt_docs_path(reports_dir: Path, as_of_month: date) -> Path:
    """`<reports_dir>/<YYYY-MM>/dbt-docs.html`."""
    return Path(reports_dir) / f"{as_of_month:%Y-%m}" / DBT_DOCS_PAGE


def offline_page(html: str) -> tuple[str, tuple[str, ...]]:
    """The static docs page with its network hooks disabled, and the names of the hooks found."""
    found = []
    for what, pattern, replacement in NEUTRALISE:
        html, count = pattern.subn(replacement, html)
        if count:
            found.append(what)
    return html, tuple(found)


def write_dbt_docs(settings: Settings, as_of_month: date, invoke: Invoke | None = None) -> DbtDocs:
    """Generate the dbt docs against the working database and write `<reports>/<YYYY-MM>/dbt-docs.html`.

    Opens the working database through dbt (one writer): call it when no other stage holds the file. The
    rule seeds are those the last build rendered (dbt_project/seeds), as for the build of the release.
    """
    as_of = month_end(as_of_month)
    started = time.perf_counter()
    # A target of its own keeps dbt_project/target as the build left it; the build's partial-parse file
    # is copied in so dbt re-parses only what changed (a full parse is ~8 s of the ~15 s).
    with tempfile.TemporaryDirectory(prefix="dbt-docs-") as target:
        build_parse = settings.dbt_project_dir / "target" / PARTIAL_PARSE
        if build_parse.exists():
            shutil.copy(build_parse, Path(target) / PARTIAL_PARSE)
        result = run_dbt(["docs", "generate", "--static", "--quiet", "--target-path", target], settings,
                         as_of=as_of, invoke=invoke)
        if not result.success:
            raise DbtDocsError(f"dbt docs for {as_of:%Y-%m} not generated: {result.error_message()}")
        static = Path(target) / STATIC_INDEX
        if not static.exists():
            raise DbtDocsError(f"dbt docs generate --static wrote no {STATIC_INDEX} for {as_of:%Y-%m}")
        html, neutralised = offline_page(static.read_text(encoding="utf-8"))
    seconds = time.perf_counter() - started
    page = dbt_docs_path(settings.reports_dir, as_of)
    page.parent.mkdir(parents=True, exist_ok=True)
    tmp = page.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, page)
    log.info("dbt docs for %s: %s (%.1f s)", f"{as_of:%Y-%m}", page, seconds)
    return DbtDocs(page, seconds, neutralised)
