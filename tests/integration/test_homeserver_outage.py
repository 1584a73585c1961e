"""The homeserver unreachable in the middle of a request: nothing is lost or done twice."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.integration.conftest import BacklineFactory, join_roster, unique_group_id
from tests.integration.matrix_user import MatrixUserFactory, SynapseWithAppservice
from tests.integration.test_session_flow import session_of

pytestmark = pytest.mark.integration


class Relay:
    """A TCP relay in front of the homeserver that a test cuts and restores like a network."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen (again, on the same port after a cut) and pass everything through."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones mid-stream."""
        assert self._server is not None
        self._server.close()
        for writer in self._open:
            writer.transport.abort()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._open -= {writer, up_writer}
            for end in (writer, up_writer):
                end.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


@pytest.fixture
async def relay(synapse: SynapseWithAppservice) -> AsyncIterator[Relay]:
    relay = Relay(synapse.port)
    await relay.start()
    yield relay
    with contextlib.suppress(AssertionError):
        await relay.cut()


async def test_a_request_made_while_the_homeserver_is_unreachable_is_routed_once_it_is_back(
    start_backline: BacklineFactory,
    matrix_user: MatrixUserFactory,
    synapse: SynapseWithAppservice,
    relay: Relay,
) -> None:
    agent, expert = await asyncio.gather(matrix_user("agent"), matrix_user("expert"))
    group = unique_group_id("outage")
    backline = await start_backline(
        [{"id": group, "displayname": "Outage desk", "members": [expert.user_id]}],
        extra={"homeserver": {"address": relay.url, "domain": synapse.server_name}},
    )
    await join_roster(expert, backline, group)
    dm = await agent.open_dm(backline.group_user(group))

    await relay.cut()
    # Synapse still reaches Backline; only Backline's calls to Synapse fail.
    await agent.send_text(dm, "Is the refund for order 77 through?")
    await asyncio.sleep(3)
    assert not agent.invites_seen()
    await relay.start()

    offer = await expert.wait_for_invite(
        timeout=30, predicate=lambda i: i.sender == backline.group_user(group) and i.room_id != dm
    )
    assert offer.reason is not None and "Is the refund for order 77 through?" in offer.reason
    room = (await agent.wait_for_invite(timeout=30)).room_id
    assert room == offer.room_id
    await expert.join(room)
    _, told = await agent.wait_for_message(dm, predicate=lambda body, _: "will help" in body)
    assert told == f"{expert.user_id} joined and will help you."
    assert (await session_of(backline, room)).state == "claimed"
    assert len([i for i in agent.invites_seen() if i.sender == backline.group_user(group)]) == 1
