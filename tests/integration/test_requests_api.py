"""The request API against a real Synapse: groups, opening requests, and following them."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from mautrix.types import RoomID

from appservice.config import ApiToken
from appservice.db import connection
from appservice.db.presence import presence_of
from appservice.db.sessions import OPEN_STATES, sessions_in_states
from tests.integration.archive_desk import Answer, call
from tests.integration.conftest import (
    BacklineFactory,
    RunningBackline,
    join_roster,
    unique_group_id,
)
from tests.integration.matrix_user import MatrixUser, MatrixUserFactory

pytestmark = pytest.mark.integration

CRM_TOKEN = "crm-token-for-the-request-api-tests"
ROUTES = [("GET", "/api/v1/groups"), ("POST", "/api/v1/requests"), ("GET", "/api/v1/requests/1")]
# Stands for the test's group in MALFORMED_BODIES.
GROUP = "{group}"


@dataclass
class Desk:
    """Backline with an API token, a group of experts and one closed group, and its people."""

    backline: RunningBackline
    http: aiohttp.ClientSession
    group: str
    closed_group: str
    agent: MatrixUser
    colleague: MatrixUser
    manager: MatrixUser
    officer: MatrixUser
    experts: list[MatrixUser]

    async def call(
        self, method: str, path: str, caller: MatrixUser | str | None = CRM_TOKEN, **kwargs: Any
    ) -> Answer:
        """One request to Backline, by default as the CRM."""
        return await call(self.http, self.backline, method, path, caller, **kwargs)

    async def open_request(
        self,
        caller: MatrixUser | str = CRM_TOKEN,
        headers: dict[str, str] | None = None,
        **body: Any,
    ) -> Answer:
        """POST /api/v1/requests for the agent to the group, with `body` overriding fields."""
        if caller == CRM_TOKEN:
            body.setdefault("agent", self.agent.user_id)
        fields = {"group": self.group, "question": "Can we refund order 42 twice?", **body}
        return await self.call(
            "POST", "/api/v1/requests", caller, json=fields, headers=headers or {}
        )

    async def room_of(self, request_id: int) -> RoomID:
        """The session room of a request, once it exists."""
        for _ in range(100):
            answer = await self.call("GET", f"/api/v1/requests/{request_id}")
            if answer.body["room_id"] is not None:
                return RoomID(answer.body["room_id"])
            await asyncio.sleep(0.1)
        raise AssertionError(f"request {request_id} got no room")

    async def follow_until(self, request_id: int, predicate: Callable[[Any], bool]) -> Answer:
        """GET the request until its answer satisfies `predicate`."""
        for _ in range(100):
            answer = await self.call("GET", f"/api/v1/requests/{request_id}")
            if predicate(answer.body):
                return answer
            await asyncio.sleep(0.1)
        raise AssertionError(f"request {request_id} never got there: {answer.body}")

    async def available(self, caller: MatrixUser | str, agent: str | None = None) -> int:
        """How many experts of the group GET /api/v1/groups says are available now."""
        path = "/api/v1/groups" + (f"?agent={agent}" if agent else "")
        answer = await self.call("GET", path, caller)
        assert answer.status == 200, answer.text
        return int(next(g["available"] for g in answer.body["groups"] if g["group"] == self.group))

    async def wait_available(self, count: int) -> None:
        """Wait until the experts' presence has reached Backline."""
        for _ in range(300):
            if await self.available(CRM_TOKEN, self.agent.user_id) == count:
                return
            await asyncio.sleep(0.1)
        async with connection(self.backline.db) as conn:
            known = await presence_of(conn, [expert.user_id for expert in self.experts])
        raise AssertionError(f"never {count} available; presence stored: {known}")


async def start_desk(
    start_backline: BacklineFactory,
    matrix_user: MatrixUserFactory,
    http: aiohttp.ClientSession,
    experts: int = 1,
) -> Desk:
    """Start Backline with the CRM's token and everyone's role; experts are online."""
    agent, colleague, manager, officer, *members = await asyncio.gather(
        matrix_user("agent"),
        matrix_user("colleague"),
        matrix_user("manager"),
        matrix_user("officer"),
        *(matrix_user("expert") for _ in range(experts)),
    )
    domain = agent.user_id.split(":", 1)[1]
    group, closed_group = unique_group_id("billing"), unique_group_id("vip")
    backline = await start_backline(
        [
            {
                "id": group,
                "displayname": "Billing experts",
                "members": [m.user_id for m in members],
            },
            {"id": closed_group, "displayname": "VIP desk", "agents": [manager.user_id]},
        ],
        permissions={
            "*": "none",
            domain: "agent",
            manager.user_id: "manager",
            officer.user_id: "compliance",
        },
        extra={"api": {"tokens": [{"name": "crm", "token": CRM_TOKEN}]}},
    )
    await asyncio.gather(*(join_roster(m, backline, group) for m in members))
    # A change of status reaches Backline as soon as the roster room is shared.
    await asyncio.gather(*(m.set_presence("online", "At my desk") for m in members))
    desk = Desk(
        backline, http, group, closed_group, agent, colleague, manager, officer, list(members)
    )
    await desk.wait_available(experts)
    return desk


