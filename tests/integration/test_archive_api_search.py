"""The archive API against a real Synapse: search, filters, pages, exports."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from mautrix.types import EventType
from yarl import URL

from tests.integration.archive_desk import (
    HOSTILE_QUERIES,
    XSS_BODY,
    XSS_FORMATTED,
    assert_inert,
    call,
    markup_of,
    open_session,
    say,
    search,
    start_desk,
    token_of,
    wait_archived,
)
from tests.integration.conftest import BacklineFactory, unique_group_id
from tests.integration.matrix_user import MatrixUserFactory

pytestmark = pytest.mark.integration


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
