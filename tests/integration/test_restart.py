"""A real `backline` process killed with SIGKILL in the middle of a serial session."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest
from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Connection

from appservice.db import connection, open_database
from appservice.db import offers as offers_db
from appservice.db import sessions as sessions_db
from appservice.db.presence import presence_of
from tests.integration.conftest import service_config, start_service, unique_group_id
from tests.integration.matrix_user import MatrixUser, MatrixUserFactory, SynapseWithAppservice

pytestmark = pytest.mark.integration

T = TypeVar("T")

Start = Callable[[], Awaitable[asyncio.subprocess.Process]]


@pytest.fixture
async def backline_process(
    synapse: SynapseWithAppservice, database_url: str, tmp_path: Path
) -> AsyncIterator[Callable[[dict[str, object]], Start]]:
    """Runs `python -m appservice` with a config; every process started is killed at the end."""
    processes: list[asyncio.subprocess.Process] = []

    def prepare(group: dict[str, object]) -> Start:
        path = tmp_path / "config.yaml"
        path.write_text(json.dumps(service_config(synapse, database_url, [group])))

        async def start() -> asyncio.subprocess.Process:
            process = await start_service(path, stderr=asyncio.subprocess.DEVNULL)
            processes.append(process)
            await wait_for_health(synapse.appservice_url)
            return process

        return start

    yield prepare
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def wait_for_health(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(f"{url}/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("Backline did not become healthy")


async def join_rosters(*experts: MatrixUser, group_user: UserID) -> None:
    """Each expert accepts the group's roster invite."""
    for expert in experts:
        roster = await expert.wait_for_invite(predicate=lambda i: i.sender == group_user)
        await expert.join(roster.room_id)


async def ask_group(agent: MatrixUser, group_user: UserID, question: str) -> tuple[RoomID, RoomID]:
    """The agent asks in a DM with the group user; returns the DM and the session room."""
    dm = await agent.open_dm(group_user)
    await agent.send_text(dm, question)
    room = (await agent.wait_for_invite(predicate=lambda i: i.sender == group_user)).room_id
    return dm, room


async def read_store(database_url: str, read: Callable[[Connection], Awaitable[T]]) -> T:
    """Read the store the process writes, through a connection of the test's own."""
    db = await open_database(database_url)
    try:
        async with connection(db) as conn:
            return await read(conn)
    finally:
        await db.stop()


async def stored_presence(database_url: str, user_id: str) -> tuple[str, str | None] | None:
    known = await read_store(database_url, lambda conn: presence_of(conn, [user_id]))
    return (known[user_id].presence, known[user_id].status_msg) if user_id in known else None


async def offer_states(database_url: str, room: RoomID) -> tuple[str, dict[str, str]]:
    """The state of the room's session, and of each of its offers by expert."""

    async def read(conn: Connection) -> tuple[str, dict[str, str]]:
        session = await sessions_db.session_by_room(conn, room)
        assert session is not None, f"no session for {room}"
        offers = await offers_db.session_offers(conn, session.id)
        return session.state, {o.expert: o.state for o in offers}

    return await read_store(database_url, read)


