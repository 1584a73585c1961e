"""Business rules (a Python callable or a webhook) filtering and ordering who is asked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from mautrix.types import RoomID

from appservice.demo.synapse import free_port
from appservice.errors import ConfigError
from tests.integration.conftest import BacklineFactory, unique_group_id
from tests.integration.matrix_user import MatrixUser, MatrixUserFactory
from tests.integration.test_strategies import (
    Desk,
    invited_to,
    open_desk,
    request,
    routing_decision,
    wait_for_offers,
)

pytestmark = pytest.mark.integration

Answer = Callable[["RuleEndpoint", dict[str, Any]], Awaitable[web.StreamResponse]]


@dataclass
class RuleEndpoint:
    """A business-rule webhook served by the test; `answer` makes each reply."""

    url: str
    answer: Answer | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    # Set when the test ends, so that an answer held back past rule_timeout can finish.
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append(body)
        assert self.answer is not None, "the test set no answer"
        return await self.answer(self, body)


@pytest.fixture
async def rule_endpoint() -> AsyncIterator[RuleEndpoint]:
    """A webhook on 127.0.0.1 for `routing.webhook`; its answer is set by the test."""
    port = free_port()
    endpoint = RuleEndpoint(f"http://127.0.0.1:{port}/rank")
    app = web.Application()
    app.router.add_post("/rank", endpoint.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield endpoint
    endpoint.released.set()
    await runner.cleanup()


async def first_offer_and_rule_notes(
    desk: Desk, room: RoomID, expected: MatrixUser
) -> tuple[dict[str, str], list[str]]:
    """Once `expected` has the first offer: the offer states, and the rule's notes."""
    await expected.wait_for_invite(predicate=lambda i: i.room_id == room)
    offers = await wait_for_offers(desk.backline, room, {expected.user_id: "invited"})
    notes: list[str] = (await routing_decision(desk.backline, room)).details.get("rule", [])
    return offers, notes


SERIAL = {"strategy": "serial", "offer_timeout": "10m"}


# A Python callable


async def test_a_rule_that_reverses_the_order_has_the_last_member_asked_first(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent = await matrix_user("agent")
    desk = await open_desk(
        start_backline,
        matrix_user,
        "ruled",
        {**SERIAL, "rule": "tests.integration.rules_fixture:prefer_last"},
    )
    first, _, last = desk.experts

    room = await request(desk, agent, "Who goes first?")

    offers, notes = await first_offer_and_rule_notes(desk, room, last)
    assert offers == {last.user_id: "invited"}
    assert notes == ["rule chose 3 of 3"]
    assert not invited_to(first, room)


async def test_a_rule_that_raises_falls_back_to_member_order(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent = await matrix_user("agent")
    desk = await open_desk(
        start_backline,
        matrix_user,
        "ruled",
        {**SERIAL, "rule": "tests.integration.rules_fixture:broken"},
    )
    first = desk.experts[0]

    room = await request(desk, agent, "Does the rule hold?")

    offers, notes = await first_offer_and_rule_notes(desk, room, first)
    assert offers == {first.user_id: "invited"}
    assert notes == ["rule failed: the CRM is unreachable; built-in order used"]


async def test_a_rule_that_cannot_be_imported_stops_the_start_naming_the_key(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    expert = await matrix_user("expert")
    group = unique_group_id("norule")
    routing = {"rule": "tests.integration.rules_fixture:no_such_rule"}

    with pytest.raises(ConfigError) as raised:
        await start_backline([{"id": group, "members": [expert.user_id], "routing": routing}])

    assert "groups[0].routing.rule" in str(raised.value)
    assert "cannot be loaded" in str(raised.value)
    assert "no_such_rule" in str(raised.value)


# A webhook


async def test_a_webhook_that_leaves_an_expert_out_keeps_them_from_being_invited(
    start_backline: BacklineFactory,
    matrix_user: MatrixUserFactory,
    rule_endpoint: RuleEndpoint,
) -> None:
    agent = await matrix_user("agent")
    desk = await open_desk(start_backline, matrix_user, "ruled", {"webhook": rule_endpoint.url})
    kept_one, left_out, kept_two = desk.experts

    async def leave_out(endpoint: RuleEndpoint, body: dict[str, Any]) -> web.StreamResponse:
        ids = [c["user_id"] for c in body["candidates"] if c["user_id"] != left_out.user_id]
        return web.json_response({"experts": ids})

    rule_endpoint.answer = leave_out

    room = await request(desk, agent, "Which one of you knows the old tariff?")

    await asyncio.gather(
        kept_one.wait_for_invite(predicate=lambda i: i.room_id == room),
        kept_two.wait_for_invite(predicate=lambda i: i.room_id == room),
    )
    expected = {kept_one.user_id: "invited", kept_two.user_id: "invited"}
    assert await wait_for_offers(desk.backline, room, expected) == expected
    assert not invited_to(left_out, room)
    first = await routing_decision(desk.backline, room)
    assert first.details["skipped"] == {left_out.user_id: "left out by the business rule"}
    assert first.details["rule"] == ["webhook chose 2 of 3"]
    body = rule_endpoint.received[0]
    assert (body["group"], body["request"]["question"]) == (
        desk.group,
        "Which one of you knows the old tariff?",
    )
    assert [c["user_id"] for c in body["candidates"]] == [e.user_id for e in desk.experts]


async def test_a_webhook_answering_500_falls_back_to_member_order(
    start_backline: BacklineFactory,
    matrix_user: MatrixUserFactory,
    rule_endpoint: RuleEndpoint,
) -> None:
    agent = await matrix_user("agent")
    desk = await open_desk(
        start_backline, matrix_user, "ruled", {**SERIAL, "webhook": rule_endpoint.url}
    )

    async def fail(endpoint: RuleEndpoint, body: dict[str, Any]) -> web.StreamResponse:
        return web.json_response({"error": "down for maintenance"}, status=500)

    rule_endpoint.answer = fail
    first = desk.experts[0]

    room = await request(desk, agent, "Is the webhook up?")

    offers, notes = await first_offer_and_rule_notes(desk, room, first)
    assert offers == {first.user_id: "invited"}
    assert notes == ["webhook failed: the endpoint answered HTTP 500; built-in order used"]
    assert rule_endpoint.received


async def test_a_webhook_slower_than_rule_timeout_falls_back_to_member_order(
    start_backline: BacklineFactory,
    matrix_user: MatrixUserFactory,
    rule_endpoint: RuleEndpoint,
) -> None:
    agent = await matrix_user("agent")
    desk = await open_desk(
        start_backline,
        matrix_user,
        "ruled",
        {**SERIAL, "webhook": rule_endpoint.url, "rule_timeout": "1s"},
    )

    async def hold_back(endpoint: RuleEndpoint, body: dict[str, Any]) -> web.StreamResponse:
        await endpoint.released.wait()
        return web.json_response({"experts": []})

    rule_endpoint.answer = hold_back
    first = desk.experts[0]

    room = await request(desk, agent, "Is the webhook slow?")

    offers, notes = await first_offer_and_rule_notes(desk, room, first)
    assert offers == {first.user_id: "invited"}
    assert notes == ["webhook timed out; built-in order used"]
