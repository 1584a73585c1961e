"""Rows of the archive's access log."""

from __future__ import annotations

from typing import Any

from mautrix.util.async_db import Connection

from . import now_ms

_SELECT = "SELECT id, at, actor, action, target, details FROM archive_access"


async def insert_access(
    conn: Connection, actor: str, action: str, target: str, details_json: str
) -> None:
    """Append one entry."""
    await conn.execute(
        "INSERT INTO archive_access (at, actor, action, target, details)"
        " VALUES ($1, $2, $3, $4, $5)",
        now_ms(),
        actor,
        action,
        target,
        details_json,
    )


async def select_access(conn: Connection, limit: int, before: int | None) -> list[Any]:
    """Newest entries first, optionally only those older than id `before`."""
    if before is None:
        return await conn.fetch(f"{_SELECT} ORDER BY id DESC LIMIT $1", limit)
    return await conn.fetch(f"{_SELECT} WHERE id < $1 ORDER BY id DESC LIMIT $2", before, limit)
