"""Roster rooms: where a group's experts are, so Backline can see their presence."""

from __future__ import annotations

import logging

from mautrix.errors import MatrixConnectionError, MatrixRequestError
from mautrix.types import (
    Membership,
    MemberStateEventContent,
    RoomCreatePreset,
    RoomID,
    UserID,
)
from mautrix.util.async_db import Database

from ..config import GroupConfig
from ..db import connection, groups
from ..routing.actions import Actions
from .client import MatrixClient

log = logging.getLogger("backline.matrix.roster")


async def prepare_roster(
    db: Database, matrix: MatrixClient, actions: Actions, group: GroupConfig
) -> None:
    """Make sure the group's roster room exists, its members are invited, presence is read.

    Presence reaches Backline only for users who share a joined room with one of its users,
    so experts join their group's roster room.
    """
    intent = matrix.group_intent(group.id)
    async with connection(db) as conn:
        room_id = await groups.roster_room(conn, group.id)
    if room_id is None:
        room_id = await intent.create_room(
            preset=RoomCreatePreset.PRIVATE,
            name=f"{group.displayname} (roster)",
            topic="Experts of this group: stay in this room so that requests can reach you.",
        )
        async with connection(db) as conn:
            await groups.set_roster_room(conn, group.id, room_id)
        log.info("Roster room created", extra={"group": group.id, "room_id": room_id})

    members = await intent.get_members(RoomID(room_id))
    present = {
        m.state_key
        for m in members
        if isinstance(m.content, MemberStateEventContent)
        and m.content.membership in (Membership.JOIN, Membership.INVITE)
    }
    for expert in group.members:
        if expert not in present:
            try:
                await intent.invite_user(RoomID(room_id), UserID(expert))
            except (MatrixRequestError, MatrixConnectionError) as e:
                log.warning("Could not invite %s to the roster of %s: %s", expert, group.id, e)
    await actions.refresh_presence(group)
