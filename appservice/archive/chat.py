"""The archive in the bot DM: `!search` for compliance officers, answered in plain text."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from .access import record_access
from .plaintext import format_time, plain_snippet, printable
from .search import SearchFilters, SearchHit, search_archive

SHOWN = 5
# One page of the archive search, which stays fast for any query; counting every match of a
# common word costs hundreds of milliseconds on either engine.
_LOOKED_AT = 50

USAGE = "Write what to look for after !search, for example: !search double charge"


async def search_reply(conn: Connection, user_id: str, query: str) -> str:
    """The answer to `!search QUERY`: the newest hits, and how to see the rest. Logs the access.

    The caller checks that `user_id` may search the archive.
    """
    query = query.strip()
    if not query:
        return USAGE

    page = await search_archive(conn, query, SearchFilters(), limit=_LOOKED_AT)
    await record_access(conn, user_id, "search", query, {"via": "bot", "results": len(page.hits)})

    if not page.hits:
        return f"Nothing in the archive matches {printable(query)!r}."
    lines = [f"Newest matches for {printable(query)!r}:"]
    lines += [_hit_line(hit) for hit in page.hits[:SHOWN]]
    hidden = len(page.hits) - SHOWN
    if hidden > 0 or page.next_cursor is not None:
        count = f"{hidden}+" if page.next_cursor is not None else str(hidden)
        lines.append(f"{count} more: use the archive page or `backline search`.")
    return "\n".join(lines)


def _hit_line(hit: SearchHit) -> str:
    when = format_time(hit.sent_at if hit.sent_at is not None else hit.started_at)
    sender = hit.sender or hit.agent
    return (
        f"• session {hit.session_id}, {when} UTC, {hit.group}, {sender}: "
        f"{plain_snippet(hit.snippet)}"
    )
