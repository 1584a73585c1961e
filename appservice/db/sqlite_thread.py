"""Running work on the thread that owns an SQLite connection, in one handover."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import orjson
from mautrix.util.async_db import Connection

T = TypeVar("T")


def numbered(query: str) -> str:
    """The query with sqlite3's numbered `?N` placeholders; convert once, at import."""
    return re.sub(r"\$(\d+)", r"?\1", query)


def json_param(values: list[Any]) -> str:
    """A list as one query parameter, for `json_each`: one placeholder, however long."""
    # Text, not orjson's bytes: SQLite would take a blob for its binary JSON form.
    return orjson.dumps(values).decode()


async def on_sqlite_thread(conn: Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run `work` on the thread that owns the SQLite connection, as one call.

    aiosqlite hands every statement, fetch and cursor close to that thread and waits for the
    answer; for small statements those handovers cost more than the statements. Its
    `_execute` (not public API, stable since aiosqlite 0.17) runs a function there instead.
    """
    wrapped = conn.wrapped
    run = cast(Callable[[Callable[[], T]], Awaitable[T]], wrapped._execute)
    return await run(lambda: work(wrapped._conn))
