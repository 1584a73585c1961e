"""Which rooms Backline has a part in."""

from __future__ import annotations

import json

from mautrix.util.async_db import Connection, Scheme

# On SQLite the rooms travel as one JSON array: a query text with a placeholder per room
# would be rewritten for sqlite3 on every transaction.
_KNOWN_ROOMS_SQLITE = (
    "SELECT room_id FROM session WHERE room_id IN (SELECT value FROM json_each($1))"
    " UNION SELECT room_id FROM dm_room WHERE room_id IN (SELECT value FROM json_each($1))"
)


async def rooms_with_sessions_or_dms(conn: Connection, room_ids: list[str]) -> set[str]:
    """Those of these rooms that are session rooms or DMs with Backline's users."""
    if conn.scheme == Scheme.SQLITE:
        rows = await conn.fetch(_KNOWN_ROOMS_SQLITE, json.dumps(room_ids))
    else:
        placeholders = ", ".join(f"${i}" for i in range(1, len(room_ids) + 1))
        rows = await conn.fetch(
            f"SELECT room_id FROM session WHERE room_id IN ({placeholders})"
            f" UNION SELECT room_id FROM dm_room WHERE room_id IN ({placeholders})",
            *room_ids,
        )
    return {row["room_id"] for row in rows}
