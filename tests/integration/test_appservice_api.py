"""The appservice API as the homeserver sees it: tokens, replays, failures and retries."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sqlite3
from typing import Any

import aiohttp
import asyncpg
import pytest

from appservice.db import connection
from appservice.db.events import count_events
from tests.databases import POSTGRES_ADMIN_URL
from tests.integration.conftest import (
    BacklineFactory,
    RunningBackline,
    join_roster,
    unique_group_id,
)
from tests.integration.matrix_user import MatrixUserFactory, SynapseWithAppservice

pytestmark = pytest.mark.integration


def message_event(n: int, room: str = "!synthetic:localhost") -> dict[str, Any]:
    return {
        "event_id": f"$synthetic-{n}",
        "room_id": room,
        "sender": "@someone:localhost",
        "type": "m.room.message",
        "origin_server_ts": 1_700_000_000_000 + n,
        "content": {"msgtype": "m.text", "body": f"message {n}"},
    }


async def put_transaction(
    backline: RunningBackline, txn_id: str, body: object, token: str | None
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = f"{backline.url}/_matrix/app/v1/transactions/{txn_id}"
    data = io.BytesIO(json.dumps(body).encode())
    async with aiohttp.ClientSession() as http, http.put(url, data=data, headers=headers) as resp:
        return resp.status, await resp.json()


async def stored_count(backline: RunningBackline, event_id: str) -> int:
    async with connection(backline.db) as conn:
        return await count_events(conn, event_id)


async def test_missing_token_is_401_and_wrong_token_is_403(
    start_backline: BacklineFactory,
) -> None:
    backline = await start_backline([])
    body = {"events": [message_event(1)]}

    missing = await put_transaction(backline, "t1", body, None)
    wrong = await put_transaction(backline, "t1", body, "not-the-token")

    assert missing == (401, {"errcode": "M_MISSING_TOKEN", "error": "missing homeserver token"})
    assert wrong == (403, {"errcode": "M_FORBIDDEN", "error": "wrong homeserver token"})
    assert await stored_count(backline, "$synthetic-1") == 0


async def test_replayed_transaction_stores_each_event_once(
    start_backline: BacklineFactory, synapse: SynapseWithAppservice
) -> None:
    backline = await start_backline([])
    body = {"events": [message_event(1), message_event(2)]}

    first = await put_transaction(backline, "replay", body, synapse.hs_token)
    again = await put_transaction(backline, "replay", body, synapse.hs_token)
    # Synapse restarts its IDs after its own restart; the same events under a new ID too.
    renumbered = await put_transaction(backline, "other", body, synapse.hs_token)

    assert first == again == renumbered == (200, {})
    assert await stored_count(backline, "$synthetic-1") == 1
    assert await stored_count(backline, "$synthetic-2") == 1


async def test_malformed_transactions_are_refused_with_400(
    start_backline: BacklineFactory, synapse: SynapseWithAppservice
) -> None:
    backline = await start_backline([])

    not_object = await put_transaction(backline, "bad1", ["events"], synapse.hs_token)
    not_list = await put_transaction(backline, "bad2", {"events": "x"}, synapse.hs_token)

    assert not_object[0] == 400 and not_object[1]["errcode"] == "M_NOT_JSON"
    assert not_list[0] == 400


async def test_text_json_allows_but_unicode_cannot_hold_is_archived_not_refused_forever(
    start_backline: BacklineFactory, synapse: SynapseWithAppservice
) -> None:
    backline = await start_backline([])
    surrogate, huge = message_event(31), message_event(32)
    surrogate["content"]["body"] = "half an emoji \ud83d here"
    huge["content"]["amount"] = 2**70
    body = {"events": [surrogate, huge]}

    status, _ = await put_transaction(backline, "odd-text", body, synapse.hs_token)

    assert status == 200
    async with connection(backline.db) as conn:
        rows = await conn.fetch(
            "SELECT event_id, event_json FROM room_event WHERE event_id IN ($1, $2)"
            " ORDER BY event_id",
            "$synthetic-31",
            "$synthetic-32",
        )
        text = await conn.fetchval(
            "SELECT body FROM message_text JOIN room_event USING (seq) WHERE event_id = $1",
            "$synthetic-31",
        )
    kept = {row["event_id"]: json.loads(row["event_json"]) for row in rows}
    assert kept["$synthetic-31"]["content"]["body"] == "half an emoji \ufffd here"
    assert kept["$synthetic-32"]["content"]["amount"] == 2**70
    assert text == "half an emoji \ufffd here"


async def test_a_large_transaction_is_accepted(
    start_backline: BacklineFactory, synapse: SynapseWithAppservice
) -> None:
    backline = await start_backline([])
    big = message_event(7)
    big["content"]["body"] = "x" * 60_000
    body = {"events": [{**big, "event_id": f"$big-{n}"} for n in range(100)]}
    assert len(json.dumps(body)) > 5 * 1024 * 1024

    status, _ = await put_transaction(backline, "big", body, synapse.hs_token)

    assert status == 200
    assert await stored_count(backline, "$big-99") == 1


async def test_health_reports_database_and_homeserver(start_backline: BacklineFactory) -> None:
    backline = await start_backline([])

    async with aiohttp.ClientSession() as http, http.get(f"{backline.url}/health") as resp:
        status, body = resp.status, await resp.json()

    assert status == 200
    assert body == {"status": "ok", "database": "ok", "homeserver": "ok"}


async def rename_table(database_url: str, old: str, new: str) -> None:
    """Change the schema behind Backline's back, as a failing database would look to it."""
    statement = f"ALTER TABLE {old} RENAME TO {new}"
    if database_url.startswith("sqlite:"):
        path = database_url.removeprefix("sqlite:")

        def run() -> None:
            with sqlite3.connect(path, timeout=10) as db:
                db.execute(statement)

        await asyncio.to_thread(run)
    else:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()


