"""A homeserver transaction's events, archived together with the record of its delivery.

The homeserver sends one transaction at a time and waits for the answer, so this commit is on
its path. Whatever a transaction's size, the check for a repeat, the events and their chain
links, the lookup of the rooms Backline acts in and the record of the delivery take one call
to SQLite's thread, or three statements to PostgreSQL (one more each for redactions and for
files, when the transaction holds any).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import partial
from typing import Any

from mautrix.util.async_db import Connection, Scheme

from . import now_ms
from .events import (
    PG_KNOWN_AND_TIPS,
    NewEvent,
    known_and_tips_args,
    new_and_tips,
    store_on_sqlite,
    write_on_postgres,
)
from .sqlite_thread import json_param, numbered, on_sqlite_thread


@dataclass(frozen=True, slots=True)
class Delivery:
    """One transaction as the homeserver sent it: its ID and the SHA-256 of its body."""

    txn_id: str
    body_sha256: str


@dataclass(frozen=True, slots=True)
class Stored:
    """What a delivery added: events not archived before, and where Backline has a part."""

    fresh: list[dict[str, Any]]
    # Of the delivery's rooms (at least those of `fresh`), the session rooms and the DMs
    # with Backline's users.
    known_rooms: set[str]


# Synapse restarts its transaction IDs after its own restart, so an ID alone is not proof of
# a repeat; the body's digest is. A new body under a known ID replaces the old record.
_SEEN = "SELECT body_sha256 FROM appservice_txn WHERE txn_id=$1"
_RECORD = (
    "INSERT INTO appservice_txn (txn_id, body_sha256, received_at) VALUES ($1, $2, $3)"
    " ON CONFLICT (txn_id) DO UPDATE SET body_sha256=excluded.body_sha256,"
    " received_at=excluded.received_at"
)
_KNOWN_ROOMS = (
    "SELECT room_id FROM session WHERE room_id IN (SELECT value FROM json_each(?1))"
    " UNION SELECT room_id FROM dm_room WHERE room_id IN (SELECT value FROM json_each(?1))"
)
_SQLITE_SEEN = numbered(_SEEN)
_SQLITE_RECORD = numbered(_RECORD)

# Every lookup in one statement: the events' and tips' rows, the session and DM rooms among
# the batch's ($2), and whether this very delivery was committed before ($3, $4).
_PG_LOOKUP = PG_KNOWN_AND_TIPS + (
    " UNION ALL SELECT 'room', room_id, NULL, NULL FROM session WHERE room_id = ANY($2::text[])"
    " UNION ALL SELECT 'room', room_id, NULL, NULL FROM dm_room WHERE room_id = ANY($2::text[])"
    " UNION ALL SELECT 'seen', txn_id, NULL, NULL FROM appservice_txn"
    " WHERE txn_id = $3 AND body_sha256 = $4"
)


async def store_delivery(
    conn: Connection, delivery: Delivery, events: list[NewEvent], *, index_now: bool
) -> Stored | None:
    """Archive a transaction's events and record it; None when it was committed before.

    `index_now` as for `events.store_prepared`. Call inside a transaction: the caller acts on
    what was stored before it commits.
    """
    if conn.scheme == Scheme.SQLITE:
        return await on_sqlite_thread(conn, partial(_on_sqlite, delivery, events, index_now))
    return await _on_postgres(conn, delivery, events, index_now)


def _on_sqlite(
    delivery: Delivery, events: list[NewEvent], index_now: bool, db: sqlite3.Connection
) -> Stored | None:
    seen = db.execute(_SQLITE_SEEN, (delivery.txn_id,)).fetchone()
    if seen is not None and seen[0] == delivery.body_sha256:
        return None
    fresh = store_on_sqlite(events, index_now, db) if events else []
    known: set[str] = set()
    if fresh:
        rooms = json_param(list(dict.fromkeys(raw["room_id"] for raw in fresh)))
        known = {row[0] for row in db.execute(_KNOWN_ROOMS, (rooms,))}
    db.execute(_SQLITE_RECORD, (delivery.txn_id, delivery.body_sha256, now_ms()))
    return Stored(fresh, known)


async def _on_postgres(
    conn: Connection, delivery: Delivery, events: list[NewEvent], index_now: bool
) -> Stored | None:
    found = await conn.fetch(
        _PG_LOOKUP, *known_and_tips_args(events), delivery.txn_id, delivery.body_sha256
    )
    if any(row["kind"] == "seen" for row in found):
        return None
    new, tips = new_and_tips(events, found)
    fresh = await write_on_postgres(conn, new, tips, index_now)
    await conn.execute(_RECORD, delivery.txn_id, delivery.body_sha256, now_ms())
    return Stored(fresh, {row["id"] for row in found if row["kind"] == "room"})
