"""Retention: purging sessions older than `archive.retention`, unless a legal hold keeps them.

A room's chain loses every stretch of links that may go: at its start (a session room, or
the oldest of an agent's DM) the start moves; in the middle (a DM request of an expired
session between those of a held or recent one) a gap is recorded. Each cut keeps the hash of
its last link, which the next kept link names, so `verify` still proves that nothing that is
left was changed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mautrix.util.async_db import Connection, Database

from ..db import now_ms, transaction
from ..db import retention as sql
from .access import record_access
from .describe import media_of

log = logging.getLogger("backline.archive.retention")

_PAGE = 500


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What one purge removed."""

    sessions: list[int]
    events: int
    unused_media: list[str]


async def purge_expired(conn: Connection, cutoff: int, actor: str = "retention") -> PurgeReport:
    """Delete what ended before `cutoff` (ms) and is not held; log the purge itself."""
    expired = await sql.expired_sessions(conn, cutoff)
    expired_ids = {row["id"] for row in expired}
    rooms = [row["room_id"] for row in expired if row["room_id"]]
    rooms += await sql.unheld_side_rooms(conn)

    events = 0
    media: list[str] = []
    for room_id in dict.fromkeys(rooms):
        removed, files = await _trim_room(conn, room_id, cutoff, expired_ids)
        events += removed
        media += files
    for session_id in sorted(expired_ids):
        await sql.delete_session(conn, session_id)
    unused = await sql.forget_media(conn, media)

    if expired_ids or events:
        details = {"sessions": sorted(expired_ids), "events": events, "cutoff": cutoff}
        await record_access(conn, actor, "purge", "archive", details)
    return PurgeReport(sorted(expired_ids), events, unused)


async def _trim_room(
    conn: Connection, room_id: str, cutoff: int, expired: set[int]
) -> tuple[int, list[str]]:
    """Cut every stretch of a room's chain that may go; returns rows removed and their files."""
    last_old = await sql.last_link_before(conn, room_id, cutoff)
    if last_old is None:
        return 0, []
    removed = 0
    media: list[str] = []
    stretch_from = await sql.chain_start(conn, room_id)
    at_start = True
    after = stretch_from - 1
    while True:
        rows = await sql.chain_page(conn, room_id, after, last_old, _PAGE)
        doomed: list[Any] = []
        for row in rows:
            if row["origin_ts"] < cutoff and (
                row["session_id"] is None or row["session_id"] in expired
            ):
                doomed.append(row)
                continue
            removed += await _cut(conn, room_id, doomed, stretch_from, at_start, media)
            doomed = []
            at_start = False
            stretch_from = row["chain_index"] + 1
        # A stretch running on into the next page is cut a page at a time; each cut spans
        # the one before, so the stretch ends up as one.
        removed += await _cut(conn, room_id, doomed, stretch_from, at_start, media)
        if len(rows) < _PAGE:
            return removed, media
        after = rows[-1]["chain_index"]


async def _cut(
    conn: Connection,
    room_id: str,
    doomed: list[Any],
    stretch_from: int,
    at_start: bool,
    media: list[str],
) -> int:
    if not doomed:
        return 0
    media += [m["mxc"] for row in doomed if (m := media_of(json.loads(row["event_json"])))]
    seqs = [row["seq"] for row in doomed]
    await sql.cut_stretch(conn, room_id, seqs, stretch_from, doomed[-1], at_start)
    return len(doomed)


class RetentionJob:
    """Runs the purge every `purge_interval` seconds while Backline runs."""

    def __init__(self, db: Database, retention: float, interval: float, media_path: Path) -> None:
        self.db = db
        self.retention = retention
        self.interval = interval
        self.media_path = media_path

    async def run_once(self) -> PurgeReport:
        """One purge, in one transaction; stored files no longer used are deleted after it."""
        cutoff = now_ms() - int(self.retention * 1000)
        async with transaction(self.db) as conn:
            report = await purge_expired(conn, cutoff)
        for digest in report.unused_media:
            (self.media_path / digest[:2] / digest).unlink(missing_ok=True)
        if report.sessions or report.events:
            log.info(
                "Purged %d session(s), %d event(s)",
                len(report.sessions),
                report.events,
                extra={"sessions": report.sessions},
            )
        return report

    async def run_forever(self) -> None:
        """Purge now and then every interval; a failed run is logged and retried next time."""
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("Retention run failed; trying again in %.0f s", self.interval)
            await asyncio.sleep(self.interval)