async def test_database_failure_answers_5xx_and_the_homeserver_retries(
    start_backline: BacklineFactory,
    matrix_user: MatrixUserFactory,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent, expert = await asyncio.gather(matrix_user("agent"), matrix_user("expert"))
    group = unique_group_id("outage")
    backline = await start_backline([{"id": group, "members": [expert.user_id]}])
    await join_roster(expert, backline, group)
    group_user = backline.group_user(group)
    dm = await agent.open_dm(group_user)

    await rename_table(database_url, "room_event", "room_event_away")
    with caplog.at_level(logging.ERROR, logger="backline.matrix.server"):
        question = await agent.send_text(dm, "Asked while the database was failing")
        for _ in range(100):
            if "the homeserver will retry" in caplog.text:
                break
            await asyncio.sleep(0.05)
    assert "the homeserver will retry" in caplog.text
    assert not [i for i in agent.invites_seen() if i.sender == group_user]

    await rename_table(database_url, "room_event_away", "room_event")
    await backline.app.matrix.ping()

    invite = await agent.wait_for_invite(timeout=30, predicate=lambda i: i.sender == group_user)
    assert invite.room_name is not None and "Asked while the database" in invite.room_name
    assert await stored_count(backline, question) == 1


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_after_a_database_outage_the_held_back_events_arrive(
    start_backline: BacklineFactory,
    matrix_user: MatrixUserFactory,
    database_url: str,
) -> None:
    agent, expert = await asyncio.gather(matrix_user("agent"), matrix_user("expert"))
    group = unique_group_id("pgdown")
    backline = await start_backline([{"id": group, "members": [expert.user_id]}])
    await join_roster(expert, backline, group)
    group_user = backline.group_user(group)
    dm = await agent.open_dm(group_user)
    name = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)

    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await agent.send_text(dm, "Asked while PostgreSQL was down")
        await asyncio.sleep(3)
        assert not [i for i in agent.invites_seen() if i.sender == group_user]
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()

    invite = await agent.wait_for_invite(timeout=30, predicate=lambda i: i.sender == group_user)
    assert invite.room_name is not None and "Asked while PostgreSQL was down" in invite.room_name


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_presence_missed_during_a_database_outage_is_read_again_and_routes_waiting_requests(
    start_backline: BacklineFactory,
    matrix_user: MatrixUserFactory,
    database_url: str,
) -> None:
    agent, expert = await asyncio.gather(matrix_user("agent"), matrix_user("expert"))
    group = unique_group_id("missed")
    backline = await start_backline([{"id": group, "members": [expert.user_id]}])
    await join_roster(expert, backline, group)
    await expert.set_presence("online", "busy")
    group_user = backline.group_user(group)
    dm = await agent.open_dm(group_user)
    await agent.send_text(dm, "Who can look at invoice 12?")
    await agent.wait_for_message(dm, predicate=lambda body, _: "available right now" in body)
    room = (await agent.wait_for_invite(predicate=lambda i: i.sender == group_user)).room_id
    name = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)

    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        # The update reaches Backline in a transaction that fails, and is not sent again.
        await expert.set_presence("online", "free now")
        await asyncio.sleep(3)
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()

    offer = await expert.wait_for_invite(timeout=30, predicate=lambda i: i.room_id == room)
    assert offer.sender == group_user
