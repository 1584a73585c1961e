"""Checking the archive's hash chains: any row changed, removed or inserted shows up."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mautrix.util.async_db import Connection

from ..db.chains import chain_gaps, chain_rooms, chain_rows
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
    gaps = await chain_gaps(conn, room_id)
    # The last link checked (or cut off at the start), and its hash.
    kept_index = -1 if purged is None else purged
    kept_hash = GENESIS if purged is None else tip["purged_hash"]
    breaks: list[ChainBreak] = []
    count = 0

    async for row in chain_rows(conn, room_id):
        count += 1
        last_index, last_hash = _past_gaps(gaps, kept_index, kept_hash)
        problem = _check_row(row, last_index + 1, last_hash)
        if problem:
            breaks.append(ChainBreak(room_id, row["chain_index"], row["event_id"], problem))
        if row["chain_index"] > last_index:
            # A row left inside a purged stretch is a break; the chain goes on after it.
            kept_index, kept_hash = row["chain_index"], row["hash"]

    kept_index, kept_hash = _past_gaps(gaps, kept_index, kept_hash)
    if kept_index != tip["last_index"] or kept_hash != tip["last_hash"]:
        problem = f"chain ends at link {kept_index}, but {tip['last_index']} were written"
        breaks.append(ChainBreak(room_id, kept_index + 1, "", problem))
    return count, breaks


def _past_gaps(gaps: dict[int, tuple[int, str]], index: int, prev_hash: str) -> tuple[int, str]:
    """The last link and hash once the purged stretches right after link `index` are passed."""
    while (gap := gaps.get(index + 1)) is not None:
        index, prev_hash = gap
    return index, prev_hash


def _check_row(row: Any, expected_index: int, prev_hash: str) -> str | None:
    """Why this row breaks the chain, or None if it holds."""
    if row["chain_index"] < expected_index:
        return f"link {row['chain_index']} was recorded as purged, yet it is still there"
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
