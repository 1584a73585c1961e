"""Legal holds: sessions, agents or groups whose sessions retention must not purge."""

from __future__ import annotations

from typing import Any

from mautrix.util.async_db import Connection

from . import now_ms

_COLUMNS = "id, kind, value, reason, created_by, created_at, released_by, released_at"


async def insert_hold(conn: Connection, kind: str, value: str, reason: str, by: str) -> Any:
    """Add an active hold; returns its row."""
    return await conn.fetchrow(
        "INSERT INTO legal_hold (kind, value, reason, created_by, created_at)"
        f" VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}",
        kind,
        value,
        reason,
        by,
        now_ms(),
    )


async def release(conn: Connection, hold_id: int, by: str) -> Any:
    """End an active hold; returns its row, or None if there was no such active hold."""
    return await conn.fetchrow(
        "UPDATE legal_hold SET released_by=$1, released_at=$2"
        f" WHERE id=$3 AND released_at IS NULL RETURNING {_COLUMNS}",
        by,
        now_ms(),
        hold_id,
    )


async def select_holds(conn: Connection, include_released: bool) -> list[Any]:
    """Holds, oldest first."""
    where = "" if include_released else " WHERE released_at IS NULL"
    return await conn.fetch(f"SELECT {_COLUMNS} FROM legal_hold{where} ORDER BY id")
