"""Debian packages some tests need (installed by .ci/install-system-deps) and how their absence is treated:
in CI (`CI` set, as `.ci/run` does) a missing package fails the test; on a workstation it skips it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

INSTALL_HINT = "run .ci/install-system-deps (make test does)"
CHROMIUM = Path("/usr/bin/chromium")
# Headless, no sandbox (root in CI) and no background traffic: the network is closed, and Chromium would
# otherwise keep retrying its update, sync and QUIC probes.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require(what: str, present: bool) -> None:
    """Fail (CI) or skip (elsewhere) unless `present`; the message names what is missing and the fix."""
    if present:
        return
    message = f"{what}: {INSTALL_HINT}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
