"""Backline's store: one module per table, all SQL lives here."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import cast
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from mautrix.util.async_db import Connection, Database

from .database import open_database


def now_ms() -> int:
    """Wall-clock time in milliseconds, the unit every timestamp column uses."""
    return int(time.time() * 1000)


def connection(db: Database) -> AbstractAsyncContextManager[Connection]:
    """A pooled connection (the one already in use by this task, if any)."""
    return db.acquire()


@asynccontextmanager
async def transaction(db: Database) -> AsyncIterator[Connection]:
    """A connection inside a transaction that commits on exit and rolls back on error."""
    async with connection(db) as conn:
        # mautrix's stub declares transaction() a coroutine; it is a context manager.
        scope = cast(AbstractAsyncContextManager[None], conn.transaction())
        async with scope:
            yield conn


__all__ = ["connection", "now_ms", "open_database", "transaction"]
