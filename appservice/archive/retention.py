"""Retention: purging sessions older than `archive.retention`, unless a legal hold keeps them.

Chains are only ever cut at their start, and the cut is recorded (the last purged link's
hash), so `verify` still proves that nothing after the cut was changed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path

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
    """Cut the start of a room's chain up to the first row that must stay."""
    removed = 0
    media: list[str] = []
    while True:
        rows = await sql.chain_start(conn, room_id, _PAGE)
        doomed = []
        for row in rows:
            if row["origin_ts"] >= cutoff or (
                row["session_id"] is not None and row["session_id"] not in expired
            ):
                break
            doomed.append(row)
        if not doomed:
            return removed, media
        media += [m["mxc"] for row in doomed if (m := media_of(json.loads(row["event_json"])))]
        await sql.trim_chain(conn, room_id, [row["seq"] for row in doomed], doomed[-1])
        removed += len(doomed)
        if len(doomed) < len(rows) or len(rows) < _PAGE:
            return removed, media


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
