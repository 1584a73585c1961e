"""Transactions the homeserver has delivered and Backline has committed."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from . import now_ms


async def is_processed(conn: Connection, txn_id: str, body_sha256: str) -> bool:
    """True when this very transaction (same ID and same body) was committed before.

    Synapse restarts its transaction IDs after its own restart, so an ID alone is not
    proof of a repeat; the body's digest is.
    """
    stored = await conn.fetchval("SELECT body_sha256 FROM appservice_txn WHERE txn_id=$1", txn_id)
    return bool(stored == body_sha256)


async def mark_processed(conn: Connection, txn_id: str, body_sha256: str) -> None:
    """Record a committed transaction, replacing an older one that had the same ID."""
    await conn.execute(
        "INSERT INTO appservice_txn (txn_id, body_sha256, received_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (txn_id) DO UPDATE SET body_sha256=excluded.body_sha256,"
        " received_at=excluded.received_at",
        txn_id,
        body_sha256,
        now_ms(),
    )
