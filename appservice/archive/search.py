"""Finding what was said: full-text search over the archive with filters and keyset pages."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from mautrix.util.async_db import Connection, Scheme

from ..db import archive_search as sql
from ..errors import BacklineError
from ..timefmt import iso_utc
from .query import fts5_expression, parse_query, snippet_html, websearch_text


class SearchError(BacklineError):
    """A search request that cannot be answered as asked (a malformed cursor, say)."""


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Narrowing a search to a group, agent, expert, time range or customer query."""

    group: str | None = None
    agent: str | None = None
    expert: str | None = None
    since: int | None = None
    until: int | None = None
    channel: str | None = None
    reference: str | None = None

    def sessions(self) -> sql.SessionFilter:
        return sql.SessionFilter(self.group, self.agent, self.expert, self.channel, self.reference)


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One matching message (or one session, for a search without words)."""

    session_id: int
    group: str
    agent: str
    experts: list[str]
    room_id: str | None
    started_at: int
    snippet: str
    event_id: str | None
    sender: str | None
    sent_at: int | None

    def to_json(self) -> dict[str, Any]:
        """The hit as the API and `backline search --json` give it; the snippet is safe HTML."""
        return {
            "session_id": self.session_id,
            "group": self.group,
            "agent": self.agent,
            "experts": self.experts,
            "room_id": self.room_id,
            "started_at": iso_utc(self.started_at),
            "snippet": self.snippet,
            "event_id": self.event_id,
            "sender": self.sender,
            "sent_at": iso_utc(self.sent_at),
        }


@dataclass(frozen=True, slots=True)
class SearchPage:
    """A page of hits and the cursor of the next page, if there is one."""

    hits: list[SearchHit]
    next_cursor: str | None


def _encode_cursor(kind: str, position: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None, kind: str) -> int | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        found_kind, _, position = base64.urlsafe_b64decode(padded).decode().partition(":")
        if found_kind == kind and position.isdigit():
            return int(position)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise SearchError("the cursor is not one this search handed out", "start from page one")


async def search_archive(
    conn: Connection,
    query: str,
    filters: SearchFilters,
    cursor: str | None = None,
    limit: int = 50,
) -> SearchPage:
    """Newest first: matching messages for a query, or sessions when the query is empty."""
    parsed = parse_query(query)
    if not query.strip():
        return await _sessions_page(conn, filters, cursor, limit)
    if parsed.empty:
        return SearchPage([], None)

    before = _decode_cursor(cursor, "m")
    match = fts5_expression(parsed) if conn.scheme == Scheme.SQLITE else websearch_text(parsed)
    found = await sql.find_messages(
        conn, match, filters.sessions(), filters.since, filters.until, before, limit + 1
    )
    rows = found.rows
    page, more = rows[:limit], len(rows) > limit
    experts = await sql.claimers(conn, list({row["session_id"] for row in page}))
    words = parsed.words()
    hits = [_hit(row, experts, snippet_html(row["body"], words), message=True) for row in page]
    if more:
        next_cursor: str | None = _encode_cursor("m", page[-1]["seq"])
    elif found.resume_after is not None:
        # The scan stopped early (filters kept little of what it read): go on from there.
        next_cursor = _encode_cursor("m", found.resume_after)
    else:
        next_cursor = None
    return SearchPage(hits, next_cursor)


async def _sessions_page(
    conn: Connection, filters: SearchFilters, cursor: str | None, limit: int
) -> SearchPage:
    before = _decode_cursor(cursor, "s")
    rows = await sql.find_sessions(
        conn, filters.sessions(), filters.since, filters.until, before, limit + 1
    )
    page, more = rows[:limit], len(rows) > limit
    experts = await sql.claimers(conn, [row["session_id"] for row in page])
    hits = [_hit(row, experts, snippet_html(row["question"], []), message=False) for row in page]
    next_cursor = _encode_cursor("s", page[-1]["session_id"]) if more else None
    return SearchPage(hits, next_cursor)


def _hit(row: Any, experts: dict[int, list[str]], snippet: str, *, message: bool) -> SearchHit:
    """A hit from a result row: a matching message, or (without words) a session."""
    return SearchHit(
        session_id=row["session_id"],
        group=row["group_id"],
        agent=row["agent"],
        experts=experts.get(row["session_id"], []),
        room_id=row["room_id"],
        started_at=row["created_at"],
        snippet=snippet,
        event_id=row["event_id"] if message else None,
        sender=row["sender"] if message else None,
        sent_at=row["origin_ts"] if message else None,
    )
