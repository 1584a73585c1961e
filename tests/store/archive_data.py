"""Archive content written through the store layer, as the transaction handler writes it."""

from __future__ import annotations

import itertools
from typing import Any

from mautrix.util.async_db import Connection

from appservice.db import events as events_db
from appservice.db import offers as offers_db
from appservice.db import sessions as sessions_db

_numbers = itertools.count(1)
BASE_TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def message(room: str, sender: str, body: str, ts: int, **content: Any) -> dict[str, Any]:
    """An m.room.message event as the homeserver delivers it."""
    return {
        "event_id": f"$e{next(_numbers)}",
        "room_id": room,
        "sender": sender,
        "type": "m.room.message",
        "origin_server_ts": ts,
        "content": {"msgtype": "m.text", "body": body, **content},
    }


def edit(original: dict[str, Any], body: str, ts: int) -> dict[str, Any]:
    """An m.replace edit of `original` by its sender."""
    event = message(original["room_id"], original["sender"], f"* {body}", ts)
    event["content"]["m.new_content"] = {"msgtype": "m.text", "body": body}
    event["content"]["m.relates_to"] = {"rel_type": "m.replace", "event_id": original["event_id"]}
    return event


def redaction(target: dict[str, Any], sender: str, ts: int, reason: str) -> dict[str, Any]:
    """An m.room.redaction of `target` (room v11 form: `redacts` in content)."""
    return {
        "event_id": f"$e{next(_numbers)}",
        "room_id": target["room_id"],
        "sender": sender,
        "type": "m.room.redaction",
        "origin_server_ts": ts,
        "content": {"redacts": target["event_id"], "reason": reason},
    }


async def archived_session(
    conn: Connection,
    *,
    group: str = "billing",
    agent: str = "@agent:localhost",
    expert: str = "@alice:localhost",
    messages: list[str] = (),  # type: ignore[assignment]
    start: int = BASE_TS,
    state: sessions_db.SessionState = "closed",
) -> tuple[int, str, list[dict[str, Any]]]:
    """A session claimed by `expert` whose room holds `messages` (alternating senders)."""
    session_id = await sessions_db.create_session(
        conn,
        group_id=group,
        agent=agent,
        question=messages[0] if messages else "question",
        preferences={},
        needed=1,
        alias_prefix="backline-session-",
    )
    room = f"!session{session_id}-{next(_numbers)}:localhost"
    await sessions_db.set_room(conn, session_id, room)
    await offers_db.add_offer(conn, session_id, expert)
    await offers_db.end_offer(conn, session_id, expert, "accepted")
    await sessions_db.set_state(conn, session_id, state)
    events = [
        message(room, agent if i % 2 == 0 else expert, body, start + i * 1000)
        for i, body in enumerate(messages)
    ]
    await events_db.store_events(conn, events)
    return session_id, room, events
