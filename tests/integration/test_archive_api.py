"""The archive API against a real Synapse: roles, search, filters, pages, exports, holds, log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import aiohttp
import pytest
from mautrix.types import EventID, EventType, RoomID
from yarl import URL

from appservice.db import connection
from appservice.db.events import count_events
from tests.integration.conftest import (
    BacklineFactory,
    RunningBackline,
    join_roster,
    unique_group_id,
)
from tests.integration.matrix_user import MatrixUser, MatrixUserFactory
from tests.integration.test_session_flow import ask, session_of

pytestmark = pytest.mark.integration

XSS_BODY = "<script>alert(1)</script> xsscanary <img src=x onerror=alert(2)>"
XSS_FORMATTED = '<img src=x onerror="alert(3)"><script>alert(4)</script><b>xsscanary</b>'
HOSTILE_QUERIES = [
    '"',
    "*",
    "NEAR(",
    "') OR 1=1 --",
    "<script>alert(1)</script>",
    "Grüße 漢字 🙂 \u202eevil \u0301",
    "a" * 10_000,
    "\x00",
    "refund\x00 OR 1",
    "- OR AND NOT",
    '"unclosed phrase',
    "col:value ^start",
    "%",
    "_",
    "\\",
]


# region helpers


@dataclass
class Desk:
    """A running Backline with an agent, an expert, a compliance officer and a manager."""

    backline: RunningBackline
    group: str
    agent: MatrixUser
    expert: MatrixUser
    officer: MatrixUser
    manager: MatrixUser


@dataclass(frozen=True)
class Answer:
    """Status, headers and body of one HTTP answer."""

    status: int
    headers: Any
    body: Any
    text: str


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def token_of(user: MatrixUser) -> str:
    """The user's real Matrix access token."""
    token = user.client.api.token
    assert token
    return token


async def call(
    http: aiohttp.ClientSession,
    backline: RunningBackline,
    method: str,
    path: str | URL,
    user: MatrixUser | str | None = None,
    **kwargs: Any,
) -> Answer:
    """One request to Backline, as `user` (a MatrixUser, a raw token, or nobody)."""
    headers = dict(kwargs.pop("headers", {}))
    if isinstance(user, MatrixUser):
        headers["Authorization"] = f"Bearer {token_of(user)}"
    elif isinstance(user, str):
        headers["Authorization"] = f"Bearer {user}"
    url = path if isinstance(path, URL) else URL(backline.url + path)
    async with http.request(method, url, headers=headers, **kwargs) as response:
        text = await response.text()
        is_json = response.content_type == "application/json"
        body = await response.json() if is_json else None
        return Answer(response.status, response.headers, body, text)


async def start_desk(
    start_backline: BacklineFactory,
    matrix_user: MatrixUserFactory,
    extra_groups: list[tuple[str, MatrixUser]] | None = None,
) -> Desk:
    """Start Backline with one group (plus `extra_groups`) and everyone's role set."""
    agent, expert, officer, manager = await asyncio.gather(
        matrix_user("agent"), matrix_user("expert"), matrix_user("officer"), matrix_user("boss")
    )
    domain = officer.user_id.split(":", 1)[1]
    group = unique_group_id("archive")
    groups = [(group, expert), *(extra_groups or [])]
    backline = await start_backline(
        [{"id": g, "members": [member.user_id]} for g, member in groups],
        permissions={
            "*": "none",
            domain: "agent",
            officer.user_id: "compliance",
            manager.user_id: "manager",
        },
    )
    await asyncio.gather(*(join_roster(member, backline, g) for g, member in groups))
    return Desk(backline, group, agent, expert, officer, manager)


async def open_session(
    backline: RunningBackline, group: str, agent: MatrixUser, expert: MatrixUser, question: str
) -> tuple[RoomID, int]:
    """Ask, and let the expert claim: a session room both have joined."""
    await ask(agent, backline, group, question)
    room = (
        await agent.wait_for_invite(predicate=lambda i: i.sender == backline.group_user(group))
    ).room_id
    await expert.wait_for_invite(predicate=lambda i: i.room_id == room)
    await agent.join(room)
    await expert.join(room)
    await agent.wait_for_message(room, predicate=lambda body, _: "will help you" in body)
    session = await session_of(backline, room)
    assert session.state == "claimed"
    return room, session.id


async def wait_archived(backline: RunningBackline, *event_ids: EventID) -> None:
    """Wait until the homeserver has delivered these events and Backline stored them."""
    for _ in range(100):
        async with connection(backline.db) as conn:
            counts = [await count_events(conn, event_id) for event_id in event_ids]
        if all(counts):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"events not archived: {event_ids}")


