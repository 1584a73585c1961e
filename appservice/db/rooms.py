"""Which rooms Backline has a part in."""

from __future__ import annotations

from mautrix.util.async_db import Connection


async def rooms_with_sessions_or_dms(conn: Connection, room_ids: list[str]) -> set[str]:
    """Those of these rooms that are session rooms or DMs with Backline's users."""
    placeholders = ", ".join(f"${i}" for i in range(1, len(room_ids) + 1))
    rows = await conn.fetch(
        f"SELECT room_id FROM session WHERE room_id IN ({placeholders})"
        f" UNION SELECT room_id FROM dm_room WHERE room_id IN ({placeholders})",
        *room_ids,
    )
    return {row["room_id"] for row in rows}
