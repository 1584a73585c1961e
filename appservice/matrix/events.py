"""Events from the homeserver, checked at the JSON boundary and turned into typed objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeGuard


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """The parts of a room event Backline acts on; the archive keeps the whole JSON."""

    event_id: str
    room_id: str
    sender: str
    type: str
    state_key: str | None
    content: dict[str, Any]
    origin_ts: int

    @property
    def membership(self) -> str | None:
        """For `m.room.member`: the new membership."""
        value = self.content.get("membership")
        return value if isinstance(value, str) else None

    @property
    def body(self) -> str:
        """For `m.room.message`: the plain-text body."""
        value = self.content.get("body")
        return value if isinstance(value, str) else ""

    @property
    def mentioned_users(self) -> tuple[str, ...]:
        """User IDs in `m.mentions` (spec v1.7, intentional mentions)."""
        mentions = self.content.get("m.mentions")
        users = mentions.get("user_ids") if isinstance(mentions, dict) else None
        if not isinstance(users, list):
            return ()
        return tuple(u for u in users if isinstance(u, str))


@dataclass(frozen=True, slots=True)
class PresenceUpdate:
    """An `m.presence` ephemeral event."""

    user_id: str
    presence: str
    status_msg: str | None


_REQUIRED = ("event_id", "room_id", "sender", "type")


def is_room_event(raw: Any) -> TypeGuard[dict[str, Any]]:
    """True when the JSON has what every room event has: its IDs, sender and type."""
    if not isinstance(raw, dict):
        return False
    for key in _REQUIRED:
        value = raw.get(key)
        if not isinstance(value, str) or not value:
            return False
    return True


def room_event(raw: dict[str, Any]) -> RoomEvent:
    """The typed form of JSON that `is_room_event` accepted."""
    content = raw.get("content")
    state_key = raw.get("state_key")
    origin_ts = raw.get("origin_server_ts")
    return RoomEvent(
        event_id=raw["event_id"],
        room_id=raw["room_id"],
        sender=raw["sender"],
        type=raw["type"],
        state_key=state_key if isinstance(state_key, str) else None,
        content=content if isinstance(content, dict) else {},
        origin_ts=origin_ts if isinstance(origin_ts, int) else 0,
    )


def parse_presence(raw: Any) -> PresenceUpdate | None:
    """A presence update, or None if this ephemeral event is something else or malformed."""
    if not isinstance(raw, dict) or raw.get("type") != "m.presence":
        return None
    content = raw.get("content")
    sender = raw.get("sender")
    if not isinstance(content, dict) or not isinstance(sender, str):
        return None
    presence = content.get("presence")
    status_msg = content.get("status_msg")
    if not isinstance(presence, str):
        return None
    return PresenceUpdate(sender, presence, status_msg if isinstance(status_msg, str) else None)
