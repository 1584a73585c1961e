"""`backline hold`: place, list and release legal holds, which keep sessions past retention."""

from __future__ import annotations

from typing import TextIO

from mautrix.util.async_db import Database

from ..archive.holds import Hold, HoldKind, list_holds, place_hold, release_hold
from ..archive.plaintext import format_time, printable
from ..config import GROUP_ID_RE, is_user_id
from ..db import connection, transaction
from ..db.sessions import get_session
from . import CommandFailed, cli_actor, format_columns


def value_problem(kind: HoldKind, value: str) -> str | None:
    """What is wrong with a hold's value for its kind, or None."""
    if kind == "session" and not value.isdigit():
        return f"a session hold needs a session ID (a number), not {value!r}"
    if kind == "agent" and not is_user_id(value):
        return f"an agent hold needs a Matrix user ID like @alice:example.org, not {value!r}"
    if kind == "group" and not GROUP_ID_RE.fullmatch(value):
        return f"a group hold needs a group ID like billing, not {value!r}"
    return None


async def add(db: Database, kind: HoldKind, value: str, reason: str, *, out: TextIO) -> int:
    """Place a hold (logged by the archive as `hold`)."""
    if kind == "session":
        async with connection(db) as conn:
            if await get_session(conn, int(value)) is None:
                raise CommandFailed(
                    f"there is no session {value}",
                    "`backline search` lists sessions and their IDs",
                )
    # A transaction that starts by writing waits for a running Backline's commits; one that
    # read first could not write on SQLite once Backline had committed meanwhile.
    async with transaction(db) as conn:
        hold = await place_hold(conn, kind, value, reason, by=cli_actor())
    out.write(f"Placed hold {hold.id} on {kind} {printable(value)}.\n")
    return 0


async def release(db: Database, hold_id: int, *, out: TextIO) -> int:
    """Release an active hold (logged by the archive as `release`)."""
    async with transaction(db) as conn:
        hold = await release_hold(conn, hold_id, by=cli_actor())
    if hold is None:
        raise CommandFailed(
            f"there is no active hold {hold_id}", "`backline hold list` shows the active holds"
        )
    out.write(f"Released hold {hold.id} on {hold.kind} {printable(hold.value)}.\n")
    return 0


async def show(db: Database, include_released: bool, *, out: TextIO) -> int:
    """List active holds, or all with `include_released`, oldest first."""
    async with connection(db) as conn:
        holds = await list_holds(conn, include_released)
    if not holds:
        out.write("No holds.\n" if include_released else "No active holds.\n")
        return 0
    out.write(format_holds(holds, include_released))
    return 0


def format_holds(holds: list[Hold], include_released: bool) -> str:
    """Aligned columns, the free-text reason last."""
    header = ["ID", "KIND", "VALUE", "PLACED (UTC)", "BY"]
    if include_released:
        header.append("RELEASED (UTC)")
    rows = [[*header, "REASON"]]
    for hold in holds:
        row = [
            str(hold.id),
            hold.kind,
            printable(hold.value),
            format_time(hold.created_at),
            printable(hold.created_by),
        ]
        if include_released:
            released = hold.released_at is not None
            row.append(
                f"{format_time(hold.released_at)} by {printable(hold.released_by or '')}"
                if released
                else "active"
            )
        rows.append([*row, printable(hold.reason)])
    return format_columns(rows)
