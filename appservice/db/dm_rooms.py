"""Direct-message rooms between an agent and a group user (or the directory bot)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mautrix.util.async_db import Connection

from . import now_ms

DMState = Literal["joining", "joined", "refused", "left"]


@dataclass(frozen=True, slots=True)
class DMRoom:
    """A DM room row; `group_id` is empty for the directory bot's DMs."""

    room_id: str
    group_id: str
    agent: str
    state: DMState


async def upsert_dm(
    conn: Connection, room_id: str, group_id: str, agent: str, state: DMState
) -> None:
    """Record a DM invite and whether Backline accepted it."""
    await conn.execute(
        "INSERT INTO dm_room (room_id, group_id, agent, state, created_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id, group_id)"
        " DO UPDATE SET agent=excluded.agent, state=excluded.state",
        room_id,
        group_id,
        agent,
        state,
        now_ms(),
    )


async def set_dm_state(conn: Connection, room_id: str, group_id: str, state: DMState) -> None:
    """Update a DM's state."""
    await conn.execute(
        "UPDATE dm_room SET state=$1 WHERE room_id=$2 AND group_id=$3", state, room_id, group_id
    )


async def dms_in_room(conn: Connection, room_id: str) -> list[DMRoom]:
    """The DM rows of a room (one per Backline user invited there)."""
    rows = await conn.fetch(
        "SELECT room_id, group_id, agent, state FROM dm_room WHERE room_id=$1", room_id
    )
    return [DMRoom(r["room_id"], r["group_id"], r["agent"], r["state"]) for r in rows]
