"""Per-group state that outlives a restart: the roster room."""

from __future__ import annotations

from mautrix.util.async_db import Connection


async def roster_room(conn: Connection, group_id: str) -> str | None:
    """The group's roster room, if made already."""
    value = await conn.fetchval(
        "SELECT roster_room_id FROM group_state WHERE group_id=$1", group_id
    )
    return str(value) if value else None


async def set_roster_room(conn: Connection, group_id: str, room_id: str) -> None:
    """Remember the group's roster room."""
    await conn.execute(
        "INSERT INTO group_state (group_id, roster_room_id) VALUES ($1, $2)"
        " ON CONFLICT (group_id) DO UPDATE SET roster_room_id=excluded.roster_room_id",
        group_id,
        room_id,
    )


async def group_of_roster(conn: Connection, room_id: str) -> str | None:
    """Which group this roster room belongs to."""
    value = await conn.fetchval(
        "SELECT group_id FROM group_state WHERE roster_room_id=$1", room_id
    )
    return str(value) if value else None
