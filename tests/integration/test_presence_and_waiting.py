"""Presence reaching Backline, requests that wait, declines, !groups, and downtime."""

from __future__ import annotations

import asyncio

import pytest

from appservice.db import connection
from appservice.db.presence import presence_of
from tests.integration.conftest import (
    BacklineFactory,
    RunningBackline,
    join_roster,
    unique_group_id,
)
from tests.integration.matrix_user import MatrixUserFactory
from tests.integration.test_session_flow import ask, ask_while_busy, offers_of, session_of

pytestmark = pytest.mark.integration


async def stored_status(backline: RunningBackline, user_id: str) -> str | None:
    async with connection(backline.db) as conn:
        known = await presence_of(conn, [user_id])
    return known[user_id].status_msg if user_id in known else None


async def test_presence_changes_arrive_as_ephemeral_events(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    expert = await matrix_user("expert")
    group = unique_group_id("presence")
    backline = await start_backline([{"id": group, "members": [expert.user_id]}])
    await join_roster(expert, backline, group)

    await expert.set_presence("online", "Back from lunch")

    for _ in range(100):
        if await stored_status(backline, expert.user_id) == "Back from lunch":
            break
        await asyncio.sleep(0.1)
    assert await stored_status(backline, expert.user_id) == "Back from lunch"


async def test_a_request_waits_until_an_expert_becomes_available(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, expert = await asyncio.gather(matrix_user("agent"), matrix_user("expert"))
    group = unique_group_id("later")
    backline = await start_backline(
        [{"id": group, "displayname": "Night shift", "members": [expert.user_id]}]
    )
    _, room, told = await ask_while_busy(agent, expert, backline, group, "Anyone around?")
    assert told.startswith("No expert of Night shift is available right now.")

    await expert.set_presence("online", "free now")

    offer = await expert.wait_for_invite(timeout=15, predicate=lambda i: i.room_id == room)
    assert offer.reason is not None and "Anyone around?" in offer.reason
    assert (await session_of(backline, room)).state == "offering"


async def test_when_the_only_expert_declines_the_agent_is_told_nobody_could_take_it(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, expert = await asyncio.gather(matrix_user("agent"), matrix_user("expert"))
    group = unique_group_id("decline")
    backline = await start_backline([{"id": group, "members": [expert.user_id]}])
    await join_roster(expert, backline, group)
    dm = await ask(agent, backline, group, "Can you check order 42?")
    room = (await agent.wait_for_invite()).room_id
    await expert.wait_for_invite(predicate=lambda i: i.room_id == room)

    await expert.reject_invite(room)

    # Nobody is left who has not been asked: waiting for request_timeout would change nothing.
    _, told = await agent.wait_for_message(dm, predicate=lambda body, _: "nobody of" in body)
    assert "has declined or not answered" in told
    session = await session_of(backline, room)
    assert session.state == "expired"
    assert await offers_of(backline, session.id) == {expert.user_id: "declined"}


async def test_groups_command_lists_what_the_agent_may_ask_with_availability(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, expert = await asyncio.gather(matrix_user("agent"), matrix_user("expert"))
    open_group, closed_group = unique_group_id("open"), unique_group_id("closed")
    backline = await start_backline(
        [
            {"id": open_group, "displayname": "Open desk", "members": [expert.user_id]},
            {"id": closed_group, "displayname": "Closed desk", "agents": ["@boss:localhost"]},
        ]
    )
    await join_roster(expert, backline, open_group)
    for _ in range(100):
        async with connection(backline.db) as conn:
            if await presence_of(conn, [expert.user_id]):
                break
        await asyncio.sleep(0.1)
    bot = backline.app.config.bot_mxid
    dm = await agent.open_dm(bot)

    await agent.send_text(dm, "!groups")

    _, answer = await agent.wait_for_message(dm, predicate=lambda b, _: b.startswith("Groups"))
    assert answer == (
        f"Groups you may ask:\n• Open desk ({backline.group_user(open_group)}): 1 available now"
    )


async def test_messages_sent_while_backline_is_down_are_delivered_after_restart(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, expert = await asyncio.gather(matrix_user("agent"), matrix_user("expert"))
    group = unique_group_id("restart")
    groups = [{"id": group, "members": [expert.user_id]}]
    backline = await start_backline(groups)
    await join_roster(expert, backline, group)
    group_user = backline.group_user(group)
    dm = await agent.open_dm(group_user)
    await backline.app.stop()

    await agent.send_text(dm, "Sent while Backline was down")
    await asyncio.sleep(1)
    await start_backline(groups)

    invite = await agent.wait_for_invite(timeout=30, predicate=lambda i: i.sender == group_user)
    assert invite.room_name is not None and "Sent while Backline was down" in invite.room_name
    await expert.wait_for_invite(predicate=lambda i: i.room_id == invite.room_id)
