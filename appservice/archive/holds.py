"""Legal holds: while one is active, retention keeps the sessions it covers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mautrix.util.async_db import Connection

from ..db import holds as holds_db
from .access import record_access

HoldKind = Literal["session", "agent", "group"]
HOLD_KINDS: tuple[HoldKind, ...] = ("session", "agent", "group")


@dataclass(frozen=True, slots=True)
class Hold:
    """A legal hold on one session, all sessions of an agent, or all sessions of a group."""

    id: int
    kind: HoldKind
    value: str
    reason: str
    created_by: str
    created_at: int
    released_by: str | None
    released_at: int | None

    def to_json(self) -> dict[str, Any]:
        """The hold as the API shows it."""
        return {
            "id": self.id,
            "kind": self.kind,
            "value": self.value,
            "reason": self.reason,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "released_by": self.released_by,
            "released_at": self.released_at,
        }


def _from_row(row: Any) -> Hold:
    return Hold(
        id=row["id"],
        kind=row["kind"],
        value=row["value"],
        reason=row["reason"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        released_by=row["released_by"],
        released_at=row["released_at"],
    )


async def place_hold(conn: Connection, kind: HoldKind, value: str, reason: str, by: str) -> Hold:
    """Place a hold and log who placed it."""
    if kind not in HOLD_KINDS:
        raise ValueError(f"hold kind must be one of {', '.join(HOLD_KINDS)}")
    hold = _from_row(await holds_db.insert_hold(conn, kind, value, reason, by))
    await record_access(conn, by, "hold", f"{kind}:{value}", {"hold": hold.id, "reason": reason})
    return hold


async def release_hold(conn: Connection, hold_id: int, by: str) -> Hold | None:
    """Release an active hold and log it; None if there is no such active hold."""
    row = await holds_db.release(conn, hold_id, by)
    if row is None:
        return None
    hold = _from_row(row)
    await record_access(conn, by, "release", f"{hold.kind}:{hold.value}", {"hold": hold.id})
    return hold


async def list_holds(conn: Connection, include_released: bool = False) -> list[Hold]:
    """Active holds (and released ones on request), oldest first."""
    return [_from_row(row) for row in await holds_db.select_holds(conn, include_released)]
