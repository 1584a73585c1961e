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


async def find_messages(
    conn: Connection,
    match: str,
    sessions: SessionFilter,
    since: int | None,
    until: int | None,
    before_seq: int | None,
    limit: int,
) -> list[Any]:
    """Messages matching `match` (an FTS5 expression, or websearch text on PostgreSQL)."""
    where = Where()
    if conn.scheme == Scheme.SQLITE:
        where.add("message_fts MATCH {}", match)
        source = "message_fts f JOIN message_text m ON m.seq = f.rowid"
        seq = "f.rowid"
    else:
        where.add("m.tsv @@ websearch_to_tsquery('simple', {})", match)
        source = "message_text m"
        seq = "m.seq"
    if before_seq is not None:
        where.add(f"{seq} < {{}}", before_seq)
    if since is not None:
        where.add("e.origin_ts >= {}", since)
    if until is not None:
        where.add("e.origin_ts < {}", until)
    _session_filters(where, sessions)

    query = (
        f"SELECT {seq} AS seq, m.body, e.event_id, e.sender, e.origin_ts, s.id AS session_id,"
        " s.group_id, s.agent, s.room_id, s.created_at"
        f" FROM {source} JOIN room_event e ON e.seq = {seq} JOIN session s ON s.id = e.session_id"
        f" WHERE {where.sql()} ORDER BY {seq} DESC LIMIT {where.param(limit)}"
    )
    return await conn.fetch(query, *where.args)


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
