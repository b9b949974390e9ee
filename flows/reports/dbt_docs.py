"""dbt docs as one offline page next to the month's release report, like `dbt docs generate --static`.

dbt's static page inlines the manifest and catalog, so it opens from disk with no server. Its only way
to the network is the usage tracker (a script from a CDN, loaded when the manifest allows tracking);
the copy disables it even if tracking were switched on, so the page never tries to phone home.

The AML models are confidential, their definitions too. `aml_node_ids` decides, from the manifest, what
is AML: the AML marts (`AML_TABLES`, tagged `aml_restricted`), every upstream node that feeds nothing but
AML nodes (int_aml_…, the KYC level seed), and the tests and unit tests of those. The page next to the
general report has the manifest and catalog without them; the AML nodes with their lineage (their
upstream nodes) go to `<warehouse>/restricted/reports/<YYYY-MM>/dbt-docs.html` (0700 folders, 0600 file).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from flows.adapters.dbt_runner import Invoke, run_dbt
from flows.months import month_end
from flows.reports.gate_report import write_restricted_text
from flows.settings import Settings
from flows.stages.publishing import AML_TABLES

log = logging.getLogger(__name__)

DBT_DOCS_PAGE = "dbt-docs.html"
DOCS_INDEX, MANIFEST, CATALOG = "index.html", "manifest.json", "catalog.json"
# Where dbt's docs page takes its data inline (dbt's own --static does the same replacement).
MANIFEST_SLOT, CATALOG_SLOT = '"MANIFEST.JSON INLINE DATA"', '"CATALOG.JSON INLINE DATA"'
PARTIAL_PARSE = "partial_parse.msgpack"
# The tag of the AML marts in dbt_project/models/marts/_marts__models.yml.
AML_TAG = "aml_restricted"
# Manifest collections keyed by unique_id, and the resource types that define a relation.
NODE_COLLECTIONS = ("nodes", "sources", "exposures", "metrics", "semantic_models", "saved_queries",
                    "unit_tests", "functions", "disabled")
RELATIONS = ("model", "seed", "snapshot", "source")
TESTS = ("test", "unit_test")
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
    # The AML part, under restricted/ (None when the project has no AML model).
    restricted_path: Path | None = None
    # unique_ids left out of the general page.
    aml_nodes: tuple[str, ...] = ()


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


def _entries(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every node, source, unit test, … of the manifest by unique_id (disabled ones are lists: skipped)."""
    return {uid: entry for key in NODE_COLLECTIONS for uid, entry in (manifest.get(key) or {}).items()
            if isinstance(entry, dict)}


def _depends_on(entry: dict[str, Any]) -> list[str]:
    return list((entry.get("depends_on") or {}).get("nodes") or [])


def _ancestors(ids: set[str], parent_map: dict[str, list[str]]) -> set[str]:
    found: set[str] = set()
    todo = list(ids)
    while todo:
        for parent in parent_map.get(todo.pop(), []):
            if parent not in found:
                found.add(parent)
                todo.append(parent)
    return found - ids


def aml_node_ids(manifest: dict[str, Any]) -> set[str]:
    """The unique_ids of the AML part of the dbt project: the AML marts (`AML_TABLES` or tag `aml_restricted`),
    every upstream relation that feeds nothing but AML nodes, and every test, unit test or other resource
    that depends on one of them. Shared upstream models (staging, FX, transactions) stay general."""
    entries = _entries(manifest)
    parents, children = manifest.get("parent_map") or {}, manifest.get("child_map") or {}
    aml = {uid for uid, e in entries.items() if e.get("resource_type") == "model"
           and (e.get("name") in AML_TABLES or AML_TAG in (e.get("tags") or []))}
    grown = True
    while grown:
        grown = False
        for uid in sorted(_ancestors(aml, parents)):
            feeds = [c for c in children.get(uid, []) if entries.get(c, {}).get("resource_type") not in TESTS]
            if feeds and all(c in aml for c in feeds):
                aml.add(uid)
                grown = True
    aml |= {uid for uid, e in entries.items()
            if e.get("resource_type") not in RELATIONS and set(_depends_on(e)) & aml}
    return aml


