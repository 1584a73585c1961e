"""`backline search`: archived messages from a terminal, as a table or as JSON lines."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, TextIO

from mautrix.util.async_db import Database

from ..archive.access import record_access
from ..archive.plaintext import format_time, plain_snippet, printable
from ..archive.search import SearchFilters, SearchHit, search_archive
from ..db import connection, transaction
from . import cli_actor, format_columns

# The archive hands out pages of at most this many; longer listings follow its cursor.
_PAGE = 100
_BOLD, _PLAIN = "\x1b[1m", "\x1b[0m"
_COLUMNS = ("SESSION", "TIME (UTC)", "GROUP", "AGENT", "SENDER", "SNIPPET")


async def search(
    db: Database,
    query: str,
    filters: SearchFilters,
    *,
    limit: int,
    as_json: bool,
    out: TextIO,
) -> int:
    """Print the newest `limit` hits; the search is logged before anything is shown."""
    hits = await collect_hits(db, query, filters, limit)

    details: dict[str, Any] = {k: v for k, v in asdict(filters).items() if v is not None}
    details |= {"via": "cli", "results": len(hits)}
    async with transaction(db) as conn:
        await record_access(conn, cli_actor(), "search", query, details)

    if as_json:
        for hit in hits:
            out.write(json.dumps(hit_json(hit), ensure_ascii=False) + "\n")
    elif hits:
        out.write(format_table(hits, bold=out.isatty()))
    else:
        out.write("No matches.\n")
    return 0


async def collect_hits(
    db: Database, query: str, filters: SearchFilters, limit: int
) -> list[SearchHit]:
    """Up to `limit` hits, newest first, following the archive's pages.

    Read outside a transaction: on SQLite a long read that then writes the access log could
    lose its snapshot to the running service's writes.
    """
    hits: list[SearchHit] = []
    cursor: str | None = None
    async with connection(db) as conn:
        while len(hits) < limit:
            page = await search_archive(
                conn, query, filters, cursor, min(_PAGE, limit - len(hits))
            )
            hits += page.hits
            cursor = page.next_cursor
            if cursor is None:
                break
    return hits


def hit_json(hit: SearchHit) -> dict[str, Any]:
    """One JSON line: the API's fields, with the snippet as plain text and as safe HTML."""
    return {
        **hit.to_json(),
        "snippet": plain_snippet(hit.snippet, "", ""),
        "snippet_html": hit.snippet,
    }


def format_table(hits: list[SearchHit], *, bold: bool) -> str:
    """Aligned columns; matches in ANSI bold on a terminal, else between `**`."""
    start, end = (_BOLD, _PLAIN) if bold else ("**", "**")
    rows = [
        (
            str(hit.session_id),
            format_time(hit.sent_at if hit.sent_at is not None else hit.started_at),
            printable(hit.group),
            printable(hit.agent),
            printable(hit.sender or "-"),
            plain_snippet(hit.snippet, start, end),
        )
        for hit in hits
    ]
    # The snippet comes last and is not padded, so escape codes never upset the alignment.
    return format_columns([list(_COLUMNS), *map(list, rows)])
