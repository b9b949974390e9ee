"""Progress of long work: one sink the stages report to, drawn as bars on a terminal.

Stages call `report(stage, done, total)` (batches loaded of N, dbt nodes done of N, …). The CLI installs a
terminal sink for the duration of a command (`terminal_progress()`); otherwise reports go nowhere, and the
logs carry one line per stage from the stages themselves.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Sink(Protocol):
    def __call__(self, stage: str, done: int, total: int | None) -> None: ...


def _ignore(stage: str, done: int, total: int | None) -> None:
    return None


_sink: Sink = _ignore
_lock = threading.Lock()


def report(stage: str, done: int, total: int | None = None) -> None:
    """Tell the current sink that `stage` has `done` of `total` steps done (total None: unknown yet)."""
    with _lock:
        sink = _sink
    sink(stage, done, total)


@contextmanager
def reporting_to(sink: Sink) -> Iterator[None]:
    """Send progress reports to `sink` inside the block."""
    global _sink
    with _lock:
        previous, _sink = _sink, sink
    try:
        yield
    finally:
        with _lock:
            _sink = previous


@contextmanager
def terminal_progress(enabled: bool) -> Iterator[None]:
    """A rich progress bar per stage on the terminal while the block runs (nothing when not enabled)."""
    if not enabled:
        yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bars = Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    transient=False)
    tasks: dict[str, int] = {}

    def draw(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars, reporting_to(draw):
        yield
