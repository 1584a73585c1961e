"""Archived room events: unique by event ID, chained per room, searchable when messages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mautrix.util.async_db import Connection

from ..archive.chain import (
    GENESIS,
    canonical_json,
    link_hash,
    redacted_event_id,
    searchable_text,
)
from ..archive.describe import media_of
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
    redacted_by: str | None = None
    redacted_at: int | None = None


@dataclass(frozen=True, slots=True)
class _Row:
    raw: dict[str, Any]
    canonical: str
    chain_index: int
    prev_hash: str
    hash: str


async def _known_event_ids(conn: Connection, event_ids: list[str]) -> set[str]:
    placeholders = ", ".join(f"${i}" for i in range(1, len(event_ids) + 1))
    rows = await conn.fetch(
        f"SELECT event_id FROM room_event WHERE event_id IN ({placeholders})", *event_ids
    )
    return {row["event_id"] for row in rows}


async def _chain_tips(conn: Connection, room_ids: list[str]) -> dict[str, tuple[int, str]]:
    placeholders = ", ".join(f"${i}" for i in range(1, len(room_ids) + 1))
    rows = await conn.fetch(
        f"SELECT room_id, last_index, last_hash FROM room_chain WHERE room_id IN ({placeholders})",
        *room_ids,
    )
    return {row["room_id"]: (row["last_index"], row["last_hash"]) for row in rows}


def _link(raws: list[dict[str, Any]], tips: dict[str, tuple[int, str]]) -> list[_Row]:
    """Give each new event its place in its room's chain, in delivery order."""
    rows = []
    for raw in raws:
        last_index, last_hash = tips.get(raw["room_id"], (-1, GENESIS))
        canonical = canonical_json(raw)
        digest = link_hash(last_hash, canonical)
        rows.append(_Row(raw, canonical, last_index + 1, last_hash, digest))
        tips[raw["room_id"]] = (last_index + 1, digest)
    return rows


