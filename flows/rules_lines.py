"""Validate a candidate rules file and name the line of its first problem.

`flows.rules.load_rules` names problems by key path (`rule_sets.cib_monthly.tiers[2]: missing 'name'`).
Here the YAML is also composed (`yaml.compose`) to map every key path to its 1-based line, so a
candidate is refused with `"<file>, line N: <path>: <problem>"`.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from flows.rules import Rules, RulesError, load_rules

_PATH = re.compile(r"^[A-Za-z_][\w]*(?:\[\d+\])*(?:\.[A-Za-z_][\w]*(?:\[\d+\])*)*$")
_QUOTED = re.compile(r"'([^']*)'")
_FLOOR_OF = re.compile(r"floor of (\S+) \(")


def line_map(text: str) -> dict[str, int]:
    """Key path → 1-based line of the node (`""` is the document). Raises RulesError on a duplicate key."""
    root = yaml.compose(text)
    lines: dict[str, int] = {}
    if root is not None:
        _walk(root, "", lines, {})
    return lines


def _walk(node: yaml.Node, path: str, lines: dict[str, int], values: dict) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            child = f"{path}.{name}" if path else name
            if name in seen:
                raise _LineError(key.start_mark.line + 1, child, f"duplicate key '{name}'")
            seen.add(name)
            # The key's line: a value on the next lines (a block) still belongs to its key.
            lines[child] = key.start_mark.line + 1
            _walk(value, child, lines, values)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, f"{path}[{index}]", lines, values)


class _LineError(Exception):
    def __init__(self, line: int, path: str, problem: str):
        super().__init__(problem)
        self.line, self.path, self.problem = line, path, problem


def _scalars(text: str) -> list[tuple[str, str]]:
    """(path, value) of every scalar, in document order."""
    root = yaml.compose(text)
    found: list[tuple[str, str]] = []

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(value, f"{path}.{key.value}" if path else str(key.value))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, f"{path}[{index}]")
        elif node is not None:
            found.append((path, str(node.value)))

    walk(root, "")
    return found


def locate(message: str, text: str, where: str) -> tuple[int, str, str]:
    """(line, key path, problem) for a RulesError message of load_rules on `text` (read from `where`)."""
    rest = message[len(where) + 2:] if message.startswith(f"{where}: ") else message
    path, problem = "", rest
    head, sep, tail = rest.partition(": ")
    lines = line_map(text)
    first = rest.split(" ", 1)[0]
    if sep and _PATH.match(head):
        path, problem = head, tail
    elif "." in first and first in lines:  # "gate.max_quarantine_rate must be …"
        path = first
    path = _refine(path, problem, text, lines)
    # The deepest known prefix of the path (a missing key is reported at its parent).
    probe = path
    while probe and probe not in lines:
        probe = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", probe)
    return (lines[probe] if probe else 1), path, problem


def _refine(path: str, problem: str, text: str, lines: dict[str, int]) -> str:
    """Point at the offending entry inside `path` when the problem names it."""
    scalars = _scalars(text)
    floor = _FLOOR_OF.search(problem)
    if floor:  # "floor of GOLD (…) must be above the tier below": the tier whose code is GOLD
        for item_path, value in scalars:
            if item_path.startswith(f"{path}.tiers[") and item_path.endswith(".code") and value == floor[1]:
                return item_path.rsplit(".", 1)[0]
    if "lowest tier's floor" in problem and f"{path}.tiers[0]" in lines:
        return f"{path}.tiers[0]"
    if problem.startswith("duplicate tier code"):
        seen: set[str] = set()
        for item_path, value in scalars:
            if item_path.startswith(f"{path}.tiers[") and item_path.endswith(".code"):
                if value in seen:
                    return item_path.rsplit(".", 1)[0]
                seen.add(value)
    if "grace_months" in problem and f"{path}.grace_months" in lines:
        return f"{path}.grace_months"
    quoted = _QUOTED.findall(problem)
    if quoted and not problem.startswith("missing "):
        # The value the problem quotes, inside the path (the first match in document order).
        prefix = path
        for item_path, value in scalars:
            inside = not prefix or item_path == prefix or item_path.startswith((f"{prefix}.", f"{prefix}["))
            if inside and value == quoted[0]:
                return item_path
    return path


def check_candidate(path: str | Path) -> Rules:
    """Load and validate a rules file; raise RulesError as `"<file>, line N: <path>: <problem>"`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(f"rules file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{path}: cannot read: {exc}") from None
    try:
        line_map(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = exc.problem or exc.context
        if exc.context and exc.context_mark and exc.problem_mark and exc.context_mark.line != mark.line:
            problem += f" ({exc.context} started at line {exc.context_mark.line + 1})"
        raise RulesError(f"{path}, line {line}: not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"{path}: not valid YAML: {exc}") from None
    except _LineError as exc:
        raise RulesError(f"{path}, line {exc.line}: {exc.path}: {exc.problem}") from None
    try:
        return load_rules(path)
    except RulesError as exc:
        line, key_path, problem = locate(str(exc), text, str(path))
        raise RulesError(f"{path}, line {line}: {key_path or '(document)'}: {problem}") from None
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        # A section of the wrong shape (a list where a mapping belongs, …) that load_rules does not name.
        raise RulesError(f"{path}: not a valid rules file: {type(exc).__name__}: {exc}") from None
