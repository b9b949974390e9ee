"""One run per warehouse: scheduled flows hold the warehouse's Prefect global concurrency slot.

DuckDB allows one writer per file, so the daily ingest and the monthly run of one warehouse must not
overlap. A run started by a deployment creates the limit (1 slot) if it is missing (`tiering serve`
creates it up front) and waits for the slot. Runs outside a deployment (the CLI, tests) take no slot:
there is no limit for them to wait on, and DuckDB's own lock refuses a second writer with a clear error.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.runtime import deployment as runtime_deployment


def warehouse_limit_name(warehouse: Path) -> str:
    """`tiering-warehouse-<folder>-<hash>`: readable in the UI, unique per absolute path, and made only of
    characters Prefect allows in a limit name."""
    resolved = Path(warehouse).resolve()
    readable = re.sub(r"[^a-z0-9-]+", "-", resolved.name.lower()).strip("-")[:30] or "root"
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    return f"tiering-warehouse-{readable}-{digest}"


@contextmanager
def warehouse_slot(warehouse: Path) -> Iterator[None]:
    """Hold the warehouse's concurrency slot while a deployment's run works on it."""
    if runtime_deployment.id is None:
        yield
        return
    name = ensure_warehouse_limit(warehouse)
    # Strict: were the limit deleted in between, the run must stop rather than run unguarded.
    with concurrency(name, occupy=1, strict=True):
        yield


def ensure_warehouse_limit(warehouse: Path, reset: bool = False) -> str:
    """Create the warehouse's global concurrency limit (1 slot) if missing; `reset` also sets an existing
    one back to 1 slot, active. Returns its name."""
    name = warehouse_limit_name(warehouse)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:  # another run of this warehouse created it a moment ago
                pass
        else:
            if reset:
                client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=1, active=True))
    return name