async def say(backline: RunningBackline, user: MatrixUser, room: RoomID, *texts: str) -> None:
    """Send messages and wait until they are in the archive."""
    event_ids = [await user.send_text(room, text) for text in texts]
    await wait_archived(backline, *event_ids)


async def search(http: aiohttp.ClientSession, desk: Desk, **params: str) -> list[dict[str, Any]]:
    """The officer's search results (first page), checked to be a 200."""
    answer = await call(
        http, desk.backline, "GET", "/api/v1/sessions", desk.officer, params=params
    )
    assert answer.status == 200, answer.text
    results: list[dict[str, Any]] = answer.body["results"]
    return results


class MarkupCollector(HTMLParser):
    """Every tag and attribute a browser would build from an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)


def markup_of(document: str) -> MarkupCollector:
    collector = MarkupCollector()
    collector.feed(document)
    collector.close()
    return collector


def assert_inert(document: str) -> None:
    """No script, no event handler, no javascript: URL: nothing in it can run."""
    markup = markup_of(document)
    assert "script" not in markup.tags
    assert "iframe" not in markup.tags
    handlers = [name for name, _ in markup.attributes if name.startswith("on")]
    assert handlers == []
    urls = [value or "" for name, value in markup.attributes if name in ("src", "href")]
    assert not [url for url in urls if url.strip().lower().startswith("javascript:")]


# endregion
# region who may call


ROUTES = [
    ("GET", "/api/v1/sessions?q=refund"),
    ("GET", "/api/v1/sessions/{session}"),
    ("GET", "/api/v1/sessions/{session}/export?format=json"),
    ("GET", "/api/v1/sessions/{session}/export?format=html"),
    ("GET", "/api/v1/holds"),
    ("POST", "/api/v1/holds"),
    ("DELETE", "/api/v1/holds/{hold}"),
    ("GET", "/api/v1/access-log"),
]


async def test_every_route_refuses_callers_without_a_valid_token(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, http: aiohttp.ClientSession
) -> None:
    desk = await start_desk(start_backline, matrix_user)
    hold = {"kind": "group", "value": desk.group, "reason": "audit"}

    for method, template in ROUTES:
        path = template.format(session=1, hold=1)
        anonymous = await call(http, desk.backline, method, path, json=hold)
        unknown = await call(http, desk.backline, method, path, "not-a-real-token", json=hold)

        assert (anonymous.status, anonymous.body["errcode"]) == (401, "M_MISSING_TOKEN"), path
        assert (unknown.status, unknown.body["errcode"]) == (401, "M_UNKNOWN_TOKEN"), path


async def test_every_route_refuses_agents_and_managers(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, http: aiohttp.ClientSession
) -> None:
    desk = await start_desk(start_backline, matrix_user)
    _, session_id = await open_session(
        desk.backline, desk.group, desk.agent, desk.expert, "Refund question"
    )
    hold = {"kind": "session", "value": str(session_id), "reason": "audit"}

    for user in (desk.agent, desk.expert, desk.manager):
        for method, template in ROUTES:
            path = template.format(session=session_id, hold=1)
            answer = await call(http, desk.backline, method, path, user, json=hold)

            assert answer.status == 403, (user.user_id, path, answer.text)
            assert answer.body["errcode"] == "M_FORBIDDEN"
            assert "may not" in answer.body["error"]


async def test_compliance_officer_reaches_every_route(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, http: aiohttp.ClientSession
) -> None:
    desk = await start_desk(start_backline, matrix_user)
    room, session_id = await open_session(
        desk.backline, desk.group, desk.agent, desk.expert, "Refund question"
    )
    await say(desk.backline, desk.expert, room, "Refund it from the payments page.")
    placed = await call(
        http,
        desk.backline,
        "POST",
        "/api/v1/holds",
        desk.officer,
        json={"kind": "session", "value": str(session_id), "reason": "audit"},
    )
    assert placed.status == 201, placed.text

    for method, template in ROUTES:
        if method == "POST":
            continue
        path = template.format(session=session_id, hold=placed.body["id"])
        answer = await call(http, desk.backline, method, path, desk.officer)

        assert answer.status == 200, (path, answer.text)
        assert answer.headers["Cache-Control"] == "no-store"


# endregion
# region search


async def test_search_finds_a_message_with_the_match_marked(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, http: aiohttp.ClientSession
) -> None:
    desk = await start_desk(start_backline, matrix_user)
    room, session_id = await open_session(
        desk.backline, desk.group, desk.agent, desk.expert, "Card declined at checkout"
    )
    await say(desk.backline, desk.expert, room, "Issue a chargeback reversal in the console.")

    results = await search(http, desk, q="chargeback")

    assert len(results) == 1
    hit = results[0]
    assert hit["session_id"] == session_id
    assert hit["group"] == desk.group
    assert hit["agent"] == desk.agent.user_id
    assert hit["experts"] == [desk.expert.user_id]
    assert hit["room_id"] == room
    assert hit["sender"] == desk.expert.user_id
    assert "<mark>chargeback</mark>" in hit["snippet"]
    assert hit["started_at"].endswith("Z")
    assert datetime.fromisoformat(hit["sent_at"]) >= datetime.fromisoformat(hit["started_at"])


async def test_search_without_words_lists_sessions(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, http: aiohttp.ClientSession
) -> None:
    desk = await start_desk(start_backline, matrix_user)
    _, session_id = await open_session(
        desk.backline, desk.group, desk.agent, desk.expert, "Where is the invoice archive?"
    )

    results = await search(http, desk, group=desk.group)

    assert [hit["session_id"] for hit in results] == [session_id]
    assert "invoice archive" in results[0]["snippet"]


async def test_filters_narrow_by_group_agent_expert_and_time(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, http: aiohttp.ClientSession
) -> None:
    other_agent, other_expert = await asyncio.gather(matrix_user("agent"), matrix_user("expert"))
    other_group = unique_group_id("archiveb")
    desk = await start_desk(start_backline, matrix_user, [(other_group, other_expert)])
    room_a, session_a = await open_session(
        desk.backline, desk.group, desk.agent, desk.expert, "Ledger question A"
    )
    room_b, session_b = await open_session(
        desk.backline, other_group, other_agent, other_expert, "Ledger question B"
    )
    await say(desk.backline, desk.expert, room_a, "The ledger balances for A.")
    await say(desk.backline, other_expert, room_b, "The ledger balances for B.")
    today = datetime.now(UTC).date()

    def sessions(results: list[dict[str, Any]]) -> set[int]:
        return {hit["session_id"] for hit in results}

    assert sessions(await search(http, desk, q="balances")) == {session_a, session_b}
    assert sessions(await search(http, desk, q="balances", group=other_group)) == {session_b}
    assert sessions(await search(http, desk, q="balances", agent=desk.agent.user_id)) == {
        session_a
    }
    assert sessions(await search(http, desk, q="balances", expert=other_expert.user_id)) == {
        session_b
    }
    assert sessions(await search(http, desk, q="balances", until=today.isoformat())) == {
        session_a,
        session_b,
    }
    yesterday = (today - timedelta(days=1)).isoformat()
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert await search(http, desk, q="balances", until=yesterday) == []
    assert await search(http, desk, q="balances", since=tomorrow) == []

    # since is inclusive and until exclusive, to the millisecond of the message.
    hit = (await search(http, desk, q="balances", group=desk.group))[0]
    exact = await search(http, desk, q="balances", group=desk.group, since=hit["sent_at"])
    before = await search(http, desk, q="balances", group=desk.group, until=hit["sent_at"])
    assert [h["event_id"] for h in exact] == [hit["event_id"]]
    assert before == []


async def test_cursor_pages_are_disjoint_and_cover_every_hit(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, http: aiohttp.ClientSession
) -> None:
    desk = await start_desk(start_backline, matrix_user)
    room, _ = await open_session(
        desk.backline, desk.group, desk.agent, desk.expert, "Many answers"
    )
    texts = [f"reconciliation step {n}" for n in range(7)]
    await say(desk.backline, desk.expert, room, *texts)

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params = {"q": "reconciliation", "limit": "3"} | ({"cursor": cursor} if cursor else {})
        answer = await call(
            http, desk.backline, "GET", "/api/v1/sessions", desk.officer, params=params
        )
        assert answer.status == 200, answer.text
        pages.append([hit["event_id"] for hit in answer.body["results"]])
        cursor = answer.body["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 10, "the cursor never ends"

    seen = [event_id for page in pages for event_id in page]
    assert [len(page) for page in pages] == [3, 3, 1]
    assert len(set(seen)) == len(seen) == 7


async def test_hostile_queries_never_fail_the_server(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, http: aiohttp.ClientSession
) -> None:
    desk = await start_desk(start_backline, matrix_user)
    room, _ = await open_session(
        desk.backline, desk.group, desk.agent, desk.expert, "Something to search"
    )
    await say(desk.backline, desk.expert, room, "refund the order please")
    raw = URL(desk.backline.url + "/api/v1/sessions?q=%FF%FE%ED%A0%80refund", encoded=True)

    for query in HOSTILE_QUERIES:
        for params in ({"q": query}, {"q": query, "group": query, "agent": query}):
            answer = await call(
                http, desk.backline, "GET", "/api/v1/sessions", desk.officer, params=params
            )
            assert answer.status in (200, 400), (query[:40], answer.text)
    answer = await call(http, desk.backline, "GET", raw, desk.officer)
    assert answer.status in (200, 400), answer.text
    assert len(await search(http, desk, q="refund")) == 1


async def test_bad_parameters_are_refused_by_name(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, http: aiohttp.ClientSession
) -> None:
    desk = await start_desk(start_backline, matrix_user)
    bad = [
        ("/api/v1/sessions?since=yesterday", "since"),
        ("/api/v1/sessions?until=2026-13-01", "until"),
        ("/api/v1/sessions?limit=0", "limit"),
        ("/api/v1/sessions?limit=101", "limit"),
        ("/api/v1/sessions?limit=ten", "limit"),
        ("/api/v1/sessions?q=x&cursor=garbage!", "cursor"),
        ("/api/v1/access-log?before=-1", "before"),
        ("/api/v1/sessions/1/export?format=pdf", "format"),
    ]

    for path, name in bad:
        answer = await call(http, desk.backline, "GET", path, desk.officer)

        assert answer.status == 400, (path, answer.text)
        assert answer.body["errcode"] == "M_INVALID_PARAM"
        assert name in answer.body["error"]
    for path in ("/api/v1/sessions/abc", "/api/v1/sessions/99999999", "/api/v1/sessions/1e3"):
        answer = await call(http, desk.backline, "GET", path, desk.officer)
        assert (answer.status, answer.body["errcode"]) == (404, "M_NOT_FOUND"), path


# endregion
# region transcripts and exports


async def test_xss_in_messages_is_escaped_in_snippets_and_inert_in_exports(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, http: aiohttp.ClientSession
) -> None:
    desk = await start_desk(start_backline, matrix_user)
    room, session_id = await open_session(
        desk.backline, desk.group, desk.agent, desk.expert, "<b>bold</b> question"
    )
    plain = await desk.agent.send_text(room, XSS_BODY)
    formatted = await desk.expert.client.send_message_event(
        room,
        EventType.ROOM_MESSAGE,
        {
            "msgtype": "m.text",
            "body": "formatted xsscanary",
            "format": "org.matrix.custom.html",
            "formatted_body": XSS_FORMATTED,
        },
    )
    await wait_archived(desk.backline, plain, formatted)

    results = await search(http, desk, q="xsscanary")
    export = await call(
        http,
        desk.backline,
        "GET",
        f"/api/v1/sessions/{session_id}/export?format=html",
        desk.officer,
    )

    assert {hit["event_id"] for hit in results} == {plain, formatted}
    for hit in results:
        assert_inert(hit["snippet"])
        assert markup_of(hit["snippet"]).tags == ["mark"]
    assert "&lt;script&gt;" in next(h for h in results if h["event_id"] == plain)["snippet"]
    assert export.status == 200, export.text
    assert export.headers["Content-Type"].startswith("text/html")
    assert export.headers["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'"
    )
    assert export.headers["Content-Disposition"] == (
        f'attachment; filename="session-{session_id}.html"'
    )
    assert "xsscanary" in export.text
    assert_inert(export.text)


async def test_session_view_and_json_export_hold_every_event(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, http: aiohttp.ClientSession
) -> None:
    desk = await start_desk(start_backline, matrix_user)
    room, session_id = await open_session(
        desk.backline, desk.group, desk.agent, desk.expert, "Export me"
    )
    reply = await desk.expert.send_text(room, "Here is the answer.")
    await wait_archived(desk.backline, reply)

    view = await call(http, desk.backline, "GET", f"/api/v1/sessions/{session_id}", desk.officer)
    export = await call(
        http, desk.backline, "GET", f"/api/v1/sessions/{session_id}/export", desk.officer
    )

    assert view.status == 200, view.text
    assert view.body["session"]["session_id"] == session_id
    assert view.body["session"]["claimed_by"] == [desk.expert.user_id]
    assert reply in [event["event_id"] for event in view.body["events"]]
    assert export.status == 200, export.text
    assert export.body == view.body
    assert export.headers["Content-Disposition"] == (
        f'attachment; filename="session-{session_id}.json"'
    )
    assert token_of(desk.officer) not in export.text


# endregion
# region access log and holds


async def test_access_log_lists_the_search_view_and_export(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, http: aiohttp.ClientSession
) -> None:
    desk = await start_desk(start_backline, matrix_user)
    _, session_id = await open_session(
        desk.backline, desk.group, desk.agent, desk.expert, "Audit me"
    )
    officer = desk.officer
    await search(http, desk, q="audit", group=desk.group)
    await call(http, desk.backline, "GET", f"/api/v1/sessions/{session_id}", officer)
    await call(
        http, desk.backline, "GET", f"/api/v1/sessions/{session_id}/export?format=html", officer
    )

    log = await call(http, desk.backline, "GET", "/api/v1/access-log", officer)
    again = await call(http, desk.backline, "GET", "/api/v1/access-log?limit=1", officer)

    assert log.status == 200, log.text
    entries = [(e["actor"], e["action"], e["target"]) for e in log.body["entries"]]
    assert entries[:3] == [
        (officer.user_id, "export", str(session_id)),
        (officer.user_id, "view", str(session_id)),
        (officer.user_id, "search", "audit"),
    ]
    search_entry = log.body["entries"][2]
    assert search_entry["details"]["group"] == desk.group
    assert again.body["entries"][0]["action"] == "access-log"
    assert again.body["next_before"] == again.body["entries"][0]["id"]


async def test_holds_are_placed_listed_and_released(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, http: aiohttp.ClientSession
) -> None:
    desk = await start_desk(start_backline, matrix_user)
    _, session_id = await open_session(
        desk.backline, desk.group, desk.agent, desk.expert, "Keep me"
    )
    officer, backline = desk.officer, desk.backline
    hold = {"kind": "session", "value": str(session_id), "reason": "litigation 42"}

    placed = await call(http, backline, "POST", "/api/v1/holds", officer, json=hold)
    listed = await call(http, backline, "GET", "/api/v1/holds", officer)
    released = await call(http, backline, "DELETE", f"/api/v1/holds/{placed.body['id']}", officer)
    after = await call(http, backline, "GET", "/api/v1/holds", officer)
    history = await call(http, backline, "GET", "/api/v1/holds?released=true", officer)
    twice = await call(http, backline, "DELETE", f"/api/v1/holds/{placed.body['id']}", officer)

    assert placed.status == 201, placed.text
    assert placed.body["kind"] == "session"
    assert placed.body["value"] == str(session_id)
    assert placed.body["created_by"] == officer.user_id
    assert [h["id"] for h in listed.body["holds"]] == [placed.body["id"]]
    assert released.status == 200, released.text
    assert released.body["released_by"] == officer.user_id
    assert released.body["released_at"] is not None
    assert after.body["holds"] == []
    assert [h["id"] for h in history.body["holds"]] == [placed.body["id"]]
    assert (twice.status, twice.body["errcode"]) == (404, "M_NOT_FOUND")


async def test_bad_hold_requests_are_refused(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, http: aiohttp.ClientSession
) -> None:
    desk = await start_desk(start_backline, matrix_user)
    officer, backline = desk.officer, desk.backline
    bodies = [
        ({"kind": "room", "value": "x", "reason": "r"}, 400, "M_INVALID_PARAM"),
        ({"kind": "agent", "value": "not-a-user", "reason": "r"}, 400, "M_INVALID_PARAM"),
        ({"kind": "group", "value": desk.group, "reason": ""}, 400, "M_INVALID_PARAM"),
        ({"kind": "session", "value": "99999", "reason": "r"}, 404, "M_NOT_FOUND"),
        (["kind", "session"], 400, "M_BAD_JSON"),
    ]

    malformed = await call(
        http, backline, "POST", "/api/v1/holds", officer, data=b"{not json", headers={}
    )
    assert (malformed.status, malformed.body["errcode"]) == (400, "M_NOT_JSON")
    for body, status, errcode in bodies:
        answer = await call(http, backline, "POST", "/api/v1/holds", officer, json=body)
        assert (answer.status, answer.body["errcode"]) == (status, errcode), body
    missing = await call(http, backline, "DELETE", "/api/v1/holds/12345", officer)
    assert (missing.status, missing.body["errcode"]) == (404, "M_NOT_FOUND")


# endregion