def docs_subset(manifest: dict[str, Any], catalog: dict[str, Any],
                keep: Callable[[str], bool]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest and catalog with only the nodes (sources, tests, …) whose unique_id `keep` accepts;
    lineage maps are cut to match, macros and doc blocks stay."""
    kept_manifest = dict(manifest)
    for key in NODE_COLLECTIONS:
        if isinstance(manifest.get(key), dict):
            kept_manifest[key] = {uid: e for uid, e in manifest[key].items() if keep(uid)}
    for key in ("parent_map", "child_map", "group_map"):
        if isinstance(manifest.get(key), dict):
            kept_manifest[key] = {k: [u for u in ids if keep(u)] for k, ids in manifest[key].items()
                                  if key == "group_map" or keep(k)}
    kept_catalog = dict(catalog)
    for key in ("nodes", "sources"):
        kept_catalog[key] = {uid: e for uid, e in (catalog.get(key) or {}).items() if keep(uid)}
    return kept_manifest, kept_catalog


def _inline(data: dict[str, Any]) -> str:
    # "</" escaped so that no SQL or description text can end the page's script early.
    return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")


def static_page(index_html: str, manifest: dict[str, Any], catalog: dict[str, Any]) -> str:
    """dbt's docs page with `manifest` and `catalog` inlined (what `dbt docs generate --static` writes)."""
    if index_html.count(MANIFEST_SLOT) != 1 or index_html.count(CATALOG_SLOT) != 1:
        raise DbtDocsError("dbt's docs index.html has no place for the inline manifest and catalog")
    return (index_html.replace(MANIFEST_SLOT, _inline(manifest), 1)
            .replace(CATALOG_SLOT, _inline(catalog), 1))


def write_dbt_docs(settings: Settings, as_of_month: date, invoke: Invoke | None = None) -> DbtDocs:
    """Generate the dbt docs against the working database and write `<reports>/<YYYY-MM>/dbt-docs.html`
    without the AML models, and `<warehouse>/restricted/reports/<YYYY-MM>/dbt-docs.html` with them.

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
        result = run_dbt(["docs", "generate", "--quiet", "--target-path", target], settings,
                         as_of=as_of, invoke=invoke)
        if not result.success:
            raise DbtDocsError(f"dbt docs for {as_of:%Y-%m} not generated: {result.error_message()}")
        files = [Path(target) / name for name in (DOCS_INDEX, MANIFEST, CATALOG)]
        missing = [f.name for f in files if not f.exists()]
        if missing:
            raise DbtDocsError(f"dbt docs generate wrote no {', '.join(missing)} for {as_of:%Y-%m}")
        index_html = files[0].read_text(encoding="utf-8")
        manifest, catalog = (json.loads(f.read_text(encoding="utf-8")) for f in files[1:])
    aml = aml_node_ids(manifest)
    general = static_page(index_html, *docs_subset(manifest, catalog, lambda uid: uid not in aml))
    html, neutralised = offline_page(general)
    page = dbt_docs_path(settings.reports_dir, as_of)
    page.parent.mkdir(parents=True, exist_ok=True)
    tmp = page.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, page)
    restricted = None
    if aml:
        lineage = aml | _ancestors(aml, manifest.get("parent_map") or {})
        restricted_html, _ = offline_page(static_page(
            index_html, *docs_subset(manifest, catalog, lambda uid: uid in lineage)))
        restricted = write_restricted_text(settings, settings.restricted_reports_dir / f"{as_of:%Y-%m}" / DBT_DOCS_PAGE,
                                           restricted_html)
    seconds = time.perf_counter() - started
    log.info("dbt docs for %s: %s, AML part %s (%.1f s)", f"{as_of:%Y-%m}", page, restricted, seconds)
    return DbtDocs(page, seconds, neutralised, restricted, tuple(sorted(aml)))