@pytest.fixture
async def desk(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, http: aiohttp.ClientSession
) -> Desk:
    return await start_desk(start_backline, matrix_user, http)


# region opening


async def test_crm_opens_a_request_and_the_expert_is_offered_it(desk: Desk) -> None:
    expert = desk.experts[0]

    opened = await desk.open_request()

    assert opened.status == 201, opened.text
    assert opened.body["state"] in ("waiting", "offering")
    room = opened.body["room_id"]
    assert room is not None, "the session room was not made within the POST's wait"
    offer = await expert.wait_for_invite(predicate=lambda i: i.room_id == room)
    assert offer.reason is not None and "Can we refund order 42 twice?" in offer.reason
    invite = await desk.agent.wait_for_invite(predicate=lambda i: i.room_id == room)
    await desk.agent.join(invite.room_id)
    assert await desk.agent.membership_of(invite.room_id) == "join"


async def test_agent_opens_a_request_for_themself(desk: Desk) -> None:
    opened = await desk.open_request(desk.agent)

    assert opened.status == 201, opened.text
    followed = await desk.call("GET", f"/api/v1/requests/{opened.body['request_id']}")
    assert followed.body["agent"] == desk.agent.user_id


async def test_request_shows_its_offers_and_then_who_claimed_it(desk: Desk) -> None:
    expert = desk.experts[0]
    opened = await desk.open_request(preferences={"languages": ["DE"], "skills": ["refunds"]})
    request_id = opened.body["request_id"]
    room = await desk.room_of(request_id)
    await expert.wait_for_invite(predicate=lambda i: i.room_id == room)

    offered = await desk.follow_until(
        request_id, lambda body: [o["state"] for o in body["offers"]] == ["invited"]
    )
    await expert.join(room)
    claimed = await desk.follow_until(request_id, lambda body: body["state"] == "claimed")

    assert offered.body["state"] == "offering"
    assert [o["expert"] for o in offered.body["offers"]] == [expert.user_id]
    assert offered.body["offers"][0]["offered_at"].endswith("Z")
    assert offered.body["claimed_by"] == []
    assert offered.body["preferences"]["languages"] == ["de"]
    assert offered.body["decisions"][0]["at"].endswith("Z")
    assert claimed.body["claimed_by"] == [expert.user_id]
    assert claimed.body["claimed_at"] is not None
    assert claimed.body["closed_at"] is None


async def test_customer_query_is_stored_and_the_archive_finds_it_by_reference(
    desk: Desk,
) -> None:
    query = {"channel": "phone", "reference": "CASE-4711", "customer": "ACME Ltd"}
    opened = await desk.open_request(query=query)
    request_id = opened.body["request_id"]

    followed = await desk.call("GET", f"/api/v1/requests/{request_id}")
    found = await desk.call("GET", "/api/v1/sessions?reference=CASE-4711", desk.officer)
    elsewhere = await desk.call("GET", "/api/v1/sessions?reference=CASE-0000", desk.officer)

    assert followed.body["query"] == query
    assert found.status == 200, found.text
    assert [r["session_id"] for r in found.body["results"]] == [request_id]
    assert elsewhere.body["results"] == []


async def test_the_archive_export_says_whom_routing_asked_and_whom_it_passed_over_and_why(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, http: aiohttp.ClientSession
) -> None:
    desk = await start_desk(start_backline, matrix_user, http, experts=2)
    named, other = desk.experts
    opened = await desk.open_request(expert=named.user_id)
    request_id = opened.body["request_id"]
    room = await desk.room_of(request_id)
    await named.wait_for_invite(predicate=lambda i: i.room_id == room)

    export = await desk.call(
        "GET", f"/api/v1/sessions/{request_id}/export?format=json", desk.officer
    )

    assert export.status == 200, export.text
    first = next(d for d in export.body["session"]["decisions"] if "offered" in d["details"])
    assert first["details"]["offered"] == [named.user_id]
    assert first["details"]["skipped"] == {other.user_id: "not the expert named in the request"}


# endregion
# region idempotency


