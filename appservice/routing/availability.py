"""Who of a group can be interrupted right now, read from the store."""

from __future__ import annotations

from mautrix.util.async_db import Connection

from ..config import Config, ExpertConfig, GroupConfig
from ..db.presence import presence_of
from ..db.sessions import claimed_counts
from .candidates import Choice, choose_experts


async def available_experts(
    conn: Connection,
    config: Config,
    group: GroupConfig,
    *,
    already_offered: set[str] | None = None,
    agent: str = "",
) -> Choice:
    """The members to offer a request to now, and why the rest are skipped."""
    members: list[str] = list(group.members)
    presence = await presence_of(conn, members)
    loads = await claimed_counts(conn, members)
    profiles: dict[str, ExpertConfig] = {member: config.expert(member) for member in members}
    return choose_experts(
        group, members, profiles, presence, loads, already_offered or set(), agent
    )
