"""Sessions: one help request each, with its room and outcome."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mautrix.util.async_db import Connection

from . import now_ms

SessionState = Literal[
    "opening", "offering", "waiting", "claimed", "closed", "expired", "cancelled"
]
OPEN_STATES: tuple[SessionState, ...] = ("opening", "offering", "waiting", "claimed")
ROUTABLE_STATES: tuple[SessionState, ...] = ("opening", "offering", "waiting")

_COLUMNS = (
    "id, group_id, agent, dm_room_id, request_event_id, room_id, room_alias, question,"
    " preferences, state, needed, created_at, claimed_at, closed_at, closed_by, channel,"
    " reference, customer, routing_group, step, step_deadline, dm_user"
)


@dataclass(slots=True)
class Session:
    """A session row."""

    id: int
    group_id: str
    agent: str
    dm_room_id: str | None
    request_event_id: str | None
    room_id: str | None
    room_alias: str | None
    question: str
    preferences: dict[str, Any]
    state: SessionState
    needed: int
    created_at: int
    claimed_at: int | None = None
    closed_at: int | None = None
    closed_by: str | None = None
    channel: str | None = None
    reference: str | None = None
    customer: str | None = None
    # The group being asked now: the session's own, or an overflow group after escalation.
    routing_group: str | None = None
    step: int = 0
    step_deadline: int | None = None
    dm_user: str | None = None

    @property
    def asked_group(self) -> str:
        """The group whose experts are being asked now."""
        return self.routing_group or self.group_id

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def is_routable(self) -> bool:
        return self.state in ROUTABLE_STATES

    def room_reference(self, domain: str) -> str:
        """How to name the session room to people: its alias, which clients turn into a link."""
        if self.room_alias and self.room_id:
            return f"#{self.room_alias}:{domain}"
        return self.room_id or "the session room (being created)"


def _from_row(row: Any) -> Session:
    return Session(
        id=row["id"],
        group_id=row["group_id"],
        agent=row["agent"],
        dm_room_id=row["dm_room_id"],
        request_event_id=row["request_event_id"],
        room_id=row["room_id"],
        room_alias=row["room_alias"],
        question=row["question"],
        preferences=json.loads(row["preferences"]),
        state=row["state"],
        needed=row["needed"],
        created_at=row["created_at"],
        claimed_at=row["claimed_at"],
        closed_at=row["closed_at"],
        closed_by=row["closed_by"],
        channel=row["channel"],
        reference=row["reference"],
        customer=row["customer"],
        routing_group=row["routing_group"],
        step=row["step"],
        step_deadline=row["step_deadline"],
        dm_user=row["dm_user"],
    )


async def create_session(
    conn: Connection,
    *,
    group_id: str,
    agent: str,
    question: str,
    preferences: dict[str, Any],
    needed: int,
    alias_prefix: str,
    dm_room_id: str | None = None,
    request_event_id: str | None = None,
    channel: str | None = None,
    reference: str | None = None,
    customer: str | None = None,
    dm_user: str | None = None,
) -> int:
    """Insert a session in state `opening`; returns its ID.

    The room alias localpart carries a random part so that a fresh database never picks an
    alias an earlier installation already holds on the homeserver.
    """
    session_id = await conn.fetchval(
        "INSERT INTO session (group_id, agent, dm_room_id, request_event_id, question,"
        " preferences, state, needed, created_at, channel, reference, customer, dm_user)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'opening', $7, $8, $9, $10, $11, $12) RETURNING id",
        group_id,
        agent,
        dm_room_id,
        request_event_id,
        question,
        json.dumps(preferences),
        needed,
        now_ms(),
        channel,
        reference,
        customer,
        dm_user,
    )
    alias = f"{alias_prefix}{session_id}-{secrets.token_hex(3)}"
    await conn.execute("UPDATE session SET room_alias=$1 WHERE id=$2", alias, session_id)
    return int(session_id)


async def get_session(conn: Connection, session_id: int) -> Session | None:
    """A session by ID."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM session WHERE id=$1", session_id)
    return _from_row(row) if row else None


async def session_by_room(conn: Connection, room_id: str) -> Session | None:
    """The session whose room this is."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM session WHERE room_id=$1", room_id)
    return _from_row(row) if row else None


async def open_session_of(conn: Connection, agent: str, group_id: str) -> Session | None:
    """The agent's open session with a group, if any."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM session WHERE agent=$1 AND group_id=$2"
        " AND state IN ('opening', 'offering', 'waiting', 'claimed') ORDER BY id DESC LIMIT 1",
        agent,
        group_id,
    )
    return _from_row(row) if row else None


