"""Plain-words descriptions of archived events for transcripts (spec: Client-Server API, rooms)."""

from __future__ import annotations

from typing import Any

_FILE_TYPES = ("m.image", "m.file", "m.video", "m.audio")


def relation(raw: dict[str, Any]) -> tuple[str | None, str | None]:
    """The event's `m.relates_to` type and target, if any."""
    content = raw.get("content")
    relates = content.get("m.relates_to") if isinstance(content, dict) else None
    if not isinstance(relates, dict):
        return None, None
    rel_type, target = relates.get("rel_type"), relates.get("event_id")
    return (
        rel_type if isinstance(rel_type, str) else None,
        target if isinstance(target, str) else None,
    )


def media_of(raw: dict[str, Any]) -> dict[str, Any] | None:
    """The file a message carries: its mxc URI, name, type and size."""
    content = raw.get("content")
    if raw.get("type") != "m.room.message" or not isinstance(content, dict):
        return None
    if content.get("msgtype") not in _FILE_TYPES or not isinstance(content.get("url"), str):
        return None
    raw_info = content.get("info")
    info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    filename = content.get("filename") or content.get("body")
    return {
        "mxc": content["url"],
        "filename": filename if isinstance(filename, str) else None,
        "content_type": info.get("mimetype") if isinstance(info.get("mimetype"), str) else None,
        "size": info.get("size") if isinstance(info.get("size"), int) else None,
    }


def _membership_summary(sender: str, target: str, content: dict[str, Any]) -> str:
    membership = content.get("membership")
    reason = content.get("reason")
    because = f": {reason}" if isinstance(reason, str) and reason else ""
    if membership == "invite":
        return f"{sender} invited {target}{because}"
    if membership == "join":
        return f"{target} joined"
    if membership == "leave" and sender == target:
        return f"{target} left{because}"
    if membership == "leave":
        return f"{sender} removed {target}{because}"
    if membership == "ban":
        return f"{sender} banned {target}{because}"
    return f"{target} membership: {membership}"


def describe_event(raw: dict[str, Any]) -> tuple[str, str]:
    """The kind of a transcript line and, for non-messages, one plain sentence about it."""
    event_type = raw.get("type")
    sender = str(raw.get("sender"))
    raw_content = raw.get("content")
    content: dict[str, Any] = raw_content if isinstance(raw_content, dict) else {}
    if event_type == "m.room.message":
        return "message", ""
    if event_type == "m.room.member":
        return "membership", _membership_summary(sender, str(raw.get("state_key")), content)
    if event_type == "m.reaction":
        return "reaction", f"{sender} reacted"
    if event_type == "m.room.redaction":
        return "redaction", f"{sender} redacted an event"
    if event_type == "m.room.name":
        return "state", f"{sender} named the room {content.get('name')!r}"
    if event_type == "m.room.topic":
        return "state", f"{sender} set the topic to {content.get('topic')!r}"
    if event_type == "m.room.create":
        return "state", f"{sender} created the room"
    if "state_key" in raw:
        return "state", f"{sender} changed {event_type}"
    return "other", f"{sender} sent {event_type}"
