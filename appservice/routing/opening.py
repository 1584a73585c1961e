"""Opening a session: the one way a request becomes a session, from a DM, `!ask` or the API."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mautrix.util.async_db import Connection

from ..config import Config, GroupConfig
from ..db import outbox, sessions
from .preferences import Request

log = logging.getLogger("backline.routing")


@dataclass(frozen=True, slots=True)
class CustomerQuery:
    """The customer interaction a request is about, when a CRM or PBX opens it."""

    channel: str | None = None
    reference: str | None = None
    customer: str | None = None


def session_lane(session_id: int) -> str:
    """Outbox lane of a session: its calls run in order."""
    return f"session:{session_id}"


async def open_session(
    conn: Connection,
    config: Config,
    group: GroupConfig,
    agent: str,
    request: Request,
    *,
    dm_room_id: str | None = None,
    request_event_id: str | None = None,
    query: CustomerQuery | None = None,
    dm_user: str | None = None,
) -> int:
    """Record a new session and queue the making of its room; returns the session ID.

    The caller checks that the agent may ask the group; this commits with its transaction.
    `dm_user` is who answers in the agent's DM (the group user, or the bot after `!ask`).
    """
    query = query or CustomerQuery()
    session_id = await sessions.create_session(
        conn,
        group_id=group.id,
        agent=agent,
        question=request.question,
        preferences=request.preferences(),
        needed=group.routing.needed,
        alias_prefix=config.appservice.session_alias_prefix,
        dm_room_id=dm_room_id,
        request_event_id=request_event_id,
        channel=query.channel,
        reference=query.reference,
        customer=query.customer,
        dm_user=dm_user,
    )
    await outbox.enqueue(conn, session_lane(session_id), "open_session", session_id=session_id)
    log.info("Session opened", extra={"session": session_id, "group": group.id})
    return session_id
