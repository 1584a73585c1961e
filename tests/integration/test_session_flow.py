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
    dm = await agent.open_dm(group_user)
    await agent.send_text(dm, text)
    return dm


async def ask_while_busy(
    agent: MatrixUser, expert: MatrixUser, backline: RunningBackline, group_id: str, text: str
) -> tuple[RoomID, RoomID, str]:
    """The group's only expert is in a meeting when the agent asks: the request waits.

    Returns the DM, the session room and what the agent was told.
    """
    await join_roster(expert, backline, group_id)
    await expert.set_presence("online", "in a meeting")
    dm = await ask(agent, backline, group_id, text)
    _, told = await agent.wait_for_message(dm, predicate=lambda body, _: "available" in body)
    room = (await agent.wait_for_invite()).room_id
    assert (await session_of(backline, room)).state == "waiting"
    return dm, room, told


async def session_of(backline: RunningBackline, room_id: RoomID) -> sessions_db.Session:
    async with connection(backline.db) as conn:
        session = await sessions_db.session_by_room(conn, room_id)
    assert session is not None, f"no session for {room_id}"
    return session


async def offers_of(backline: RunningBackline, session_id: int) -> dict[str, str]:
    async with connection(backline.db) as conn:
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
    assert (
        alice_offer.reason is not None and "How do I refund a double charge?" in alice_offer.reason
    )
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
        async with connection(backline.db) as conn:
            stored = {e.event_id: e for e in await session_events(conn, session.id)}
        if reply in stored:
            break
        await asyncio.sleep(0.1)
    assert stored[reply].content["body"] == "Refund it from the payments page."
    assert any(e.room_id == dm and e.type == "m.room.message" for e in stored.values())


async def test_offline_and_busy_experts_are_not_invited(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, online, offline, busy = await asyncio.gather(
        matrix_user("agent"), matrix_user("online"), matrix_user("offline"), matrix_user("busy")
    )
    group = unique_group_id("tech")
    members = [online.user_id, offline.user_id, busy.user_id]
    backline = await start_backline([{"id": group, "members": members}])
    for expert in (online, offline, busy):
        await join_roster(expert, backline, group)
    await offline.set_presence("offline")
    await busy.set_presence("online", "Busy until 3pm, do not disturb")

    await ask(agent, backline, group, "The VPN drops every hour")
    room = (await agent.wait_for_invite()).room_id
    await online.wait_for_invite(predicate=lambda i: i.room_id == room)

    session = await session_of(backline, room)
    assert await offers_of(backline, session.id) == {online.user_id: "invited"}
    assert not [i for i in offline.invites_seen() if i.room_id == room]
    assert not [i for i in busy.invites_seen() if i.room_id == room]
    async with connection(backline.db) as conn:
        decision = (await session_decisions(conn, session.id))[0]
    assert decision.details["skipped"] == {
        offline.user_id: "presence is offline",
        busy.user_id: "status says 'busy'",
    }


async def test_two_simultaneous_joins_leave_exactly_one_claimer(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, first, second = await asyncio.gather(
        matrix_user("agent"), matrix_user("first"), matrix_user("second")
    )
    group = unique_group_id("race")
    backline = await start_backline([{"id": group, "members": [first.user_id, second.user_id]}])
    await asyncio.gather(join_roster(first, backline, group), join_roster(second, backline, group))
    await ask(agent, backline, group, "Who takes this one?")
    room = (await agent.wait_for_invite()).room_id
    await asyncio.gather(
        first.wait_for_invite(predicate=lambda i: i.room_id == room),
        second.wait_for_invite(predicate=lambda i: i.room_id == room),
    )

    await asyncio.gather(first.join(room), second.join(room), return_exceptions=True)

    session = await session_of(backline, room)
    for _ in range(50):
        states = await offers_of(backline, session.id)
        if "invited" not in states.values():
            break
        await asyncio.sleep(0.1)
    assert sorted(states.values()) == ["accepted", "withdrawn"]
    claimer = next(user for user, state in states.items() if state == "accepted")
    loser = second if claimer == first.user_id else first
    kicked = await loser.wait_for_membership(room, loser.user_id, "leave")
    assert kicked.reason == f"{claimer} took this session"
    assert (await session_of(backline, room)).state == "claimed"


async def test_outsider_dm_is_refused_with_a_reason(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, outsider, expert = await asyncio.gather(
        matrix_user("agent"), matrix_user("outsider"), matrix_user("expert")
    )
    group = unique_group_id("vip")
    backline = await start_backline(
        [{"id": group, "displayname": "VIP desk", "members": [expert.user_id]}],
        permissions={"*": "none", agent.user_id: "agent"},
    )
    group_user = backline.group_user(group)

    dm = await outsider.create_dm(group_user)

    refusal = await outsider.wait_for_membership(dm, group_user, "leave")
    assert (
        refusal.reason == "You are not allowed to ask VIP desk. Ask your administrator for access."
    )
    await agent.open_dm(group_user)  # the group user joins: the agent may ask


async def test_close_by_the_agent_ends_the_session_and_keeps_the_room(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, expert = await asyncio.gather(matrix_user("agent"), matrix_user("expert"))
    group = unique_group_id("close")
    backline = await start_backline([{"id": group, "members": [expert.user_id]}])
    await join_roster(expert, backline, group)
    await ask(agent, backline, group, "Quick one about invoices")
    room = (await agent.wait_for_invite()).room_id
    await expert.wait_for_invite(predicate=lambda i: i.room_id == room)
    await agent.join(room)
    await expert.join(room)
    await agent.wait_for_message(room, predicate=lambda body, _: "will help you" in body)

    await agent.send_text(room, "!close")

    _, notice = await agent.wait_for_message(room, predicate=lambda body, _: "closed" in body)
    assert notice.startswith(f"{agent.user_id} closed this session.")
    session = await session_of(backline, room)
    assert session.state == "closed"
    assert session.closed_by == agent.user_id
    assert await agent.membership_of(room) == "join"


async def test_a_second_question_while_a_session_is_open_points_to_it(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, expert = await asyncio.gather(matrix_user("agent"), matrix_user("expert"))
    group = unique_group_id("again")
    backline = await start_backline([{"id": group, "members": [expert.user_id]}])
    await join_roster(expert, backline, group)
    dm = await ask(agent, backline, group, "First question")
    room = (await agent.wait_for_invite()).room_id

    await agent.send_text(dm, "Second question")

    _, answer = await agent.wait_for_message(dm, predicate=lambda body, _: "still open" in body)
    assert "is still open in #" in answer
    session = await session_of(backline, room)
    assert session.question == "First question"
    assert not [i for i in agent.invites_seen() if i.room_id != room]


async def test_group_users_carry_their_configured_display_names(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent = await matrix_user("agent")
    group = unique_group_id("names")

    backline = await start_backline([{"id": group, "displayname": "Refund desk", "members": []}])

    assert await agent.client.get_displayname(backline.group_user(group)) == "Refund desk"
    assert await agent.client.get_displayname(backline.config.bot_mxid) == "Backline"