async def test_an_offer_that_falls_due_while_killed_times_out_after_restart_and_routing_goes_on(
    backline_process: Callable[[dict[str, object]], Start],
    matrix_user: MatrixUserFactory,
    synapse: SynapseWithAppservice,
    database_url: str,
) -> None:
    agent, first, second, third = await asyncio.gather(
        matrix_user("agent"), matrix_user("first"), matrix_user("second"), matrix_user("third")
    )
    experts = [first, second, third]
    group_id = unique_group_id("serialkill")
    group_user = UserID(f"@group-{group_id}:{synapse.server_name}")
    start = backline_process(
        {
            "id": group_id,
            "members": [e.user_id for e in experts],
            "routing": {"strategy": "serial", "offer_timeout": "3s"},
        }
    )
    process = await start()
    await join_rosters(*experts, group_user=group_user)
    dm, room = await ask_group(agent, group_user, "Which refund policy applies to order 7?")
    await first.wait_for_invite(predicate=lambda i: i.room_id == room)

    process.send_signal(signal.SIGKILL)
    await process.wait()
    await asyncio.sleep(4)  # the first offer falls due while nothing runs
    process = await start()

    withdrawn = await first.wait_for_membership(room, first.user_id, "leave", timeout=30)
    assert withdrawn.sender == group_user
    assert withdrawn.reason is not None and "Nobody answered this offer" in withdrawn.reason
    await second.wait_for_invite(timeout=30, predicate=lambda i: i.room_id == room)
    await second.join(room)
    _, told = await agent.wait_for_message(dm, predicate=lambda body, _: "will help" in body)
    assert told == f"{second.user_id} joined and will help you."

    mine = await read_store(
        database_url,
        lambda conn: sessions_db.sessions_in_states(conn, sessions_db.OPEN_STATES),
    )
    state, offers = await offer_states(database_url, room)
    assert [s.room_id for s in mine if s.agent == agent.user_id] == [room]
    assert state == "claimed"
    assert offers == {first.user_id: "timed_out", second.user_id: "accepted"}
    assert [i.room_id for i in first.invites_seen() if i.room_id == room] == [room]
    assert not [i for i in third.invites_seen() if i.room_id == room]


async def test_an_offer_accepted_while_killed_claims_even_though_its_deadline_passed(
    backline_process: Callable[[dict[str, object]], Start],
    matrix_user: MatrixUserFactory,
    synapse: SynapseWithAppservice,
    database_url: str,
) -> None:
    agent, first, second = await asyncio.gather(
        matrix_user("agent"), matrix_user("first"), matrix_user("second")
    )
    group_id = unique_group_id("joinkill")
    group_user = UserID(f"@group-{group_id}:{synapse.server_name}")
    start = backline_process(
        {
            "id": group_id,
            "members": [first.user_id, second.user_id],
            "routing": {"strategy": "serial", "offer_timeout": "3s"},
        }
    )
    process = await start()
    await join_rosters(first, second, group_user=group_user)
    dm, room = await ask_group(agent, group_user, "Is order 9 covered by the warranty?")
    await first.wait_for_invite(predicate=lambda i: i.room_id == room)

    process.send_signal(signal.SIGKILL)
    await process.wait()
    await first.join(room)  # in time, but Backline only hears of it after the deadline
    await asyncio.sleep(4)
    await start()

    _, told = await agent.wait_for_message(
        dm, timeout=30, predicate=lambda body, _: "will help" in body
    )
    assert told == f"{first.user_id} joined and will help you."
    await asyncio.sleep(1)  # room for a wrong timeout or a second offer to show
    assert await first.membership_of(room) == "join"
    assert not [i for i in second.invites_seen() if i.room_id == room]


async def test_presence_changed_while_killed_is_read_again_before_routing(
    backline_process: Callable[[dict[str, object]], Start],
    matrix_user: MatrixUserFactory,
    synapse: SynapseWithAppservice,
    database_url: str,
) -> None:
    agent, free, busy = await asyncio.gather(
        matrix_user("agent"), matrix_user("free"), matrix_user("busy")
    )
    group_id = unique_group_id("presencekill")
    group_user = UserID(f"@group-{group_id}:{synapse.server_name}")
    start = backline_process({"id": group_id, "members": [free.user_id, busy.user_id]})
    process = await start()
    await join_rosters(free, busy, group_user=group_user)
    for _ in range(100):
        if await stored_presence(database_url, busy.user_id) == ("online", None):
            break
        await asyncio.sleep(0.1)
    assert await stored_presence(database_url, busy.user_id) == ("online", None)

    process.send_signal(signal.SIGKILL)
    await process.wait()
    await busy.set_presence("online", "in a meeting")  # an update Backline never hears of
    await start()

    dm, room = await ask_group(agent, group_user, "Can someone check invoice 12?")
    await free.wait_for_invite(predicate=lambda i: i.room_id == room)
    await free.join(room)
    await agent.wait_for_message(dm, predicate=lambda body, _: "will help" in body)

    _, offers = await offer_states(database_url, room)
    assert offers == {free.user_id: "accepted"}
    assert await stored_presence(database_url, busy.user_id) == ("online", "in a meeting")
