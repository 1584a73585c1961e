"""Per-group state that outlives a restart: the roster room, its members, round-robin place."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from . import now_ms


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


async def last_offered(conn: Connection, group_id: str) -> str | None:
    """Who was offered a request of this group last (round_robin starts after them)."""
    value = await conn.fetchval("SELECT last_offered FROM group_state WHERE group_id=$1", group_id)
    return str(value) if value is not None else None


async def set_last_offered(conn: Connection, group_id: str, expert: str) -> None:
    """Remember the latest expert offered a request of this group."""
    await conn.execute(
        "INSERT INTO group_state (group_id, last_offered) VALUES ($1, $2)"
        " ON CONFLICT (group_id) DO UPDATE SET last_offered=excluded.last_offered",
        group_id,
        expert,
    )


async def set_roster_membership(
    conn: Connection, group_id: str, user_id: str, membership: str
) -> None:
    """Note a join or leave of a group's roster room."""
    await conn.execute(
        "INSERT INTO roster_member (group_id, user_id, membership, changed_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (group_id, user_id)"
        " DO UPDATE SET membership=excluded.membership, changed_at=excluded.changed_at",
        group_id,
        user_id,
        membership,
        now_ms(),
    )


async def roster_memberships(conn: Connection, group_id: str) -> list[tuple[str, str]]:
    """(user, join or leave) of everyone seen in the group's roster room, earliest first."""
    rows = await conn.fetch(
        "SELECT user_id, membership FROM roster_member WHERE group_id=$1"
        " ORDER BY changed_at, user_id",
        group_id,
    )
    return [(row["user_id"], row["membership"]) for row in rows]
