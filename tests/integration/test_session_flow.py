"""The core flow against a real Synapse: ask a group, offer, claim, withdraw, close."""

from __future__ import annotations

import asyncio

import pytest
from mautrix.types import RoomID

from appservice.db import connection
from appservice.db import offers as offers_db
from appservice.db import sessions as sessions_db
from appservice.db.decisions import session_decisions
from appservice.db.events import session_events
from tests.integration.conftest import (
    BacklineFactory,
    RunningBackline,
    join_roster,
    unique_group_id,
)
from tests.integration.matrix_user import MatrixUser, MatrixUserFactory

pytestmark = pytest.mark.integration


async def ask(agent: MatrixUser, backline: RunningBackline, group_id: str, text: str) -> RoomID:
    """Open a DM with the group user, wait for it to join, send the question."""
    group_user = backline.group_user(group_id)
    dm = await agent.create_dm(group_user)
    await agent.wait_for_membership(dm, group_user, "join")
    await agent.send_text(dm, text)
    return dm


async def session_of(backline: RunningBackline, room_id: RoomID) -> sessions_db.Session:
    async with connection(backline.app.db) as conn:  # type: ignore[arg-type]
        session = await sessions_db.session_by_room(conn, room_id)
    assert session is not None, f"no session for {room_id}"
    return session


async def offers_of(backline: RunningBackline, session_id: int) -> dict[str, str]:
    async with connection(backline.app.db) as conn:  # type: ignore[arg-type]
        return {o.expert: o.state for o in await offers_db.session_offers(conn, session_id)}


async def test_first_join_claims_and_other_offers_are_withdrawn(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, alice, bob = await asyncio.gather(
        matrix_user("agent"), matrix_user("alice"), matrix_user("bob")
    )
    group = unique_group_id("billing")
    backline = await start_backline(
        [{"id": group, "displayname": "Billing experts", "members": [alice.user_id, bob.user_id]}]
    )
    await asyncio.gather(join_roster(alice, backline, group), join_roster(bob, backline, group))

    dm = await ask(agent, backline, group, "How do I refund a double charge? lang:en")

    session_invite = await agent.wait_for_invite()
    assert session_invite.room_name is not None
    assert session_invite.room_name.startswith("Billing experts: How do I refund")
    room = session_invite.room_id
    alice_offer = await alice.wait_for_invite(predicate=lambda i: i.room_id == room)
    bob_offer = await bob.wait_for_invite(predicate=lambda i: i.room_id == room)
    assert alice_offer.reason is not None and "How do I refund a double charge?" in alice_offer.reason
    assert bob_offer.sender == backline.group_user(group)

    await agent.join(room)
    await alice.join(room)
    withdrawn = await bob.wait_for_membership(room, bob.user_id, "leave")
    assert withdrawn.sender == backline.group_user(group)
    assert withdrawn.reason == f"{alice.user_id} took this session"
    _, told = await agent.wait_for_message(room, predicate=lambda body, _: "joined" in body)
    assert told == f"{alice.user_id} joined and will help you."
    await agent.wait_for_message(dm, predicate=lambda body, _: "joined and will help" in body)

    session = await session_of(backline, room)
    assert session.state == "claimed"
    assert session.question == "How do I refund a double charge?"
    assert session.preferences["languages"] == ["en"]
    assert await offers_of(backline, session.id) == {
        alice.user_id: "accepted",
        bob.user_id: "withdrawn",
    }

    reply = await alice.send_text(room, "Refund it from the payments page.")
    for _ in range(50):
        async with connection(backline.app.db) as conn:  # type: ignore[arg-type]
            stored = {e.event_id: e for e in await session_events(conn, session.id)}
        if reply in stored:
            break
        await asyncio.sleep(0.1)
    assert stored[reply].content["body"] == "Refund it from the payments page."
    assert any(e.room_id == dm and e.type == "m.room.message" for e in stored.values())
