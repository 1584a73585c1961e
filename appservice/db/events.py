"""Archived room events: unique by event ID, chained per room, searchable when messages."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

from mautrix.util.async_db import Connection, Scheme

from ..archive.chain import (
    GENESIS,
    canonical_json,
    link_hash,
    redacted_event_id,
    searchable_text,
)
from ..archive.describe import media_of
from . import now_ms
from .sqlite_thread import json_param, numbered, on_sqlite_thread


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


class NewEvent(NamedTuple):
    """An event ready to archive: its JSON, and the canonical text its chain link hashes."""

    raw: dict[str, Any]
    canonical: str


@dataclass(frozen=True, slots=True)
class _Row:
    raw: dict[str, Any]
    canonical: str
    chain_index: int
    prev_hash: str
    hash: str


_INSERT_EVENT = (
    "INSERT INTO room_event (event_id, room_id, sender, type, state_key, origin_ts,"
    " session_id, event_json, received_at, chain_index, prev_hash, hash)"
    " VALUES ($1, $2, $3, $4, $5, $6, (SELECT id FROM session WHERE room_id=$2), $7, $8,"
    " $9, $10, $11)"
)
_ADVANCE_TIP = (
    "INSERT INTO room_chain (room_id, last_index, last_hash) VALUES ($1, $2, $3)"
    " ON CONFLICT (room_id) DO UPDATE SET last_index=excluded.last_index,"
    " last_hash=excluded.last_hash"
)
_MARK_REDACTED = (
    "UPDATE room_event SET redacted_by=$1, redacted_at=$2"
    " WHERE event_id=$3 AND room_id=$4 AND redacted_by IS NULL"
)
_RECORD_MEDIA = (
    "INSERT INTO archive_media (mxc, content_type, filename, size) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (mxc) DO NOTHING"
)

# Lists travel as one parameter: a JSON array on SQLite, an array on PostgreSQL. Message
# texts go into message_text in one statement: row by row, each statement would make FTS5
# write its pending terms out as a segment of its own.
_SQLITE = {
    "known": "SELECT event_id FROM room_event WHERE event_id IN (SELECT value FROM json_each(?1))",
    "tips": "SELECT room_id, last_index, last_hash FROM room_chain"
    " WHERE room_id IN (SELECT value FROM json_each(?1))",
    "index": "INSERT INTO message_text (seq, body)"
    " SELECT e.seq, json_extract(t.value, '$[1]') FROM json_each(?1) AS t"
    " JOIN room_event AS e ON e.event_id = json_extract(t.value, '$[0]')",
    "queue": "INSERT INTO message_text_queue (texts) VALUES (?1)",
    "index_queued": "INSERT INTO message_text (seq, body)"
    " SELECT e.seq, json_extract(t.value, '$[1]')"
    " FROM message_text_queue AS q, json_each(q.texts) AS t"
    " JOIN room_event AS e ON e.event_id = json_extract(t.value, '$[0]') WHERE q.id <= ?1",
    "insert_event": numbered(_INSERT_EVENT),
    "advance_tip": numbered(_ADVANCE_TIP),
    "mark_redacted": numbered(_MARK_REDACTED),
    "record_media": numbered(_RECORD_MEDIA),
}
# PostgreSQL answers each statement over the network: a transaction's rows go in one
# statement, whose CTEs insert the events (delivery order kept by ORDER BY), move the chain
# tips, and index or queue the message texts.
_PG_WRITE = (
    "WITH new_event AS ("
    " INSERT INTO room_event (event_id, room_id, sender, type, state_key, origin_ts, session_id,"
    " event_json, received_at, chain_index, prev_hash, hash)"
    " SELECT e.event_id, e.room_id, e.sender, e.type, e.state_key, e.origin_ts, s.id,"
    " e.event_json, $8, e.chain_index, e.prev_hash, e.hash"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],"
    " $7::text[], $9::bigint[], $10::text[], $11::text[]) WITH ORDINALITY AS e (event_id,"
    " room_id, sender, type, state_key, origin_ts, event_json, chain_index, prev_hash, hash, n)"
    " LEFT JOIN session AS s ON s.room_id = e.room_id ORDER BY e.n RETURNING seq, event_id"
    "), tip AS ("
    " INSERT INTO room_chain (room_id, last_index, last_hash)"
    " SELECT * FROM unnest($12::text[], $13::bigint[], $14::text[])"
    " ON CONFLICT (room_id) DO UPDATE SET last_index=excluded.last_index,"
    " last_hash=excluded.last_hash"
    "), text AS ({texts}) SELECT COUNT(*) FROM new_event"
)
# What a batch needs before its events are linked: which of them are archived already ($1,
# their IDs) and the chain tips of their rooms ($2). Each row says which it answers, so that
# callers may add rows of other kinds with UNION ALL and keep one round trip.
PG_KNOWN_AND_TIPS = (
    "SELECT 'event' AS kind, event_id AS id, NULL::bigint AS last_index, NULL AS last_hash"
    " FROM room_event WHERE event_id = ANY($1::text[])"
    " UNION ALL SELECT 'tip', room_id, last_index, last_hash FROM room_chain"
    " WHERE room_id = ANY($2::text[])"
)
_POSTGRES = {
    "write_and_index": _PG_WRITE.format(
        texts="INSERT INTO message_text (seq, body) SELECT n.seq, t.body FROM new_event AS n"
        " JOIN unnest($15::text[], $16::text[]) AS t (event_id, body) USING (event_id)"
    ),
    "write_and_queue": _PG_WRITE.format(
        texts="INSERT INTO message_text_queue (event_ids, bodies) SELECT $15, $16"
        " WHERE cardinality($15::text[]) > 0"
    ),
    # Taking rows out with DELETE ... RETURNING moves each exactly once, even beside another
    # run; texts of events purged meanwhile drop out at the join.
    "index_queued": "WITH moved AS (DELETE FROM message_text_queue RETURNING event_ids, bodies)"
    " INSERT INTO message_text (seq, body) SELECT e.seq, t.body FROM moved"
    " CROSS JOIN LATERAL unnest(moved.event_ids, moved.bodies) AS t (event_id, body)"
    " JOIN room_event AS e USING (event_id)",
}


def _link(events: list[NewEvent], tips: dict[str, tuple[int, str]]) -> list[_Row]:
    """Give each new event its place in its room's chain, in delivery order."""
    rows = []
    for raw, canonical in events:
        last_index, last_hash = tips.get(raw["room_id"], (-1, GENESIS))
        digest = link_hash(last_hash, canonical)
        rows.append(_Row(raw, canonical, last_index + 1, last_hash, digest))
        tips[raw["room_id"]] = (last_index + 1, digest)
    return rows


