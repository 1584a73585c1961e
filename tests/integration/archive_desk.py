"""A help desk with archived sessions, and an HTTP client for the archive API, for its tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import aiohttp
from mautrix.types import EventID, RoomID
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
