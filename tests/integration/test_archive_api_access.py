"""The archive API against a real Synapse: who may call it, holds, and the access log."""

from __future__ import annotations

import aiohttp
import pytest

from tests.integration.archive_desk import call, open_session, say, search, start_desk
from tests.integration.conftest import BacklineFactory
from tests.integration.matrix_user import MatrixUserFactory

pytestmark = pytest.mark.integration


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
