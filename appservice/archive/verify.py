"""Checking the archive's hash chains: any row changed, removed or inserted shows up."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mautrix.util.async_db import Connection

from ..db.chains import chain_rooms, chain_rows
from .chain import GENESIS, link_hash

# Columns kept beside the JSON for querying; they must agree with it.
_MIRRORED = ("event_id", "room_id", "sender", "type")


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """A link that does not hold, and why."""

    room_id: str
    chain_index: int
    event_id: str
    problem: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What was checked and every break found, first break first per room."""

    rooms: int
    events: int
    breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks


async def verify_archive(conn: Connection, session_id: int | None = None) -> VerifyReport:
    """Check every chain, or the chains that hold one session's events."""
    rooms = await chain_rooms(conn, session_id)
    events = 0
    breaks: list[ChainBreak] = []
    for tip in rooms:
        checked, room_breaks = await _verify_room(conn, tip)
        events += checked
        breaks.extend(room_breaks)
    return VerifyReport(rooms=len(rooms), events=events, breaks=breaks)


async def _verify_room(conn: Connection, tip: Any) -> tuple[int, list[ChainBreak]]:
    room_id = tip["room_id"]
    purged = tip["purged_through"]
    expected_index = -1 if purged is None else purged
    prev_hash = GENESIS if purged is None else tip["purged_hash"]
    breaks: list[ChainBreak] = []
    count = 0

    async for row in chain_rows(conn, room_id):
        count += 1
        expected_index += 1
        problem = _check_row(row, expected_index, prev_hash)
        if problem:
            breaks.append(ChainBreak(room_id, row["chain_index"], row["event_id"], problem))
        expected_index = row["chain_index"]
        prev_hash = row["hash"]

    if expected_index != tip["last_index"] or prev_hash != tip["last_hash"]:
        problem = f"chain ends at link {expected_index}, but {tip['last_index']} were written"
        breaks.append(ChainBreak(room_id, expected_index + 1, "", problem))
    return count, breaks


def _check_row(row: Any, expected_index: int, prev_hash: str) -> str | None:
    """Why this row breaks the chain, or None if it holds."""
    if row["chain_index"] != expected_index:
        return f"link {expected_index} is missing (next is {row['chain_index']})"
    if row["prev_hash"] != prev_hash:
        return "does not link to the previous event's hash"
    if link_hash(prev_hash, row["event_json"]) != row["hash"]:
        return "stored event does not match its hash (altered after archiving)"
    try:
        event = json.loads(row["event_json"])
    except json.JSONDecodeError:
        return "stored event is not valid JSON"
    mismatched = [key for key in _MIRRORED if event.get(key) != row[key]]
    if mismatched:
        return f"column(s) {', '.join(mismatched)} differ from the archived event"
    return None