def _event_values(rows: list[_Row]) -> list[tuple[Any, ...]]:
    received = now_ms()
    return [
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
    ]


def _tip_values(rows: list[_Row]) -> list[tuple[str, int, str]]:
    newest = {row.raw["room_id"]: row for row in rows}
    return [(room, row.chain_index, row.hash) for room, row in newest.items()]


def _texts(fresh: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(raw["event_id"], text) for raw in fresh if (text := searchable_text(raw))]


def _redactions(fresh: list[dict[str, Any]]) -> list[tuple[str, int, str, str]]:
    """Who redacted what, and when: the redacted event keeps its content, marked."""
    return [
        (raw["event_id"], _timestamp(raw), target, raw["room_id"])
        for raw in fresh
        if (target := redacted_event_id(raw)) is not None
    ]


def _media(fresh: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Each file sent: its URI, name, type and size (the file itself may follow)."""
    return [
        (f["mxc"], f["content_type"], f["filename"], f["size"])
        for raw in fresh
        if (f := media_of(raw))
    ]


def _timestamp(raw: dict[str, Any]) -> int:
    value = raw.get("origin_server_ts")
    return value if isinstance(value, int) else 0


def prepare_events(raws: list[dict[str, Any]]) -> list[NewEvent]:
    """Each event once, with its canonical JSON: the part of archiving that needs no database.

    Done before the transaction, it runs while the database is still busy with other work
    (on SQLite, the previous transaction's search index).
    """
    unique = {raw["event_id"]: raw for raw in raws}
    return [NewEvent(raw, canonical_json(raw)) for raw in unique.values()]


async def store_events(
    conn: Connection, raws: list[dict[str, Any]], *, index_now: bool = True
) -> list[dict[str, Any]]:
    """Archive a transaction's events; returns those not stored before, in order."""
    return await store_prepared(conn, prepare_events(raws), index_now=index_now)


async def store_prepared(
    conn: Connection, events: list[NewEvent], *, index_now: bool = True
) -> list[dict[str, Any]]:
    """Archive prepared events; returns those not stored before, in order.

    Messages are searchable once this commits. With `index_now=False` their texts are queued
    instead, in one row, for `index_queued_texts` to index in bulk after the commit.

    Runs a fixed number of statements per batch, whatever its size: the homeserver sends up
    to 100 events a transaction and the archive should keep up with a busy server.
    """
    if not events:
        return []
    if conn.scheme == Scheme.SQLITE:
        return await on_sqlite_thread(conn, partial(store_on_sqlite, events, index_now))
    return await _store_on_postgres(conn, events, index_now)


async def index_queued_texts(conn: Connection) -> int:
    """Move every queued message text into the search index; returns how many."""
    if conn.scheme == Scheme.SQLITE:
        return await on_sqlite_thread(conn, _index_queued_on_sqlite)
    status = await conn.execute(_POSTGRES["index_queued"])
    return int(status.rsplit(" ", 1)[-1])


def store_on_sqlite(
    events: list[NewEvent], index_now: bool, db: sqlite3.Connection
) -> list[dict[str, Any]]:
    """`store_prepared` for SQLite, run on the connection's own thread."""
    known_ids = db.execute(_SQLITE["known"], (json_param([e.raw["event_id"] for e in events]),))
    known = {row[0] for row in known_ids}
    new = [event for event in events if event.raw["event_id"] not in known]
    if not new:
        return []

    rooms = list(dict.fromkeys(event.raw["room_id"] for event in new))
    tips = {row[0]: (row[1], row[2]) for row in db.execute(_SQLITE["tips"], (json_param(rooms),))}
    rows = _link(new, tips)
    db.executemany(_SQLITE["insert_event"], _event_values(rows))
    db.executemany(_SQLITE["advance_tip"], _tip_values(rows))

    fresh = [event.raw for event in new]
    if texts := _texts(fresh):
        db.execute(_SQLITE["index" if index_now else "queue"], (json_param(texts),))
    if redactions := _redactions(fresh):
        db.executemany(_SQLITE["mark_redacted"], redactions)
    if files := _media(fresh):
        db.executemany(_SQLITE["record_media"], files)
    return fresh


def _index_queued_on_sqlite(db: sqlite3.Connection) -> int:
    # One writer at a time on SQLite: nothing can be queued between these statements.
    last = db.execute("SELECT MAX(id) FROM message_text_queue").fetchone()[0]
    if last is None:
        return 0
    indexed = db.execute(_SQLITE["index_queued"], (last,)).rowcount
    db.execute("DELETE FROM message_text_queue WHERE id <= ?1", (last,))
    return int(indexed)


async def _store_on_postgres(
    conn: Connection, events: list[NewEvent], index_now: bool
) -> list[dict[str, Any]]:
    found = await conn.fetch(PG_KNOWN_AND_TIPS, *known_and_tips_args(events))
    new, tips = new_and_tips(events, found)
    return await write_on_postgres(conn, new, tips, index_now)


def known_and_tips_args(events: list[NewEvent]) -> tuple[list[str], list[str]]:
    """The parameters of PG_KNOWN_AND_TIPS: the events' IDs, and every room of the batch (one
    query for all, rather than a second one for the rooms of new events only)."""
    ids = [event.raw["event_id"] for event in events]
    return ids, list(dict.fromkeys(event.raw["room_id"] for event in events))


def new_and_tips(
    events: list[NewEvent], found: list[Any]
) -> tuple[list[NewEvent], dict[str, tuple[int, str]]]:
    """From the rows of PG_KNOWN_AND_TIPS: the events not archived yet, and the tips."""
    known = {row["id"] for row in found if row["kind"] == "event"}
    tips = {
        row["id"]: (row["last_index"], row["last_hash"]) for row in found if row["kind"] == "tip"
    }
    return [event for event in events if event.raw["event_id"] not in known], tips


async def write_on_postgres(
    conn: Connection, new: list[NewEvent], tips: dict[str, tuple[int, str]], index_now: bool
) -> list[dict[str, Any]]:
    """Archive events known to be new, given the chain tips of their rooms (PostgreSQL)."""
    if not new:
        return []
    rows = _link(new, tips)
    fresh = [event.raw for event in new]
    columns: list[Any] = [list(column) for column in zip(*_event_values(rows), strict=True)]
    columns[7] = columns[7][0]  # received_at: one time for the whole transaction
    columns += [list(column) for column in zip(*_tip_values(rows), strict=True)]
    texts = _texts(fresh)
    columns += [[event_id for event_id, _ in texts], [text for _, text in texts]]
    await conn.fetchval(_POSTGRES["write_and_index" if index_now else "write_and_queue"], *columns)
    if redactions := _redactions(fresh):
        await conn.executemany(_MARK_REDACTED, redactions)
    if files := _media(fresh):
        await conn.executemany(_RECORD_MEDIA, files)
    return fresh


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