async def test_same_idempotency_key_returns_the_same_request(desk: Desk) -> None:
    key = {"Idempotency-Key": "crm-ticket-4711-attempt"}

    first = await desk.open_request(headers=key)
    retry = await desk.open_request(headers=key)

    assert (first.status, retry.status) == (201, 201)
    assert retry.body["request_id"] == first.body["request_id"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    async with connection(desk.backline.db) as conn:
        open_sessions = await sessions_in_states(conn, OPEN_STATES)
    assert [s.id for s in open_sessions] == [first.body["request_id"]]


async def test_same_idempotency_key_from_another_caller_opens_another_request(
    desk: Desk,
) -> None:
    key = {"Idempotency-Key": "shared-key"}

    by_crm = await desk.open_request(headers=key)
    by_agent = await desk.open_request(desk.agent, headers=key)

    assert (by_crm.status, by_agent.status) == (201, 201)
    assert by_agent.body["request_id"] != by_crm.body["request_id"]


async def test_idempotency_key_reused_for_another_question_is_refused(desk: Desk) -> None:
    key = {"Idempotency-Key": "crm-ticket-4712"}
    await desk.open_request(headers=key)

    other = await desk.open_request(headers=key, question="A different question")

    assert other.status == 422, other.text
    assert "Idempotency-Key" in other.body["error"]


# endregion
# region refusals


async def test_callers_without_a_valid_token_are_refused(desk: Desk) -> None:
    body = {"group": desk.group, "question": "Anyone?"}

    for method, path in ROUTES:
        anonymous = await desk.call(method, path, None, json=body)
        unknown = await desk.call(method, path, "not-a-real-token", json=body)

        assert (anonymous.status, anonymous.body["errcode"]) == (401, "M_MISSING_TOKEN"), path
        assert (unknown.status, unknown.body["errcode"]) == (401, "M_UNKNOWN_TOKEN"), path


async def test_a_reload_revokes_a_removed_token_and_admits_a_new_one(desk: Desk) -> None:
    issued = "crm-token-issued-by-a-reload"
    config = desk.backline.config
    await desk.backline.app.reload(
        dataclasses.replace(config, api_tokens=(ApiToken(name="crm-2027", token=issued),))
    )
    path = f"/api/v1/groups?agent={desk.agent.user_id}"

    revoked = await desk.call("GET", path)
    admitted = await desk.call("GET", path, issued)

    assert (revoked.status, revoked.body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    assert admitted.status == 200, admitted.text
    assert desk.group in [group["group"] for group in admitted.body["groups"]]


async def test_the_crm_token_does_not_open_the_archive(desk: Desk) -> None:
    answer = await desk.call("GET", "/api/v1/sessions?q=refund")

    assert answer.status == 403, answer.text


async def test_agent_may_not_act_for_another_agent(desk: Desk) -> None:
    other = desk.colleague.user_id

    opened = await desk.open_request(desk.agent, agent=other)
    listed = await desk.call("GET", f"/api/v1/groups?agent={other}", desk.agent)

    assert (opened.status, opened.body["errcode"]) == (403, "M_FORBIDDEN")
    assert (listed.status, listed.body["errcode"]) == (403, "M_FORBIDDEN")
    assert "yourself" in opened.body["error"]


async def test_agent_who_may_not_ask_the_group_is_refused(desk: Desk) -> None:
    by_crm = await desk.open_request(group=desk.closed_group)
    by_agent = await desk.open_request(desk.agent, group=desk.closed_group)

    for answer in (by_crm, by_agent):
        assert (answer.status, answer.body["errcode"]) == (403, "M_FORBIDDEN"), answer.text
        assert answer.body["error"] == (
            f"{desk.agent.user_id} may not ask VIP desk. Ask your administrator for access."
        )


async def test_unknown_group_is_not_found(desk: Desk) -> None:
    answer = await desk.open_request(group="no-such-group")

    assert (answer.status, answer.body["errcode"]) == (404, "M_NOT_FOUND")
    assert "no-such-group" in answer.body["error"]


async def test_an_agent_unknown_to_the_homeserver_is_not_found(desk: Desk) -> None:
    ghost = f"@nobody-{secrets.token_hex(4)}:{desk.backline.config.homeserver.domain}"

    answer = await desk.open_request(agent=ghost)

    assert answer.status == 404, answer.body
    assert (answer.status, answer.body["errcode"]) == (404, "M_NOT_FOUND")
    assert ghost in answer.body["error"]


async def test_service_must_name_the_agent(desk: Desk) -> None:
    listed = await desk.call("GET", "/api/v1/groups")
    opened = await desk.call(
        "POST", "/api/v1/requests", json={"group": desk.group, "question": "Anyone?"}
    )

    for answer in (listed, opened):
        assert (answer.status, answer.body["errcode"]) == (400, "M_MISSING_PARAM")
        assert "agent" in answer.body["error"]


def asking(**fields: Any) -> dict[str, Any]:
    """A valid body for the test's group, with `fields` replacing or adding to it."""
    return {"group": GROUP, "question": "Anyone?", **fields}


MALFORMED_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("missing question", {"group": GROUP}, "question"),
    ("blank question", asking(question="   "), "question"),
    ("question as a number", asking(question=42), "question"),
    ("question as a list", asking(question=["a"]), "question"),
    ("question too long", asking(question="x" * 4001), "question"),
    ("question with NUL", asking(question="a\x00b"), "question"),
    ("missing group", {"question": "Anyone?"}, "group"),
    ("group as an object", asking(group={}), "group"),
    ("agent not a user ID", asking(agent="bob"), "agent"),
    ("expert not a user ID", asking(expert="alice"), "expert"),
    ("preferences as text", asking(preferences="lang:de"), "preferences"),
    ("languages as text", asking(preferences={"languages": "de"}), "preferences.languages"),
    ("a skill with spaces", asking(preferences={"skills": ["a b"]}), "preferences.skills"),
    ("too many skills", asking(preferences={"skills": ["s"] * 21}), "preferences.skills"),
    ("query as a list", asking(query=[]), "query"),
    ("channel as a number", asking(query={"channel": 7}), "query.channel"),
    ("reference too long", asking(query={"reference": "r" * 256}), "query.reference"),
]


async def test_malformed_bodies_are_refused_naming_the_field(desk: Desk) -> None:
    for what, template, field in MALFORMED_BODIES:
        body = {"agent": desk.agent.user_id, **template}
        if body.get("group") == GROUP:
            body["group"] = desk.group

        answer = await desk.call("POST", "/api/v1/requests", json=body)

        assert answer.status == 400, (what, answer.text)
        assert answer.body["errcode"] in ("M_MISSING_PARAM", "M_INVALID_PARAM"), what
        assert answer.body["error"].startswith(f"{field} "), (what, answer.body)


async def test_bodies_that_are_not_json_objects_are_refused(desk: Desk) -> None:
    for raw in (b"", b"{", b"not json", b"[1, 2]", b'"text"', b"null", b"\xff\xfe"):
        answer = await desk.call(
            "POST", "/api/v1/requests", data=raw, headers={"Content-Type": "application/json"}
        )

        assert answer.status == 400, (raw, answer.text)
        assert answer.body["errcode"] in ("M_NOT_JSON", "M_BAD_JSON"), raw


async def test_a_malformed_idempotency_key_is_refused(desk: Desk) -> None:
    answer = await desk.open_request(headers={"Idempotency-Key": "has spaces in it"})

    assert (answer.status, answer.body["errcode"]) == (400, "M_INVALID_PARAM")
    assert answer.body["error"].startswith("Idempotency-Key ")


# endregion
# region groups


async def test_agent_lists_the_groups_they_may_ask(desk: Desk) -> None:
    answer = await desk.call("GET", "/api/v1/groups", desk.agent)

    assert answer.status == 200, answer.text
    assert answer.body == {
        "agent": desk.agent.user_id,
        "groups": [
            {
                "group": desk.group,
                "displayname": "Billing experts",
                "user_id": desk.backline.group_user(desk.group),
                "available": 1,
                "members": 1,
            }
        ],
    }


async def test_availability_drops_when_an_expert_goes_offline(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, http: aiohttp.ClientSession
) -> None:
    desk = await start_desk(start_backline, matrix_user, http, experts=2)

    await desk.experts[0].set_presence("offline")

    await desk.wait_available(1)
    assert await desk.available(desk.agent) == 1


# endregion
# region following


async def test_another_agent_may_not_read_a_request(desk: Desk) -> None:
    opened = await desk.open_request()
    path = f"/api/v1/requests/{opened.body['request_id']}"

    own = await desk.call("GET", path, desk.agent)
    others = await desk.call("GET", path, desk.colleague)

    assert own.status == 200, own.text
    assert (others.status, others.body["errcode"]) == (403, "M_FORBIDDEN")


async def test_manager_may_read_any_request(desk: Desk) -> None:
    opened = await desk.open_request()

    answer = await desk.call("GET", f"/api/v1/requests/{opened.body['request_id']}", desk.manager)

    assert answer.status == 200, answer.text
    assert answer.body["agent"] == desk.agent.user_id


async def test_unknown_request_is_not_found(desk: Desk) -> None:
    for request_id in ("999999", "abc", "-1", "9" * 40):
        answer = await desk.call("GET", f"/api/v1/requests/{request_id}")

        assert (answer.status, answer.body["errcode"]) == (404, "M_NOT_FOUND"), request_id


# endregion
