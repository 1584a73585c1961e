"""Routing steps against a real Synapse: preferences, named experts, overflow and giving up.

Also what shapes the pool of each step (working hours, roster membership) and the agent's
commands around a request (`!ask` in the bot's DM, `!cancel`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from mautrix.types import RoomID, UserID

from appservice.db import connection
from appservice.db import groups as groups_db
from appservice.db.decisions import Decision, session_decisions
from appservice.db.presence import presence_of
from tests.integration.conftest import (
    BacklineFactory,
    RunningBackline,
    join_roster,
    unique_group_id,
)
from tests.integration.matrix_user import MatrixUser, MatrixUserFactory
from tests.integration.test_bot_search import open_bot_dm
from tests.integration.test_session_flow import ask, offers_of, session_of
from tests.integration.test_strategies import invited_to, routing_decision, wait_for_offers

pytestmark = pytest.mark.integration

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    what: str,
    timeout: float = 10,  # noqa: ASYNC109 - the error says what was awaited
) -> T:
    """The first non-None answer of `check`, asked every 0.1 s; the store has no events."""
    for _ in range(int(timeout * 10)):
        if (found := await check()) is not None:
            return found
        await asyncio.sleep(0.1)
    raise TimeoutError(f"waited {timeout} s for {what}")


async def presence_stored(backline: RunningBackline, expert: MatrixUser, presence: str) -> None:
    """Wait until Backline has stored this presence of the expert."""

    async def check() -> bool | None:
        async with connection(backline.db) as conn:
            known = await presence_of(conn, [expert.user_id])
        stored = known.get(expert.user_id)
        return True if stored is not None and stored.presence == presence else None

    await eventually(check, f"{expert.user_id} to be stored as {presence}")


async def go_offline(backline: RunningBackline, expert: MatrixUser) -> None:
    """The expert goes offline, and Backline knows it."""
    await expert.set_presence("offline")
    await presence_stored(backline, expert, "offline")


async def decisions_of(backline: RunningBackline, room: RoomID) -> list[Decision]:
    session = await session_of(backline, room)
    async with connection(backline.db) as conn:
        return await session_decisions(conn, session.id)


async def session_room(agent: MatrixUser, backline: RunningBackline, group_id: str) -> RoomID:
    """Join the session room Backline invites the agent to, so its notices can be read."""
    group_user = backline.group_user(group_id)
    room = (await agent.wait_for_invite(predicate=lambda i: i.sender == group_user)).room_id
    await agent.join(room)
    return room


def span_around(now: datetime, start_in: timedelta, length: timedelta) -> str:
    """Working hours on every day, from `now + start_in` for `length` (UTC)."""
    start, end = now + start_in, now + start_in + length
    return f"Mon-Sun {start:%H:%M}-{end:%H:%M}"


# Preferences


async def test_matching_experts_are_asked_first_and_everyone_after_relax_after(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, refunder, other = await asyncio.gather(
        matrix_user("agent"), matrix_user("refunder"), matrix_user("other")
    )
    group = unique_group_id("refunds")
    backline = await start_backline(
        [
            {
                "id": group,
                "displayname": "Refund desk",
                "members": [refunder.user_id, other.user_id],
                "routing": {"relax_after": "2s"},
            }
        ],
        experts={refunder.user_id: {"skills": ["refunds"]}},
    )
    await asyncio.gather(
        join_roster(refunder, backline, group), join_roster(other, backline, group)
    )

    await ask(agent, backline, group, "The customer wants their money back skill:refunds")
    room = await session_room(agent, backline, group)
    await refunder.wait_for_invite(predicate=lambda i: i.room_id == room)

    first = await routing_decision(backline, room)
    assert first.details["offered"] == [refunder.user_id]
    assert first.details["skipped"] == {other.user_id: "preference mismatch (no skill:refunds)"}
    assert not invited_to(other, room)
    _, step = await agent.wait_for_message(room, predicate=lambda body, _: "now asking" in body)
    assert step == "Nobody took the request within 2 s; now asking all experts of Refund desk."
    await other.wait_for_invite(predicate=lambda i: i.room_id == room)
    expected = {refunder.user_id: "invited", other.user_id: "invited"}
    assert await wait_for_offers(backline, room, expected) == expected


async def test_a_preference_nobody_has_is_passed_over_at_once(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, expert = await asyncio.gather(matrix_user("agent"), matrix_user("expert"))
    group = unique_group_id("payroll")
    backline = await start_backline(
        [
            {
                "id": group,
                "displayname": "Payroll desk",
                "members": [expert.user_id],
                "routing": {"relax_after": "10m"},
            }
        ],
        experts={expert.user_id: {"skills": ["pensions"]}},
    )
    await join_roster(expert, backline, group)

    dm = await ask(agent, backline, group, "Why is the bonus taxed twice? skill:payroll")
    room = await session_room(agent, backline, group)

    await expert.wait_for_invite(predicate=lambda i: i.room_id == room)
    _, step = await agent.wait_for_message(room, predicate=lambda body, _: "now asking" in body)
    assert step == (
        "No expert of Payroll desk has skill:payroll; now asking all experts of Payroll desk."
    )
    _, told = await agent.wait_for_message(dm, predicate=lambda body, _: "I asked" in body)
    assert told.startswith("I asked 1 expert of Payroll desk. Your session room: #")
    stepped = [d for d in await decisions_of(backline, room) if d.summary.startswith("step 2:")]
    assert [d.details for d in stepped] == [
        {"step": 1, "why": "no expert of Payroll desk has skill:payroll"}
    ]


# Overflow and giving up


async def test_a_request_nobody_takes_in_time_goes_to_the_overflow_group(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, first_line, second_line = await asyncio.gather(
        matrix_user("agent"), matrix_user("firstline"), matrix_user("secondline")
    )
    group, overflow = unique_group_id("frontdesk"), unique_group_id("escalations")
    backline = await start_backline(
        [
            {
                "id": group,
                "displayname": "Front desk",
                "members": [first_line.user_id],
                "routing": {"request_timeout": "2s", "overflow": overflow},
            },
            {"id": overflow, "displayname": "Escalations", "members": [second_line.user_id]},
        ]
    )
    await asyncio.gather(
        join_roster(first_line, backline, group), join_roster(second_line, backline, overflow)
    )
    await go_offline(backline, first_line)

    await ask(agent, backline, group, "The contract renewal failed")
    room = await session_room(agent, backline, group)

    _, step = await agent.wait_for_message(room, predicate=lambda body, _: "now asking" in body)
    assert step == "Nobody took the request within 2 s; now asking all experts of Escalations."
    offer = await second_line.wait_for_invite(predicate=lambda i: i.room_id == room)
    assert offer.sender == backline.group_user(group)
    assert offer.reason is not None and "The contract renewal failed" in offer.reason
    assert not invited_to(first_line, room)
    expected = {second_line.user_id: "invited"}
    assert await wait_for_offers(backline, room, expected) == expected
    session = await session_of(backline, room)
    assert (session.state, session.routing_group) == ("offering", overflow)


async def test_without_overflow_the_agent_is_told_nobody_could_take_it(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, expert = await asyncio.gather(matrix_user("agent"), matrix_user("expert"))
    group = unique_group_id("lonely")
    backline = await start_backline(
        [
            {
                "id": group,
                "displayname": "Lonely desk",
                "members": [expert.user_id],
                "routing": {"request_timeout": "2s"},
            }
        ]
    )
    await join_roster(expert, backline, group)
    await go_offline(backline, expert)

    dm = await ask(agent, backline, group, "Is anyone there?")
    room = (await agent.wait_for_invite()).room_id

    _, told = await agent.wait_for_message(dm, predicate=lambda body, _: "Sorry" in body)
    assert told == (
        "Sorry: nobody of Lonely desk could take your request (nobody took the request within"
        " 2 s). It is closed; ask again later or try another group."
    )
    session = await session_of(backline, room)
    assert session.state == "expired"
    assert await offers_of(backline, session.id) == {}
    assert not invited_to(expert, room)


# Named experts


async def named_desk(
    start_backline: BacklineFactory,
    matrix_user: MatrixUserFactory,
    routing: dict[str, object],
) -> tuple[RunningBackline, str, MatrixUser, MatrixUser, MatrixUser]:
    """A group of two online experts; returns Backline, the group, the agent, named, other."""
    agent, named, other = await asyncio.gather(
        matrix_user("agent"), matrix_user("named"), matrix_user("other")
    )
    group = unique_group_id("named")
    backline = await start_backline(
        [
            {
                "id": group,
                "displayname": "Tax desk",
                "members": [named.user_id, other.user_id],
                "routing": routing,
            }
        ]
    )
    await asyncio.gather(join_roster(named, backline, group), join_roster(other, backline, group))
    return backline, group, agent, named, other


async def test_a_named_expert_is_asked_alone_then_the_group_after_offer_timeout(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    backline, group, agent, named, other = await named_desk(
        start_backline, matrix_user, {"named_fallback": True, "offer_timeout": "2s"}
    )

    await ask(agent, backline, group, f"Can you redo the VAT return? {named.user_id} knows it")
    room = await session_room(agent, backline, group)
    await named.wait_for_invite(predicate=lambda i: i.room_id == room)

    first = await routing_decision(backline, room)
    assert first.details["offered"] == [named.user_id]
    assert first.details["skipped"] == {other.user_id: "not the expert named in the request"}
    assert (await session_of(backline, room)).question == "Can you redo the VAT return? knows it"
    _, step = await agent.wait_for_message(room, predicate=lambda body, _: "now asking" in body)
    assert step == "Nobody took the request within 2 s; now asking all experts of Tax desk."
    await other.wait_for_invite(predicate=lambda i: i.room_id == room)


async def test_without_named_fallback_the_others_are_never_asked(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    backline, group, agent, named, other = await named_desk(
        start_backline, matrix_user, {"named_fallback": False, "offer_timeout": "2s"}
    )
    dm = await ask(agent, backline, group, f"Only {named.user_id} can answer this")
    room = (await agent.wait_for_invite()).room_id
    await named.wait_for_invite(predicate=lambda i: i.room_id == room)

    # Declining ends the only step at once: the group is not a next step to fall back to.
    await named.reject_invite(room)

    _, told = await agent.wait_for_message(dm, predicate=lambda body, _: "Sorry" in body)
    assert "everyone of Tax desk who could be asked has declined or not answered" in told
    session = await session_of(backline, room)
    assert session.state == "expired"
    assert await offers_of(backline, session.id) == {named.user_id: "declined"}
    assert not invited_to(other, room)
    decisions = await decisions_of(backline, room)
    assert [d.details["offered"] for d in decisions if "offered" in d.details] == [
        [named.user_id],
        [],
    ]
    assert decisions[0].details["skipped"] == {
        other.user_id: "not the expert named in the request"
    }


# Who belongs to a step's pool


async def test_an_expert_outside_their_working_hours_is_not_invited(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, working, resting = await asyncio.gather(
        matrix_user("agent"), matrix_user("working"), matrix_user("resting")
    )
    now = datetime.now(UTC)
    later = span_around(now, timedelta(hours=2), timedelta(hours=1))
    group = unique_group_id("hours")
    backline = await start_backline(
        [{"id": group, "members": [working.user_id, resting.user_id]}],
        experts={
            working.user_id: {
                "hours": [span_around(now, -timedelta(hours=1), timedelta(hours=2))]
            },
            resting.user_id: {"hours": [later]},
        },
    )
    await asyncio.gather(
        join_roster(working, backline, group), join_roster(resting, backline, group)
    )

    await ask(agent, backline, group, "Who is on duty?")
    room = (await agent.wait_for_invite()).room_id

    await working.wait_for_invite(predicate=lambda i: i.room_id == room)
    expected = {working.user_id: "invited"}
    assert await wait_for_offers(backline, room, expected) == expected
    assert not invited_to(resting, room)
    first = await routing_decision(backline, room)
    assert first.details["skipped"] == {resting.user_id: f"off hours (works {later}, UTC)"}


async def test_whoever_joins_the_roster_room_gets_offers_until_they_leave_it(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, configured, newcomer = await asyncio.gather(
        matrix_user("agent"), matrix_user("configured"), matrix_user("newcomer")
    )
    group = unique_group_id("roster")
    backline = await start_backline([{"id": group, "members": [configured.user_id]}])
    await join_roster(configured, backline, group)
    async with connection(backline.db) as conn:
        roster = RoomID(await groups_db.roster_room(conn, group) or "")
    group_intent = backline.app.matrix.group_intent(group)

    await group_intent.invite_user(roster, UserID(newcomer.user_id))
    await join_roster(newcomer, backline, group)
    await presence_stored(backline, newcomer, "online")
    dm = await ask(agent, backline, group, "First question")
    first_room = (await agent.wait_for_invite()).room_id
    await newcomer.wait_for_invite(predicate=lambda i: i.room_id == first_room)
    await agent.send_text(dm, "!cancel")
    await agent.wait_for_message(dm, predicate=lambda body, _: "cancelled" in body)

    await newcomer.client.leave_room(roster)
    await eventually(lambda: roster_has_left(backline, group, newcomer), "the roster leave")
    await agent.send_text(dm, "Second question")
    second_room = (await agent.wait_for_invite()).room_id
    await configured.wait_for_invite(predicate=lambda i: i.room_id == second_room)

    expected = {configured.user_id: "invited"}
    assert await wait_for_offers(backline, second_room, expected) == expected
    assert not invited_to(newcomer, second_room)


async def roster_has_left(
    backline: RunningBackline, group_id: str, user: MatrixUser
) -> bool | None:
    async with connection(backline.db) as conn:
        memberships = dict(await groups_db.roster_memberships(conn, group_id))
    return True if memberships.get(user.user_id) == "leave" else None


# The agent's commands


async def test_ask_in_the_bot_dm_opens_a_session_and_the_bot_answers_there(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, expert = await asyncio.gather(matrix_user("agent"), matrix_user("expert"))
    group = unique_group_id("askbot")
    backline = await start_backline(
        [{"id": group, "displayname": "Shipping desk", "members": [expert.user_id]}]
    )
    await join_roster(expert, backline, group)
    bot = backline.config.bot_mxid
    bot_dm, _ = await open_bot_dm(agent, backline)

    await agent.send_text(bot_dm, f"!ask {group} Where is parcel 77? lang:en")

    invite = await agent.wait_for_invite(
        predicate=lambda i: i.sender == backline.group_user(group)
    )
    assert invite.room_name == "Shipping desk: Where is parcel 77?"
    await expert.wait_for_invite(predicate=lambda i: i.room_id == invite.room_id)
    sender, told = await agent.wait_for_message(bot_dm, predicate=lambda b, _: "asked" in b)
    assert sender == bot
    assert told.startswith("I asked 1 expert of Shipping desk. Your session room: #")
    session = await session_of(backline, invite.room_id)
    assert (session.question, session.dm_room_id, session.dm_user) == (
        "Where is parcel 77?",
        bot_dm,
        bot,
    )
    assert session.preferences["languages"] == ["en"]


async def test_ask_for_an_unknown_group_gets_a_plain_answer(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent = await matrix_user("agent")
    backline = await start_backline([{"id": unique_group_id("known"), "members": []}])
    bot_dm, _ = await open_bot_dm(agent, backline)

    await agent.send_text(bot_dm, "!ask nosuchdesk Where is parcel 77?")

    sender, told = await agent.wait_for_message(bot_dm, predicate=lambda b, _: "group" in b)
    assert sender == backline.config.bot_mxid
    assert told == "There is no group 'nosuchdesk' you may ask. Send !groups to see them."
    assert not agent.invites_seen()


async def test_cancel_before_anyone_accepts_withdraws_the_offers(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, alice, bob = await asyncio.gather(
        matrix_user("agent"), matrix_user("alice"), matrix_user("bob")
    )
    group = unique_group_id("cancel")
    backline = await start_backline([{"id": group, "members": [alice.user_id, bob.user_id]}])
    await asyncio.gather(join_roster(alice, backline, group), join_roster(bob, backline, group))
    dm = await ask(agent, backline, group, "Never mind soon")
    room = (await agent.wait_for_invite()).room_id
    await asyncio.gather(
        alice.wait_for_invite(predicate=lambda i: i.room_id == room),
        bob.wait_for_invite(predicate=lambda i: i.room_id == room),
    )

    await agent.send_text(dm, "!cancel")

    _, told = await agent.wait_for_message(dm, predicate=lambda body, _: "cancelled" in body)
    assert told == f"{agent.user_id} cancelled this request before anyone took it."
    for expert in (alice, bob):
        withdrawn = await expert.wait_for_membership(room, expert.user_id, "leave")
        assert withdrawn.reason == f"{agent.user_id} closed the request before anyone took it"
    session = await session_of(backline, room)
    assert session.state == "cancelled"
    assert await offers_of(backline, session.id) == {
        alice.user_id: "withdrawn",
        bob.user_id: "withdrawn",
    }


async def test_cancel_after_an_expert_took_the_session_points_to_close(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, expert = await asyncio.gather(matrix_user("agent"), matrix_user("expert"))
    group = unique_group_id("taken")
    backline = await start_backline([{"id": group, "members": [expert.user_id]}])
    await join_roster(expert, backline, group)
    dm = await ask(agent, backline, group, "Please check order 5")
    room = (await agent.wait_for_invite()).room_id
    await expert.wait_for_invite(predicate=lambda i: i.room_id == room)
    await expert.join(room)
    await agent.wait_for_message(dm, predicate=lambda body, _: "will help you" in body)

    await agent.send_text(dm, "!cancel")

    _, told = await agent.wait_for_message(dm, predicate=lambda b, _: "already taken" in b)
    assert told == "An expert has already taken this session; send !close in its room to end it."
    assert (await session_of(backline, room)).state == "claimed"
