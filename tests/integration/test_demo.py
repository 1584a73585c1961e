"""`make demo`'s setup, run on free ports in a temporary directory with its own Synapse."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from mautrix.types import RoomID

from appservice.db import connection
from appservice.db import offers as offers_db
from appservice.db import sessions as sessions_db
from appservice.demo.printout import describe
from appservice.demo.run import DemoOptions, RunningDemo, start_demo
from appservice.demo.synapse import free_port
from tests.integration.matrix_user import MatrixUser

pytestmark = pytest.mark.integration


def _two_free_ports() -> tuple[int, int]:
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


@pytest.fixture(scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningDemo]:
    """The demo with simulated experts; its own Synapse, since the registration is per Synapse."""
    synapse_port, appservice_port = _two_free_ports()
    options = DemoOptions(
        data_dir=tmp_path_factory.mktemp("demo") / "demo-data",
        synapse_port=synapse_port,
        appservice_port=appservice_port,
        simulate_experts=True,
    )
    running = await start_demo(options)
    yield running
    await running.stop()


@pytest.fixture(scope="module")
async def agent(demo: RunningDemo) -> AsyncIterator[MatrixUser]:
    """The demo's agent, signed in with its printed password and syncing."""
    account = next(a for a in demo.accounts if a.localpart == "agent")
    user = await MatrixUser.create(demo.synapse, account.localpart, account.password)
    yield user
    await user.stop()


async def _log_in(url: str, localpart: str, password: str) -> tuple[int, str | None]:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": localpart},
        "password": password,
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/_matrix/client/v3/login", json=body) as response,
    ):
        answer = await response.json()
    return response.status, answer.get("user_id")


async def _ask(demo: RunningDemo, agent: MatrixUser, group_id: str, question: str) -> RoomID:
    """Ask a group from a new DM; return the session room the agent is invited to."""
    group_user = demo.config.group_mxid(group_id)
    dm = await agent.open_dm(group_user)
    await agent.send_text(dm, question)
    invite = await agent.wait_for_invite(predicate=lambda i: i.sender == group_user)
    return invite.room_id


async def _offers(demo: RunningDemo, room_id: RoomID) -> dict[str, str]:
    """Expert → offer state for the session in this room, once its invites have gone out."""
    assert demo.backline.db is not None
    for _ in range(100):
        async with connection(demo.backline.db) as conn:
            session = await sessions_db.session_by_room(conn, room_id)
            offers = await offers_db.session_offers(conn, session.id) if session else []
        if offers and all(offer.state != "pending" for offer in offers):
            return {offer.expert: offer.state for offer in offers}
        await asyncio.sleep(0.1)
    return {}


async def test_demo_writes_config_registration_and_printout(demo: RunningDemo) -> None:
    data_dir = demo.options.data_dir

    text = describe(demo)

    assert (data_dir / "config.yaml").is_file()
    assert (data_dir / "registration.yaml").stat().st_mode & 0o077 == 0
    assert demo.config.appservice.as_token in (data_dir / "registration.yaml").read_text()
    assert demo.synapse.url in text
    assert all(account.password in text for account in demo.accounts)


async def test_every_account_signs_in_with_its_printed_password(demo: RunningDemo) -> None:
    server = demo.options.server_name

    answers = await asyncio.gather(
        *(_log_in(demo.synapse.url, a.localpart, a.password) for a in demo.accounts)
    )

    expected = [(200, a.user_id(server)) for a in demo.accounts]
    assert answers == expected
    assert {a.localpart for a in demo.accounts} == {
        "agent",
        "alice",
        "bob",
        "carol",
        "manager",
        "compliance",
    }


async def test_backline_health_answers_200(demo: RunningDemo) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{demo.appservice_url}/health") as response,
    ):
        body = await response.json()

    assert response.status == 200
    assert body["status"] == "ok"


async def test_agent_asking_billing_is_invited_to_a_session_room(
    demo: RunningDemo, agent: MatrixUser
) -> None:
    room_id = await _ask(demo, agent, "billing", "How do I refund a double charge?")

    invite = next(i for i in agent.invites_seen() if i.room_id == room_id)
    assert invite.room_name == "Billing experts: How do I refund a double charge?"


async def test_simulated_experts_are_online_and_offered_the_request(
    demo: RunningDemo, agent: MatrixUser
) -> None:
    room_id = await _ask(demo, agent, "tech", "The VPN drops every hour. skill:networking")

    offers = await _offers(demo, room_id)

    server = demo.options.server_name
    assert offers == {f"@bob:{server}": "invited", f"@carol:{server}": "invited"}
