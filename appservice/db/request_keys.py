"""Idempotency keys: which session a caller's `Idempotency-Key` opened."""

from __future__ import annotations

from dataclasses import dataclass

from mautrix.util.async_db import Connection

from . import now_ms


@dataclass(frozen=True, slots=True)
class RequestKey:
    """A key already used: the session it opened, and a digest of the request it came with."""

    session_id: int
    fingerprint: str


async def find_request_key(conn: Connection, caller: str, key: str) -> RequestKey | None:
    """The session this caller opened with this key, if any."""
    row = await conn.fetchrow(
        "SELECT session_id, fingerprint FROM request_key WHERE caller=$1 AND idempotency_key=$2",
        caller,
        key,
    )
    return RequestKey(row["session_id"], row["fingerprint"]) if row else None


async def remember_request_key(
    conn: Connection, caller: str, key: str, fingerprint: str, session_id: int
) -> None:
    """Record that this caller's key opened this session."""
    await conn.execute(
        "INSERT INTO request_key (caller, idempotency_key, fingerprint, session_id, created_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        caller,
        key,
        fingerprint,
        session_id,
        now_ms(),
    )
