"""SQL for retention: which sessions may go, and trimming chains from their start."""

from __future__ import annotations

from typing import Any

from mautrix.util.async_db import Connection

from . import now_ms

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


async def chain_start(conn: Connection, room_id: str) -> int:
    """The first link of a room's chain not cut off at its start (0 if none was)."""
    purged = await conn.fetchval(
        "SELECT purged_through FROM room_chain WHERE room_id = $1", room_id
    )
    return 0 if purged is None else int(purged) + 1


async def last_link_before(conn: Connection, room_id: str, cutoff: int) -> int | None:
    """The last link sent before `cutoff`: every later one is recent and stays."""
    value = await conn.fetchval(
        "SELECT MAX(chain_index) FROM room_event WHERE room_id = $1 AND origin_ts < $2",
        room_id,
        cutoff,
    )
    return None if value is None else int(value)


async def chain_page(
    conn: Connection, room_id: str, after: int, through: int, limit: int
) -> list[Any]:
    """A room's rows with links after `after` and up to `through`, in chain order."""
    return await conn.fetch(
        "SELECT seq, chain_index, hash, origin_ts, session_id, event_json FROM room_event"
        " WHERE room_id = $1 AND chain_index > $2 AND chain_index <= $3"
        " ORDER BY chain_index LIMIT $4",
        room_id,
        after,
        through,
        limit,
    )


async def cut_stretch(
    conn: Connection, room_id: str, seqs: list[int], first_index: int, last: Any, at_start: bool
) -> None:
    """Delete the rows left of links `first_index` to `last`, and record the cut.

    At the chain's start the cut moves the start; elsewhere it is a gap. Gaps it spans or
    meets (from earlier runs, or the same stretch cut a page at a time) merge into it.
    """
    placeholders = ", ".join(f"${i}" for i in range(1, len(seqs) + 1))
    await conn.execute(f"DELETE FROM message_text WHERE seq IN ({placeholders})", *seqs)
    await conn.execute(f"DELETE FROM room_event WHERE seq IN ({placeholders})", *seqs)
    last_index, last_hash = last["chain_index"], last["hash"]
    # A gap right after the cut (its rows went in an earlier run) becomes part of it.
    while (
        after := await conn.fetchrow(
            "SELECT last_index, last_hash FROM chain_gap WHERE room_id = $1 AND first_index = $2",
            room_id,
            last_index + 1,
        )
    ) is not None:
        last_index, last_hash = after["last_index"], after["last_hash"]
    await conn.execute(
        "DELETE FROM chain_gap WHERE room_id = $1 AND first_index >= $2 AND last_index <= $3",
        room_id,
        first_index,
        last_index,
    )
    if at_start:
        await conn.execute(
            "UPDATE room_chain SET purged_through = $1, purged_hash = $2 WHERE room_id = $3",
            last_index,
            last_hash,
            room_id,
        )
    else:
        await conn.execute(
            "INSERT INTO chain_gap (room_id, first_index, last_index, last_hash, purged_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            room_id,
            first_index,
            last_index,
            last_hash,
            now_ms(),
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