async def set_room(conn: Connection, session_id: int, room_id: str) -> None:
    """Remember the session's room once the homeserver has made it."""
    await conn.execute("UPDATE session SET room_id=$1 WHERE id=$2", room_id, session_id)


async def set_state(
    conn: Connection, session_id: int, state: SessionState, *, only_from: tuple[str, ...] = ()
) -> bool:
    """Move a session to `state`; with `only_from`, only out of those states. True if moved."""
    now = now_ms()
    claimed_at = now if state == "claimed" else None
    closed_at = now if state in ("closed", "expired", "cancelled") else None
    query = (
        "UPDATE session SET state=$1, claimed_at=COALESCE($2, claimed_at),"
        " closed_at=COALESCE($3, closed_at) WHERE id=$4"
    )
    args: list[Any] = [state, claimed_at, closed_at, session_id]
    if only_from:
        placeholders = ", ".join(f"${i}" for i in range(5, 5 + len(only_from)))
        query += f" AND state IN ({placeholders})"
        args.extend(only_from)
    query += " RETURNING id"
    return await conn.fetchval(query, *args) is not None


async def close_session(conn: Connection, session_id: int, closed_by: str) -> bool:
    """Close an open session; False when it was not open."""
    moved = await set_state(conn, session_id, "closed", only_from=OPEN_STATES)
    if moved:
        await conn.execute("UPDATE session SET closed_by=$1 WHERE id=$2", closed_by, session_id)
    return moved


async def sessions_in_states(conn: Connection, states: tuple[str, ...]) -> list[Session]:
    """Sessions in any of these states, oldest first."""
    placeholders = ", ".join(f"${i}" for i in range(1, len(states) + 1))
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM session WHERE state IN ({placeholders}) ORDER BY id", *states
    )
    return [_from_row(row) for row in rows]


async def claimed_counts(conn: Connection, experts: Sequence[str]) -> dict[str, int]:
    """How many open sessions each expert has claimed (the load `max_sessions` caps)."""
    if not experts:
        return {}
    placeholders = ", ".join(f"${i}" for i in range(1, len(experts) + 1))
    rows = await conn.fetch(
        "SELECT offer.expert, COUNT(*) AS open FROM offer"
        " JOIN session ON session.id=offer.session_id"
        f" WHERE offer.expert IN ({placeholders}) AND offer.state='accepted'"
        " AND session.state='claimed' GROUP BY offer.expert",
        *experts,
    )
    return {row["expert"]: int(row["open"]) for row in rows}


async def set_step(
    conn: Connection, session_id: int, routing_group: str, step: int, deadline: int | None
) -> None:
    """Enter a routing step: the group asked, the step's number and when it ends."""
    await conn.execute(
        "UPDATE session SET routing_group=$1, step=$2, step_deadline=$3 WHERE id=$4",
        routing_group,
        step,
        deadline,
        session_id,
    )


async def overdue_sessions(conn: Connection, now: int) -> list[Session]:
    """Routable sessions whose current step has run out of time, oldest deadline first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM session WHERE step_deadline <= $1"
        " AND state IN ('opening', 'offering', 'waiting') ORDER BY step_deadline, id",
        now,
    )
    return [_from_row(row) for row in rows]


async def next_step_deadline(conn: Connection) -> int | None:
    """When the next routable session's step runs out, if any does."""
    value = await conn.fetchval(
        "SELECT MIN(step_deadline) FROM session"
        " WHERE state IN ('opening', 'offering', 'waiting') AND step_deadline IS NOT NULL"
    )
    return int(value) if value is not None else None


async def last_claims(conn: Connection, experts: Sequence[str]) -> dict[str, int]:
    """When each expert last took a session (ms); experts who never did are absent."""
    if not experts:
        return {}
    placeholders = ", ".join(f"${i}" for i in range(1, len(experts) + 1))
    rows = await conn.fetch(
        "SELECT expert, MAX(ended_at) AS last FROM offer"
        f" WHERE expert IN ({placeholders}) AND state='accepted' GROUP BY expert",
        *experts,
    )
    return {row["expert"]: int(row["last"]) for row in rows}
