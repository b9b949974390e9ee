"""The code layout of docs/ARCHITECTURE.md ("Code layout"): packages by role, distinct module names, one-way imports.

Read from the source (ast), nothing is imported: a module-level or a function-level import counts the same.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("stages", "commands", "reports", "adapters")


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


SOURCES = {_module(p): p for folder in ("flows", "expectations") for p in sorted((ROOT / folder).rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in SOURCES.items()}


def _imports(name: str) -> set[str]:
    """The project modules `name` imports (`from flows.stages import raw_zone` → flows.stages.raw_zone)."""
    found = set()
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in SOURCES else node.module)
    return {m for m in found if m in SOURCES and m != name}


def _role(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "flows" and len(parts) > 2 and parts[1] in ROLES else None


def _defines_a_flow(name: str) -> bool:
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Name) and target.id == "flow":
                    return True
    return False


STAGE_FLOWS = {name for name in SOURCES if _role(name) == "stages" and _defines_a_flow(name)}


def test_the_layout_has_its_packages_and_no_flows_lib():
    assert not (ROOT / "flows" / "lib").exists()
    assert STAGE_FLOWS == {f"flows.stages.{s}" for s in ("ingest", "build", "gate", "publish", "report")}
    for role in ROLES:
        init = ROOT / "flows" / role / "__init__.py"
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert docstring and "\n" not in docstring, f"{init}: a one-line docstring saying what belongs there"


def test_no_two_modules_share_a_name():
    names = Counter(name.rsplit(".", 1)[-1] for name, path in SOURCES.items() if path.name != "__init__.py")
    assert [name for name, count in names.items() if count > 1] == []


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_imports_go_one_way(name):
    imports, role = _imports(name), _role(name)
    assert "flows.cli" not in imports, "nothing imports cli.py"
    if role == "stages":
        assert not {m for m in imports if _role(m) == "commands"}, "a stage never imports a command"
    if role == "commands":
        assert not imports & STAGE_FLOWS, "a command uses the stages' plain logic, never their Prefect flows"
    if role in ("reports", "adapters"):
        assert not {m for m in imports if _role(m) == "commands"}
        # The one way back: the published table names and the restricted folder of the publishing stage.
        assert {m for m in imports if _role(m) == "stages"} <= {"flows.stages.publishing"}
    if role == "adapters":
        assert not {m for m in imports if _role(m) == "reports"}
