"""Reading hash chains back for verification, and trimming them for retention."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from mautrix.util.async_db import Connection

_ROW = (
    "SELECT seq, event_id, room_id, sender, type, chain_index, prev_hash, hash, event_json"
    " FROM room_event"
)


async def chain_rooms(conn: Connection, session_id: int | None = None) -> list[Any]:
    """Chain tips (room, last index and hash, purge anchor), of all rooms or one session's."""
    if session_id is None:
        return await conn.fetch(
            "SELECT room_id, last_index, last_hash, purged_through, purged_hash FROM room_chain"
            " ORDER BY room_id"
        )
    return await conn.fetch(
        "SELECT room_id, last_index, last_hash, purged_through, purged_hash FROM room_chain"
        " WHERE room_id IN (SELECT DISTINCT room_id FROM room_event WHERE session_id=$1)"
        " ORDER BY room_id",
        session_id,
    )


async def chain_rows(conn: Connection, room_id: str, page: int = 1000) -> AsyncIterator[Any]:
    """A room's rows in chain order, a page at a time so long chains fit in memory."""
    after = -1
    while True:
        rows = await conn.fetch(
            f"{_ROW} WHERE room_id=$1 AND chain_index > $2 ORDER BY chain_index LIMIT $3",
            room_id,
            after,
            page,
        )
        for row in rows:
            yield row
        if len(rows) < page:
            return
        after = rows[-1]["chain_index"]


async def chain_gaps(conn: Connection, room_id: str) -> dict[int, tuple[int, str]]:
    """Stretches purged from the middle of a room's chain: first link to (last link, its hash)."""
    rows = await conn.fetch(
        "SELECT first_index, last_index, last_hash FROM chain_gap WHERE room_id=$1", room_id
    )
    return {row["first_index"]: (row["last_index"], row["last_hash"]) for row in rows}
