"""Routing strategies against a real Synapse: who is invited, in what order, and what follows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from mautrix.types import RoomID

from appservice.db import connection
from appservice.db.decisions import Decision, session_decisions
from tests.integration.conftest import (
    BacklineFactory,
    RunningBackline,
    join_roster,
    unique_group_id,
)
from tests.integration.matrix_user import MatrixUser, MatrixUserFactory
from tests.integration.test_session_flow import ask, offers_of, session_of

pytestmark = pytest.mark.integration


@dataclass
class Desk:
    """A running Backline with one group whose experts have joined its roster room."""

    backline: RunningBackline
    group: str
    experts: list[MatrixUser]


async def open_desk(
    start_backline: BacklineFactory,
    matrix_user: MatrixUserFactory,
    name: str,
    routing: dict[str, Any],
    *,
    experts: int = 3,
    profiles: dict[int, dict[str, Any]] | None = None,
) -> Desk:
    """Start a group `name` with this routing and `experts` members, in that member order.

    `profiles` holds expert settings by member position, since user IDs are only known once
    the users exist.
    """
    users = list(await asyncio.gather(*(matrix_user(f"{name}{i}") for i in range(experts))))
    group = unique_group_id(name)
    settings = {users[i].user_id: profile for i, profile in (profiles or {}).items()}
    backline = await start_backline(
        [{"id": group, "members": [u.user_id for u in users], "routing": routing}],
        experts=settings,
    )
    await asyncio.gather(*(join_roster(user, backline, group) for user in users))
    return Desk(backline, group, users)


async def request(desk: Desk, agent: MatrixUser, question: str) -> RoomID:
    """Ask the desk's group a question; the session room, once the agent is invited to it."""
    group_user = desk.backline.group_user(desk.group)
    await ask(agent, desk.backline, desk.group, question)
    invite = await agent.wait_for_invite(predicate=lambda i: i.sender == group_user)
    return invite.room_id


async def wait_for_offers(
    backline: RunningBackline, room: RoomID, expected: dict[str, str]
) -> dict[str, str]:
    """The session's offer states once they equal `expected` (or after 10 s, as they are)."""
    session = await session_of(backline, room)
    for _ in range(100):
        states = await offers_of(backline, session.id)
        if states == expected:
            break
        await asyncio.sleep(0.1)
    return states


async def wait_for_session_state(backline: RunningBackline, room: RoomID, state: str) -> str:
    """The session's state once it is `state` (or after 10 s, as it is)."""
    for _ in range(100):
        current = (await session_of(backline, room)).state
        if current == state:
            break
        await asyncio.sleep(0.1)
    return current


async def routing_decision(backline: RunningBackline, room: RoomID) -> Decision:
    """The session's first decision on whom to offer it."""
    session = await session_of(backline, room)
    async with connection(backline.db) as conn:
        decisions = await session_decisions(conn, session.id)
    return next(d for d in decisions if "offered" in d.details)


def invited_to(expert: MatrixUser, room: RoomID) -> bool:
    return any(invite.room_id == room for invite in expert.invites_seen())


