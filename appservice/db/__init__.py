"""Backline's store: one module per table, all SQL lives here."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import cast

from mautrix.util.async_db import Connection, Database, Scheme
from mautrix.util.async_db.aiosqlite import in_transaction as sqlite_in_transaction

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
        if conn.scheme != Scheme.SQLITE:
            # mautrix's stub declares transaction() a coroutine; it is a context manager.
            scope = cast(AbstractAsyncContextManager[None], conn.transaction())
            async with scope:
                yield conn
        elif sqlite_in_transaction.get():
            yield conn
        else:
            async with _immediate(conn):
                yield conn


@asynccontextmanager
async def _immediate(conn: Connection) -> AsyncIterator[None]:
    """An SQLite transaction that takes the write lock at BEGIN.

    A plain BEGIN reads first and asks for the lock at the first write; if another process
    (the CLI placing a hold, say) wrote in between, the commit fails at once. BEGIN IMMEDIATE
    waits for the lock instead (up to the busy timeout), so the transaction then goes through.
    """
    await conn.execute("BEGIN IMMEDIATE")
    token = sqlite_in_transaction.set(True)
    try:
        yield
    except BaseException:
        await conn.execute("ROLLBACK")
        raise
    else:
        await conn.execute("COMMIT")
    finally:
        sqlite_in_transaction.reset(token)


__all__ = ["connection", "now_ms", "open_database", "transaction"]
