"""Archived room events, unique by event ID."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mautrix.util.async_db import Connection

from . import now_ms


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An archived event as read back."""

    seq: int
    event_id: str
    room_id: str
    sender: str
    type: str
    state_key: str | None
    origin_ts: int
    session_id: int | None
    content: dict[str, Any]


async def store_event(conn: Connection, raw: dict[str, Any]) -> bool:
    """Archive one event, tied to its room's session; False when stored before (a redelivery)."""
    seq = await conn.fetchval(
        "INSERT INTO room_event (event_id, room_id, sender, type, state_key, origin_ts,"
        " session_id, event_json, received_at) VALUES ($1, $2, $3, $4, $5, $6,"
        " (SELECT id FROM session WHERE room_id=$2), $7, $8)"
        " ON CONFLICT (event_id) DO NOTHING RETURNING seq",
        raw["event_id"],
        raw["room_id"],
        raw["sender"],
        raw["type"],
        raw.get("state_key"),
        int(raw.get("origin_server_ts") or 0),
        json.dumps(raw, ensure_ascii=False, separators=(",", ":")),
        now_ms(),
    )
    return seq is not None


async def attach_room_to_session(conn: Connection, room_id: str, session_id: int) -> None:
    """Claim events that arrived for a session room before Backline knew its session."""
    await conn.execute(
        "UPDATE room_event SET session_id=$1 WHERE room_id=$2 AND session_id IS NULL",
        session_id,
        room_id,
    )


async def session_events(conn: Connection, session_id: int) -> list[StoredEvent]:
    """Every archived event of a session, in arrival order."""
    rows = await conn.fetch(
        "SELECT seq, event_id, room_id, sender, type, state_key, origin_ts, session_id,"
        " event_json FROM room_event WHERE session_id=$1 ORDER BY seq",
        session_id,
    )
    return [
        StoredEvent(
            seq=row["seq"],
            event_id=row["event_id"],
            room_id=row["room_id"],
            sender=row["sender"],
            type=row["type"],
            state_key=row["state_key"],
            origin_ts=row["origin_ts"],
            session_id=row["session_id"],
            content=json.loads(row["event_json"]).get("content", {}),
        )
        for row in rows
    ]


async def count_events(conn: Connection, event_id: str) -> int:
    """How many rows hold this event ID (0 or 1; the schema keeps it unique)."""
    return int(await conn.fetchval("SELECT COUNT(*) FROM room_event WHERE event_id=$1", event_id))


async def link_event(conn: Connection, event_id: str, session_id: int) -> None:
    """Tie an event stored outside a session room (the DM request) to its session."""
    await conn.execute(
        "UPDATE room_event SET session_id=$1 WHERE event_id=$2", session_id, event_id
    )
