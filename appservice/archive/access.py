"""The archive's access log: who searched, viewed, exported, held or purged what, and when."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mautrix.util.async_db import Connection

from ..db.access_log import insert_access, select_access


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One logged access."""

    id: int
    at: int
    actor: str
    action: str
    target: str
    details: dict[str, Any]


async def record_access(
    conn: Connection, actor: str, action: str, target: str, details: dict[str, Any] | None = None
) -> None:
    """Log an access; callers do this before answering, so no access goes unrecorded."""
    await insert_access(conn, actor, action, target, json.dumps(details or {}, sort_keys=True))


async def read_access_log(
    conn: Connection, limit: int = 100, before: int | None = None
) -> list[AccessEntry]:
    """Newest entries first; pass the last entry's id as `before` for the next page."""
    rows = await select_access(conn, limit, before)
    return [
        AccessEntry(
            r["id"], r["at"], r["actor"], r["action"], r["target"], json.loads(r["details"])
        )
        for r in rows
    ]
