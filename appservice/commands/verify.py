"""`backline verify`: check the archive's hash chains and name every broken link."""

from __future__ import annotations

from typing import TextIO

from mautrix.util.async_db import Database

from ..archive.access import record_access
from ..archive.plaintext import printable
from ..archive.verify import verify_archive
from ..db import connection, transaction
from ..db.sessions import get_session
from . import CommandFailed, cli_actor


async def verify(db: Database, session_id: int | None, *, out: TextIO) -> int:
    """Check every chain (or those of one session); 0 when intact, 1 when a link is broken."""
    async with connection(db) as conn:
        if session_id is not None and await get_session(conn, session_id) is None:
            raise CommandFailed(
                f"there is no session {session_id}",
                "`backline search` lists sessions and their IDs",
            )
        report = await verify_archive(conn, session_id)

    details = {"rooms": report.rooms, "events": report.events, "breaks": len(report.breaks)}
    target = "" if session_id is None else str(session_id)
    async with transaction(db) as conn:
        await record_access(conn, cli_actor(), "verify", target, details | {"via": "cli"})

    if report.ok:
        out.write(f"OK: {report.rooms} rooms, {report.events} events\n")
        return 0
    for link in report.breaks:
        event = printable(link.event_id) or "(none)"
        out.write(
            f"BROKEN: room {printable(link.room_id)}, index {link.chain_index}, "
            f"event {event}: {link.problem}\n"
        )
    out.write(
        f"{len(report.breaks)} broken link(s) in {report.rooms} rooms, "
        f"{report.events} events checked\n"
    )
    return 1
