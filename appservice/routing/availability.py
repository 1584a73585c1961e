"""Who belongs to a group and who of them can be interrupted right now, read from the store."""

from __future__ import annotations

from collections.abc import Sequence

from mautrix.util.async_db import Connection

from ..config import Config, GroupConfig
from ..db import groups as groups_db
from ..db.presence import presence_of
from ..db.sessions import claimed_counts
from .candidates import Choice, Situation, choose_experts


async def group_members(conn: Connection, config: Config, group: GroupConfig) -> list[str]:
    """The group's experts: those in the config, then those who joined its roster room.

    Whoever left the roster room (or refused its invite) is not a member until they rejoin.
    """
    roster = await groups_db.roster_memberships(conn, group.id)
    left = {user for user, membership in roster if membership != "join"}
    joined = [user for user, membership in roster if membership == "join"]
    configured = [member for member in group.members if member not in left]
    extra = [user for user in joined if user not in group.members and not config.is_own_user(user)]
    return configured + extra


async def situation_of(conn: Connection, config: Config, experts: Sequence[str]) -> Situation:
    """Settings, presence and open sessions of these experts, as stored now."""
    presence = await presence_of(conn, list(experts))
    loads = await claimed_counts(conn, list(experts))
    return Situation({e: config.expert(e) for e in experts}, presence, loads)


async def available_experts(
    conn: Connection,
    config: Config,
    group: GroupConfig,
    *,
    pool: Sequence[str] | None = None,
    already_offered: set[str] | None = None,
    agent: str = "",
) -> Choice:
    """The experts (of `pool`, by default the whole group) who may be offered a request now."""
    members = list(pool) if pool is not None else await group_members(conn, config, group)
    situation = await situation_of(conn, config, members)
    return choose_experts(group, members, situation, already_offered or set(), agent)
