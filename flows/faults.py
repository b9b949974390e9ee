"""Crash points for the crash tests: `TIERING_KILL_AT=<point>[#n]` SIGKILLs the process at a named point.

The suite kills a real `tiering run` at the riskiest moment of each stage (a batch staged but not committed,
dbt half-way through a month, a month validated but its gate result not stored, a release built but not
swapped in) and checks that a re-run publishes the same release as an uninterrupted run. `#n` kills at the
n-th time the point is reached (default the first). Unset — always, outside those tests — a point costs one
dictionary lookup.
"""

from __future__ import annotations

import os
import signal

KILL_AT_ENV = "TIERING_KILL_AT"
_reached: dict[str, int] = {}


def crash_point(point: str) -> None:
    """SIGKILL this process if TIERING_KILL_AT names `point` (and this is its n-th time)."""
    wanted = os.environ.get(KILL_AT_ENV)
    if not wanted:
        return
    name, _, nth = wanted.partition("#")
    if name != point:
        return
    _reached[point] = _reached.get(point, 0) + 1
    if _reached[point] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
