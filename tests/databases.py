"""Fresh databases for tests, on both engines Backline supports."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

# CI and every developer machine run PostgreSQL here with trust authentication.
POSTGRES_ADMIN_URL = os.environ.get(
    "BACKLINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
ENGINES = ("sqlite", "postgres")


@asynccontextmanager
async def fresh_database(engine: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database URL of an empty database, dropped afterwards."""
    if engine == "sqlite":
        yield f"sqlite:{tmp_path / 'backline.db'}"
        return

    name = f"backline_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
