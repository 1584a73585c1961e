"""`!search` in the directory bot's DM: compliance officers get hits, others a refusal."""

from __future__ import annotations

import asyncio

import pytest
from mautrix.types import RoomID

from appservice.archive.access import read_access_log
from appservice.db import connection, transaction
from appservice.db.events import store_events
from appservice.db.sessions import create_session, set_room
from tests.integration.conftest import BacklineFactory, RunningBackline, unique_group_id
from tests.integration.matrix_user import MatrixUser, MatrixUserFactory

pytestmark = pytest.mark.integration

SESSION_ROOM = "!archivedSessionRoom"


async def archive_a_session(backline: RunningBackline, group_id: str) -> int:
    """A session with one message, stored the way Backline stores what it receives."""
    message = {
        "event_id": "$archived-message",
        "room_id": SESSION_ROOM,
        "sender": "@alice:localhost",
        "type": "m.room.message",
        "origin_server_ts": 1_714_572_000_000,
        "content": {"msgtype": "m.text", "body": "The xylophone invoice was paid twice"},
    }
    async with transaction(backline.db) as conn:
        session_id = await create_session(
            conn,
            group_id=group_id,
            agent="@agent:localhost",
            question="Double payment?",
            preferences={},
            needed=1,
            alias_prefix="backline-session-",
        )
        await set_room(conn, session_id, SESSION_ROOM)
        await store_events(conn, [message])
    return session_id


async def open_bot_dm(user: MatrixUser, backline: RunningBackline) -> tuple[RoomID, str]:
    """DM the bot; returns the room and the help the bot greets with."""
    bot = backline.config.bot_mxid
    room = await user.open_dm(bot)
    _, greeting = await user.wait_for_message(room, predicate=lambda _, sender: sender == bot)
    return room, greeting


async def start(
    start_backline: BacklineFactory, officer: MatrixUser
) -> tuple[RunningBackline, str]:
    group = unique_group_id("billing")
    backline = await start_backline(
        [{"id": group, "displayname": "Billing experts", "members": []}],
        permissions={"*": "none", "localhost": "agent", officer.user_id: "compliance"},
    )
    return backline, group


async def test_a_compliance_officer_gets_the_newest_hits(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    officer = await matrix_user("carol")
    backline, group = await start(start_backline, officer)
    session_id = await archive_a_session(backline, group)
    room, greeting = await open_bot_dm(officer, backline)

    await officer.send_text(room, "!search xylophone")
    _, reply = await officer.wait_for_message(
        room, predicate=lambda body, sender: sender == backline.config.bot_mxid
    )

    assert "!search" in greeting
    assert reply == (
        "Newest matches for 'xylophone':\n"
        f"• session {session_id}, 2024-05-01 14:00 UTC, {group}, @alice:localhost: "
        "The **xylophone** invoice was paid twice"
    )
    async with connection(backline.db) as conn:
        logged = await read_access_log(conn)
    assert [(e.actor, e.action, e.target) for e in logged] == [
        (officer.user_id, "search", "xylophone")
    ]


async def test_an_agent_is_refused_politely_and_nothing_is_searched(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    officer, agent = await asyncio.gather(matrix_user("carol"), matrix_user("agent"))
    backline, group = await start(start_backline, officer)
    await archive_a_session(backline, group)
    room, greeting = await open_bot_dm(agent, backline)

    await agent.send_text(room, "!search xylophone")
    _, reply = await agent.wait_for_message(
        room, predicate=lambda body, sender: sender == backline.config.bot_mxid
    )

    assert "!search" not in greeting
    assert reply.startswith("Sorry, only compliance officers may search the archive.")
    assert "xylophone" not in reply
    async with connection(backline.db) as conn:
        assert await read_access_log(conn) == []


async def test_no_answer_is_given_where_others_could_read_it(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    officer, agent = await asyncio.gather(matrix_user("carol"), matrix_user("agent"))
    backline, group = await start(start_backline, officer)
    await archive_a_session(backline, group)
    room, _ = await open_bot_dm(officer, backline)
    await officer.client.invite_user(room, agent.user_id)
    await agent.join(room)
    await officer.wait_for_membership(room, agent.user_id, "join")

    await officer.send_text(room, "!search xylophone")
    _, reply = await officer.wait_for_message(
        room, predicate=lambda body, sender: sender == backline.config.bot_mxid
    )

    assert reply.startswith("I answer !search only in a chat between you and me")
    assert "xylophone" not in reply
    async with connection(backline.db) as conn:
        assert await read_access_log(conn) == []
