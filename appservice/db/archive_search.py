"""SQL for archive search: FTS5 on SQLite, tsvector with GIN on PostgreSQL.

Pages are newest first by archive sequence (the order events reached Backline), with the last
sequence seen as the keyset cursor: no OFFSET, so page 100 costs what page 1 costs, and the
full-text engines can walk their index in that order and stop after one page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mautrix.util.async_db import Connection, Scheme


@dataclass(slots=True)
class Where:
    """WHERE clauses with their bound values, numbered as they are added."""

    clauses: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)

    def add(self, clause: str, *values: Any) -> None:
        """Add a clause whose `{}` placeholders take the next parameter numbers."""
        numbers = [self.param(value) for value in values]
        self.clauses.append(clause.format(*numbers))

    def param(self, value: Any) -> str:
        """Bind a value outside the WHERE clauses (a LIMIT, say); returns its placeholder."""
        self.args.append(value)
        return f"${len(self.args)}"

    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "TRUE"


@dataclass(frozen=True, slots=True)
class SessionFilter:
    """Filters on the session a hit belongs to."""

    group: str | None = None
    agent: str | None = None
    expert: str | None = None
    channel: str | None = None
    reference: str | None = None


def _session_filters(where: Where, f: SessionFilter) -> None:
    if f.group is not None:
        where.add("s.group_id = {}", f.group)
    if f.agent is not None:
        where.add("s.agent = {}", f.agent)
    if f.channel is not None:
        where.add("s.channel = {}", f.channel)
    if f.reference is not None:
        where.add("s.reference = {}", f.reference)
    if f.expert is not None:
        where.add(
            "EXISTS (SELECT 1 FROM offer o WHERE o.session_id = s.id AND o.expert = {}"
            " AND o.state = 'accepted')",
            f.expert,
        )


@dataclass(frozen=True, slots=True)
class MessageRows:
    """Matching messages, and where to go on when the scan stopped before a full page."""

    rows: list[Any]
    resume_after: int | None = None


_MESSAGE_COLUMNS = (
    "m.body, e.event_id, e.sender, e.origin_ts, s.id AS session_id, s.group_id, s.agent,"
    " s.room_id, s.created_at"
)
# How many candidates one step of a filtered PostgreSQL search looks at, and how many steps
# one page may take before it answers with what it found and a cursor to go on from.
_BATCH = 500
_MAX_BATCHES = 20


def _time_and_session_filters(
    where: Where, sessions: SessionFilter, since: int | None, until: int | None
) -> None:
    if since is not None:
        where.add("e.origin_ts >= {}", since)
    if until is not None:
        where.add("e.origin_ts < {}", until)
    _session_filters(where, sessions)


async def find_messages(
    conn: Connection,
    match: str,
    sessions: SessionFilter,
    since: int | None,
    until: int | None,
    before_seq: int | None,
    limit: int,
) -> MessageRows:
    """Messages matching `match` (an FTS5 expression, or websearch text on PostgreSQL)."""
    if conn.scheme != Scheme.SQLITE:
        return await _find_messages_postgres(
            conn, match, sessions, since, until, before_seq, limit
        )
    where = Where()
    where.add("message_fts MATCH {}", match)
    if before_seq is not None:
        where.add("f.rowid < {}", before_seq)
    _time_and_session_filters(where, sessions, since, until)
    query = (
        f"SELECT f.rowid AS seq, {_MESSAGE_COLUMNS} FROM message_fts f"
        " JOIN message_text m ON m.seq = f.rowid JOIN room_event e ON e.seq = f.rowid"
        f" JOIN session s ON s.id = e.session_id WHERE {where.sql()}"
        f" ORDER BY f.rowid DESC LIMIT {where.param(limit)}"
    )
    return MessageRows(await conn.fetch(query, *where.args))


async def _find_messages_postgres(
    conn: Connection,
    match: str,
    sessions: SessionFilter,
    since: int | None,
    until: int | None,
    before_seq: int | None,
    limit: int,
) -> MessageRows:
    """Find candidates in the text index alone, then join and filter them, a step at a time.

    Joined in one query, the planner takes a rare word for a common one and walks the whole
    table newest first; asked about the index alone it picks the right plan for either.
    """
    filtered = since is not None or until is not None or sessions != SessionFilter()
    batch = max(limit, _BATCH) if filtered else limit
    found: list[Any] = []
    position = before_seq
    for _ in range(_MAX_BATCHES):
        candidates = await _candidates(conn, match, position, batch)
        if not candidates:
            return MessageRows(found)
        where = Where()
        where.add("e.seq = ANY({})", candidates)
        _time_and_session_filters(where, sessions, since, until)
        found += await conn.fetch(
            f"SELECT e.seq, {_MESSAGE_COLUMNS} FROM room_event e"
            " JOIN message_text m ON m.seq = e.seq JOIN session s ON s.id = e.session_id"
            f" WHERE {where.sql()} ORDER BY e.seq DESC",
            *where.args,
        )
        position = candidates[-1]
        if len(found) >= limit:
            return MessageRows(found[:limit])
        if len(candidates) < batch:
            return MessageRows(found)
    return MessageRows(found, resume_after=position)


async def _candidates(conn: Connection, match: str, before: int | None, limit: int) -> list[int]:
    """Sequence numbers of matching messages, newest first, from the text index only."""
    where = Where()
    where.add("tsv @@ websearch_to_tsquery('simple', {})", match)
    if before is not None:
        where.add("seq < {}", before)
    rows = await conn.fetch(
        f"SELECT seq FROM message_text WHERE {where.sql()} ORDER BY seq DESC"
        f" LIMIT {where.param(limit)}",
        *where.args,
    )
    return [row["seq"] for row in rows]


async def find_sessions(
    conn: Connection,
    sessions: SessionFilter,
    since: int | None,
    until: int | None,
    before_id: int | None,
    limit: int,
) -> list[Any]:
    """Sessions, newest first, when there are no words to search for."""
    where = Where()
    if before_id is not None:
        where.add("s.id < {}", before_id)
    if since is not None:
        where.add("s.created_at >= {}", since)
    if until is not None:
        where.add("s.created_at < {}", until)
    _session_filters(where, sessions)
    query = (
        "SELECT s.id AS session_id, s.group_id, s.agent, s.room_id, s.created_at, s.question"
        f" FROM session s WHERE {where.sql()} ORDER BY s.id DESC LIMIT {where.param(limit)}"
    )
    return await conn.fetch(query, *where.args)


async def claimers(conn: Connection, session_ids: list[int]) -> dict[int, list[str]]:
    """Experts who claimed each of these sessions."""
    if not session_ids:
        return {}
    placeholders = ", ".join(f"${i}" for i in range(1, len(session_ids) + 1))
    rows = await conn.fetch(
        "SELECT session_id, expert FROM offer WHERE state = 'accepted'"
        f" AND session_id IN ({placeholders}) ORDER BY ended_at",
        *session_ids,
    )
    result: dict[int, list[str]] = {}
    for row in rows:
        result.setdefault(row["session_id"], []).append(row["expert"])
    return result