async def store_events(conn: Connection, raws: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Archive a transaction's events; returns those not stored before, in order.

    Runs a fixed number of statements per batch, whatever its size: the homeserver sends up
    to 100 events a transaction and the archive should keep up with a busy server.
    """
    unique = list({raw["event_id"]: raw for raw in raws}.values())
    if not unique:
        return []
    known = await _known_event_ids(conn, [raw["event_id"] for raw in unique])
    fresh = [raw for raw in unique if raw["event_id"] not in known]
    if not fresh:
        return []

    rooms = list(dict.fromkeys(raw["room_id"] for raw in fresh))
    tips = await _chain_tips(conn, rooms)
    rows = _link(fresh, dict(tips))
    received = now_ms()
    await conn.executemany(
        "INSERT INTO room_event (event_id, room_id, sender, type, state_key, origin_ts,"
        " session_id, event_json, received_at, chain_index, prev_hash, hash)"
        " VALUES ($1, $2, $3, $4, $5, $6, (SELECT id FROM session WHERE room_id=$2), $7, $8,"
        " $9, $10, $11)",
        [
            (
                r.raw["event_id"],
                r.raw["room_id"],
                r.raw["sender"],
                r.raw["type"],
                r.raw.get("state_key"),
                _timestamp(r.raw),
                r.canonical,
                received,
                r.chain_index,
                r.prev_hash,
                r.hash,
            )
            for r in rows
        ],
    )
    await _advance_tips(conn, rows, tips)
    await _index_messages(conn, fresh)
    await _mark_redactions(conn, fresh)
    await _record_media(conn, fresh)
    return fresh


def _timestamp(raw: dict[str, Any]) -> int:
    value = raw.get("origin_server_ts")
    return value if isinstance(value, int) else 0


async def _advance_tips(
    conn: Connection, rows: list[_Row], old_tips: dict[str, tuple[int, str]]
) -> None:
    newest = {row.raw["room_id"]: row for row in rows}
    await conn.executemany(
        "INSERT INTO room_chain (room_id, last_index, last_hash) VALUES ($1, $2, $3)"
        " ON CONFLICT (room_id) DO UPDATE SET last_index=excluded.last_index,"
        " last_hash=excluded.last_hash",
        [(room, row.chain_index, row.hash) for room, row in newest.items()],
    )


async def _index_messages(conn: Connection, fresh: list[dict[str, Any]]) -> None:
    texts = {raw["event_id"]: text for raw in fresh if (text := searchable_text(raw))}
    if not texts:
        return
    placeholders = ", ".join(f"${i}" for i in range(1, len(texts) + 1))
    rows = await conn.fetch(
        f"SELECT seq, event_id FROM room_event WHERE event_id IN ({placeholders})", *texts
    )
    await conn.executemany(
        "INSERT INTO message_text (seq, body) VALUES ($1, $2)",
        [(row["seq"], texts[row["event_id"]]) for row in rows],
    )


async def _mark_redactions(conn: Connection, fresh: list[dict[str, Any]]) -> None:
    """Keep a redacted event's content, marked with who redacted it and when."""
    for raw in fresh:
        target = redacted_event_id(raw)
        if target is not None:
            await conn.execute(
                "UPDATE room_event SET redacted_by=$1, redacted_at=$2"
                " WHERE event_id=$3 AND room_id=$4 AND redacted_by IS NULL",
                raw["event_id"],
                _timestamp(raw),
                target,
                raw["room_id"],
            )


async def _record_media(conn: Connection, fresh: list[dict[str, Any]]) -> None:
    """Note each file sent: its URI, name, type and size (the file itself may follow)."""
    files = [file for raw in fresh if (file := media_of(raw))]
    if files:
        await conn.executemany(
            "INSERT INTO archive_media (mxc, content_type, filename, size) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (mxc) DO NOTHING",
            [(f["mxc"], f["content_type"], f["filename"], f["size"]) for f in files],
        )


async def media_stored(conn: Connection, mxc: str, sha256: str, size: int) -> None:
    """The file behind an mxc URI is now in the archive's media folder."""
    await conn.execute(
        "UPDATE archive_media SET sha256=$1, size=$2, stored_at=$3, error=NULL WHERE mxc=$4",
        sha256,
        size,
        now_ms(),
        mxc,
    )


async def attach_room_to_session(conn: Connection, room_id: str, session_id: int) -> None:
    """Claim events that arrived for a session room before Backline knew its session."""
    await conn.execute(
        "UPDATE room_event SET session_id=$1 WHERE room_id=$2 AND session_id IS NULL",
        session_id,
        room_id,
    )


async def link_event(conn: Connection, event_id: str, session_id: int) -> None:
    """Tie an event stored outside a session room (the DM request) to its session."""
    await conn.execute(
        "UPDATE room_event SET session_id=$1 WHERE event_id=$2", session_id, event_id
    )


async def session_events(conn: Connection, session_id: int) -> list[StoredEvent]:
    """Every archived event of a session, in arrival order."""
    rows = await conn.fetch(
        "SELECT seq, event_id, room_id, sender, type, state_key, origin_ts, session_id,"
        " event_json, redacted_by, redacted_at FROM room_event WHERE session_id=$1 ORDER BY seq",
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
            redacted_by=row["redacted_by"],
            redacted_at=row["redacted_at"],
        )
        for row in rows
    ]


async def count_events(conn: Connection, event_id: str) -> int:
    """How many rows hold this event ID (0 or 1; the schema keeps it unique)."""
    return int(await conn.fetchval("SELECT COUNT(*) FROM room_event WHERE event_id=$1", event_id))


async def session_archive_rows(conn: Connection, session_id: int) -> list[Any]:
    """A session's archived rows with their chain data, in arrival order."""
    return await conn.fetch(
        "SELECT seq, event_id, room_id, sender, type, state_key, origin_ts, event_json,"
        " redacted_by, redacted_at, chain_index, hash FROM room_event WHERE session_id=$1"
        " ORDER BY seq",
        session_id,
    )


async def media_rows(conn: Connection, mxc_uris: list[str]) -> dict[str, Any]:
    """What the archive knows of these files, by mxc URI."""
    if not mxc_uris:
        return {}
    placeholders = ", ".join(f"${i}" for i in range(1, len(mxc_uris) + 1))
    rows = await conn.fetch(
        "SELECT mxc, content_type, filename, size, sha256, stored_at, error FROM archive_media"
        f" WHERE mxc IN ({placeholders})",
        *mxc_uris,
    )
    return {row["mxc"]: row for row in rows}
