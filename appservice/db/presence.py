"""Last known presence of experts, from ephemeral events and presence reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mautrix.util.async_db import Connection

from . import now_ms


@dataclass(frozen=True, slots=True)
class Presence:
    """One user's presence and status message."""

    user_id: str
    presence: str
    status_msg: str | None
    updated_at: int


async def save_presence(
    conn: Connection, user_id: str, presence: str, status_msg: str | None
) -> None:
    """Store the newest presence of a user."""
    await conn.execute(
        "INSERT INTO presence (user_id, presence, status_msg, updated_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (user_id) DO UPDATE SET presence=excluded.presence,"
        " status_msg=excluded.status_msg, updated_at=excluded.updated_at",
        user_id,
        presence,
        status_msg,
        now_ms(),
    )


async def presence_of(conn: Connection, user_ids: Sequence[str]) -> dict[str, Presence]:
    """Known presence of these users; unknown ones are absent from the answer."""
    if not user_ids:
        return {}
    placeholders = ", ".join(f"${i}" for i in range(1, len(user_ids) + 1))
    rows = await conn.fetch(
        "SELECT user_id, presence, status_msg, updated_at FROM presence"
        f" WHERE user_id IN ({placeholders})",
        *user_ids,
    )
    return {
        r["user_id"]: Presence(r["user_id"], r["presence"], r["status_msg"], r["updated_at"])
        for r in rows
    }