async def test_first_n_invites_offer_count_experts_and_tops_up_after_a_decline(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    desk = await open_desk(
        start_backline, matrix_user, "firstn", {"strategy": "first_n", "offer_count": 2}
    )
    first, second, third = desk.experts
    agent = await matrix_user("agent")
    room = await request(desk, agent, "Which plan includes invoicing?")
    await asyncio.gather(
        first.wait_for_invite(predicate=lambda i: i.room_id == room),
        second.wait_for_invite(predicate=lambda i: i.room_id == room),
    )
    expected = {first.user_id: "invited", second.user_id: "invited"}
    assert await wait_for_offers(desk.backline, room, expected) == expected
    assert not invited_to(third, room)

    await second.reject_invite(room)

    topped_up = await third.wait_for_invite(predicate=lambda i: i.room_id == room)
    assert topped_up.sender == desk.backline.group_user(desk.group)
    expected = {first.user_id: "invited", second.user_id: "declined", third.user_id: "invited"}
    assert await wait_for_offers(desk.backline, room, expected) == expected


async def test_serial_invites_one_expert_at_a_time_and_a_decline_moves_on_at_once(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    desk = await open_desk(start_backline, matrix_user, "serial", {"strategy": "serial"})
    first, second, third = desk.experts
    agent = await matrix_user("agent")
    room = await request(desk, agent, "Is this contract clause enforceable?")
    await first.wait_for_invite(predicate=lambda i: i.room_id == room)
    expected = {first.user_id: "invited"}
    assert await wait_for_offers(desk.backline, room, expected) == expected
    assert not invited_to(second, room)

    await first.reject_invite(room)

    # The offer would time out only after a minute: the next invite comes from the decline.
    await second.wait_for_invite(timeout=10, predicate=lambda i: i.room_id == room)
    expected = {first.user_id: "declined", second.user_id: "invited"}
    assert await wait_for_offers(desk.backline, room, expected) == expected
    assert not invited_to(third, room)


async def test_serial_withdraws_an_unanswered_offer_after_offer_timeout_and_asks_the_next(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    desk = await open_desk(
        start_backline,
        matrix_user,
        "patient",
        {"strategy": "serial", "offer_timeout": "2s"},
        experts=2,
    )
    first, second = desk.experts
    agent = await matrix_user("agent")
    room = await request(desk, agent, "Can someone look at ticket 7?")
    await first.wait_for_invite(predicate=lambda i: i.room_id == room)

    withdrawn = await first.wait_for_membership(room, first.user_id, "leave", timeout=10)

    assert withdrawn.sender == desk.backline.group_user(desk.group)
    assert withdrawn.reason == "Nobody answered this offer within 2 s, so it went to someone else."
    await second.wait_for_invite(predicate=lambda i: i.room_id == room)
    expected = {first.user_id: "timed_out", second.user_id: "invited"}
    assert await wait_for_offers(desk.backline, room, expected) == expected


async def test_round_robin_starts_the_next_request_after_whoever_was_offered_last(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    desk = await open_desk(start_backline, matrix_user, "rotate", {"strategy": "round_robin"})
    first, second, _ = desk.experts
    early, late = await asyncio.gather(matrix_user("early"), matrix_user("late"))
    first_room = await request(desk, early, "First request of the day")
    await first.wait_for_invite(predicate=lambda i: i.room_id == first_room)

    second_room = await request(desk, late, "Second request of the day")

    await second.wait_for_invite(predicate=lambda i: i.room_id == second_room)
    expected = {second.user_id: "invited"}
    assert await wait_for_offers(desk.backline, second_room, expected) == expected
    assert not invited_to(first, second_room)


async def test_least_busy_offers_the_expert_with_fewer_claimed_sessions_first(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    desk = await open_desk(
        start_backline, matrix_user, "calm", {"strategy": "least_busy"}, experts=2
    )
    busier, idler = desk.experts
    early, late = await asyncio.gather(matrix_user("early"), matrix_user("late"))
    first_room = await request(desk, early, "Taken by the first expert")
    await busier.wait_for_invite(predicate=lambda i: i.room_id == first_room)
    await busier.join(first_room)
    assert await wait_for_session_state(desk.backline, first_room, "claimed") == "claimed"

    second_room = await request(desk, late, "Who has time for this?")

    await idler.wait_for_invite(predicate=lambda i: i.room_id == second_room)
    expected = {idler.user_id: "invited"}
    assert await wait_for_offers(desk.backline, second_room, expected) == expected
    assert not invited_to(busier, second_room)


async def test_needed_two_claims_on_the_second_join_and_withdraws_the_third_offer(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    desk = await open_desk(
        start_backline, matrix_user, "pair", {"strategy": "broadcast", "needed": 2}
    )
    first, second, third = desk.experts
    agent = await matrix_user("agent")
    room = await request(desk, agent, "Four eyes needed on this refund")
    await agent.join(room)
    await asyncio.gather(
        *(expert.wait_for_invite(predicate=lambda i: i.room_id == room) for expert in desk.experts)
    )

    await first.join(room)

    _, progress = await agent.wait_for_message(room, predicate=lambda b, _: "2 needed" in b)
    assert progress == f"{first.user_id} joined (1 of 2 needed)."
    session = await session_of(desk.backline, room)
    assert session.state == "offering"
    assert await offers_of(desk.backline, session.id) == {
        first.user_id: "accepted",
        second.user_id: "invited",
        third.user_id: "invited",
    }

    await second.join(room)

    withdrawn = await third.wait_for_membership(room, third.user_id, "leave")
    assert withdrawn.sender == desk.backline.group_user(desk.group)
    assert withdrawn.reason == f"{first.user_id} and {second.user_id} took this session"
    _, told = await agent.wait_for_message(room, predicate=lambda body, _: "will help" in body)
    assert told == f"{first.user_id} and {second.user_id} joined and will help you."
    assert (await session_of(desk.backline, room)).state == "claimed"
    expected = {first.user_id: "accepted", second.user_id: "accepted", third.user_id: "withdrawn"}
    assert await wait_for_offers(desk.backline, room, expected) == expected


async def test_an_expert_at_max_sessions_is_skipped_as_at_capacity(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    desk = await open_desk(
        start_backline,
        matrix_user,
        "full",
        {"strategy": "broadcast"},
        experts=2,
        profiles={0: {"max_sessions": 1}},
    )
    full, free = desk.experts
    early, late = await asyncio.gather(matrix_user("early"), matrix_user("late"))
    first_room = await request(desk, early, "Taken by the expert with one seat")
    await full.wait_for_invite(predicate=lambda i: i.room_id == first_room)
    await full.join(first_room)
    assert await wait_for_session_state(desk.backline, first_room, "claimed") == "claimed"

    second_room = await request(desk, late, "Anyone with a free seat?")

    await free.wait_for_invite(predicate=lambda i: i.room_id == second_room)
    expected = {free.user_id: "invited"}
    assert await wait_for_offers(desk.backline, second_room, expected) == expected
    assert not invited_to(full, second_room)
    decision = await routing_decision(desk.backline, second_room)
    assert decision.details["offered"] == [free.user_id]
    assert decision.details["skipped"] == {full.user_id: "at capacity (1 of 1 sessions)"}
