"""The outbox: homeserver calls decided in a transaction, carried out after it commits."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mautrix.util.async_db import Connection

from . import now_ms


@dataclass(frozen=True, slots=True)
class Action:
    """One pending call; actions of one lane run in order, lanes run side by side."""

    id: int
    lane: str
    kind: str
    payload: dict[str, Any]
    attempts: int


async def enqueue(conn: Connection, lane: str, kind: str, **payload: Any) -> int:
    """Add an action; it commits (or not) with the caller's transaction."""
    action_id = await conn.fetchval(
        "INSERT INTO outbox (lane, kind, payload, created_at) VALUES ($1, $2, $3, $4)"
        " RETURNING id",
        lane,
        kind,
        json.dumps(payload),
        now_ms(),
    )
    return int(action_id)


async def pending(conn: Connection, lane: str | None = None, limit: int = 500) -> list[Action]:
    """Unfinished actions, oldest first, of one lane or of all."""
    if lane is None:
        rows = await conn.fetch(
            "SELECT id, lane, kind, payload, attempts FROM outbox WHERE done_at IS NULL"
            " ORDER BY id LIMIT $1",
            limit,
        )
    else:
        rows = await conn.fetch(
            "SELECT id, lane, kind, payload, attempts FROM outbox WHERE done_at IS NULL"
            " AND lane=$1 ORDER BY id LIMIT $2",
            lane,
            limit,
        )
    return [
        Action(r["id"], r["lane"], r["kind"], json.loads(r["payload"]), r["attempts"])
        for r in rows
    ]


async def finish(conn: Connection, action_id: int, error: str | None = None) -> None:
    """Mark an action done; `error` records why a permanent failure was given up."""
    await conn.execute(
        "UPDATE outbox SET done_at=$1, error=$2 WHERE id=$3", now_ms(), error, action_id
    )


async def count_attempt(conn: Connection, action_id: int, error: str) -> None:
    """Note a failed attempt that will be retried."""
    await conn.execute(
        "UPDATE outbox SET attempts=attempts+1, error=$1 WHERE id=$2", error, action_id
    )
