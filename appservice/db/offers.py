"""Offers: one expert invited into one session, and how that ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mautrix.util.async_db import Connection

from . import now_ms

OfferState = Literal[
    "pending", "invited", "accepted", "declined", "timed_out", "withdrawn", "failed"
]
LIVE_STATES: tuple[OfferState, ...] = ("pending", "invited")


_COLUMNS = (
    "session_id, expert, state, created_at, offered_at, ended_at, reason, expires_at,"
    " routing_group"
)


@dataclass(frozen=True, slots=True)
class Offer:
    """An offer row."""

    session_id: int
    expert: str
    state: OfferState
    created_at: int
    offered_at: int | None
    ended_at: int | None
    reason: str | None
    expires_at: int | None = None
    routing_group: str | None = None

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES


def _from_row(row: Any) -> Offer:
    return Offer(
        session_id=row["session_id"],
        expert=row["expert"],
        state=row["state"],
        created_at=row["created_at"],
        offered_at=row["offered_at"],
        ended_at=row["ended_at"],
        reason=row["reason"],
        expires_at=row["expires_at"],
        routing_group=row["routing_group"],
    )


async def add_offer(
    conn: Connection,
    session_id: int,
    expert: str,
    *,
    routing_group: str | None = None,
    expires_at: int | None = None,
) -> bool:
    """Record an offer about to be sent; False if this expert was offered this session before.

    `expires_at` is when the offer times out, kept here so that it survives a restart.
    """
    inserted = await conn.fetchval(
        "INSERT INTO offer (session_id, expert, state, created_at, routing_group, expires_at)"
        " VALUES ($1, $2, 'pending', $3, $4, $5)"
        " ON CONFLICT (session_id, expert) DO NOTHING RETURNING expert",
        session_id,
        expert,
        now_ms(),
        routing_group,
        expires_at,
    )
    return inserted is not None


async def mark_invited(conn: Connection, session_id: int, expert: str) -> None:
    """The invite went out (unless the offer already ended meanwhile).

    The offer's timeout counts from now, so a slow homeserver does not eat into the time the
    expert has to answer.
    """
    await conn.execute(
        "UPDATE offer SET state='invited', offered_at=$1,"
        " expires_at=expires_at + ($1 - created_at)"
        " WHERE session_id=$2 AND expert=$3 AND state='pending'",
        now_ms(),
        session_id,
        expert,
    )


async def end_offer(
    conn: Connection, session_id: int, expert: str, state: OfferState, reason: str | None = None
) -> bool:
    """End a live offer as accepted, declined, withdrawn or failed; False if it was not live."""
    ended = await conn.fetchval(
        "UPDATE offer SET state=$1, ended_at=$2, reason=$3, offered_at=COALESCE(offered_at, $2)"
        " WHERE session_id=$4 AND expert=$5 AND state IN ('pending', 'invited') RETURNING expert",
        state,
        now_ms(),
        reason,
        session_id,
        expert,
    )
    return ended is not None


async def get_offer(conn: Connection, session_id: int, expert: str) -> Offer | None:
    """One offer."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM offer WHERE session_id=$1 AND expert=$2", session_id, expert
    )
    return _from_row(row) if row else None


async def session_offers(conn: Connection, session_id: int) -> list[Offer]:
    """All offers of a session, in the order they were made."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM offer WHERE session_id=$1 ORDER BY created_at, expert",
        session_id,
    )
    return [_from_row(row) for row in rows]


async def overdue_offers(conn: Connection, now: int) -> list[Offer]:
    """Live offers whose time is up, oldest deadline first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM offer WHERE expires_at <= $1"
        " AND state IN ('pending', 'invited') ORDER BY expires_at, session_id, expert",
        now,
    )
    return [_from_row(row) for row in rows]


async def next_offer_deadline(conn: Connection) -> int | None:
    """When the next live offer times out, if any will."""
    value = await conn.fetchval(
        "SELECT MIN(expires_at) FROM offer"
        " WHERE state IN ('pending', 'invited') AND expires_at IS NOT NULL"
    )
    return int(value) if value is not None else None
