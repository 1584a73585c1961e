"""Routing decisions with their reasons, readable per session."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mautrix.util.async_db import Connection

from . import now_ms


@dataclass(frozen=True, slots=True)
class Decision:
    """One routing decision: a one-line summary and the reasons behind it."""

    decided_at: int
    summary: str
    details: dict[str, Any]


async def record_decision(
    conn: Connection, session_id: int, summary: str, details: dict[str, Any]
) -> None:
    """Store a decision (who was offered, who was skipped and why)."""
    await conn.execute(
        "INSERT INTO routing_decision (session_id, decided_at, summary, details)"
        " VALUES ($1, $2, $3, $4)",
        session_id,
        now_ms(),
        summary,
        json.dumps(details),
    )


async def session_decisions(conn: Connection, session_id: int) -> list[Decision]:
    """A session's decisions in order."""
    rows = await conn.fetch(
        "SELECT decided_at, summary, details FROM routing_decision WHERE session_id=$1"
        " ORDER BY id",
        session_id,
    )
    return [Decision(r["decided_at"], r["summary"], json.loads(r["details"])) for r in rows]
