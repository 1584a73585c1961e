"""SQL for retention: which sessions may go, and trimming chains from their start."""

from __future__ import annotations

from typing import Any

from mautrix.util.async_db import Connection

_NOT_HELD = (
    "NOT EXISTS (SELECT 1 FROM legal_hold h WHERE h.released_at IS NULL AND ("
    " (h.kind = 'session' AND h.value = CAST(s.id AS TEXT))"
    " OR (h.kind = 'agent' AND h.value = s.agent)"
    " OR (h.kind = 'group' AND h.value = s.group_id)))"
)


async def expired_sessions(conn: Connection, cutoff: int) -> list[Any]:
    """Ended sessions with nothing archived since `cutoff`, and no active hold."""
    return await conn.fetch(
        "SELECT s.id, s.room_id FROM session s"
        " WHERE s.state IN ('closed', 'expired', 'cancelled') AND s.closed_at < $1"
        " AND NOT EXISTS (SELECT 1 FROM room_event e WHERE e.session_id = s.id"
        f" AND e.origin_ts >= $1) AND {_NOT_HELD} ORDER BY s.id",
        cutoff,
    )


async def unheld_side_rooms(conn: Connection) -> list[str]:
    """DM and roster rooms whose agent or group is not on hold."""
    rows = await conn.fetch(
        "SELECT DISTINCT d.room_id FROM dm_room d WHERE NOT EXISTS (SELECT 1 FROM legal_hold h"
        " WHERE h.released_at IS NULL AND ((h.kind = 'agent' AND h.value = d.agent)"
        " OR (h.kind = 'group' AND h.value = d.group_id)))"
        " UNION SELECT roster_room_id FROM group_state WHERE roster_room_id IS NOT NULL"
    )
    return [row[0] for row in rows]


async def chain_start(conn: Connection, room_id: str, limit: int) -> list[Any]:
    """The oldest rows still kept of a room's chain."""
    return await conn.fetch(
        "SELECT seq, chain_index, hash, origin_ts, session_id, event_json FROM room_event"
        " WHERE room_id = $1 ORDER BY chain_index LIMIT $2",
        room_id,
        limit,
    )


async def trim_chain(conn: Connection, room_id: str, seqs: list[int], last: Any) -> None:
    """Delete rows from the start of a chain and record where it now starts."""
    placeholders = ", ".join(f"${i}" for i in range(1, len(seqs) + 1))
    await conn.execute(f"DELETE FROM message_text WHERE seq IN ({placeholders})", *seqs)
    await conn.execute(f"DELETE FROM room_event WHERE seq IN ({placeholders})", *seqs)
    await conn.execute(
        "UPDATE room_chain SET purged_through = $1, purged_hash = $2 WHERE room_id = $3",
        last["chain_index"],
        last["hash"],
        room_id,
    )


async def delete_session(conn: Connection, session_id: int) -> None:
    """Remove a session's own rows once its events are gone."""
    await conn.execute("UPDATE room_event SET session_id = NULL WHERE session_id = $1", session_id)
    await conn.execute("DELETE FROM routing_decision WHERE session_id = $1", session_id)
    await conn.execute("DELETE FROM offer WHERE session_id = $1", session_id)
    await conn.execute("DELETE FROM session WHERE id = $1", session_id)


async def forget_media(conn: Connection, mxc_uris: list[str]) -> list[str]:
    """Drop media records; returns the digests of stored files no other record uses."""
    if not mxc_uris:
        return []
    placeholders = ", ".join(f"${i}" for i in range(1, len(mxc_uris) + 1))
    rows = await conn.fetch(
        f"DELETE FROM archive_media WHERE mxc IN ({placeholders}) RETURNING sha256", *mxc_uris
    )
    digests = {row["sha256"] for row in rows if row["sha256"]}
    unused = []
    for digest in digests:
        if not await conn.fetchval("SELECT 1 FROM archive_media WHERE sha256 = $1", digest):
            unused.append(digest)
    return unused
