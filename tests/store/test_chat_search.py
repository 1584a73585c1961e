"""The `!search` answer, on both engines: the newest hits, what is left, and the access log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mautrix.util.async_db import Database

from appservice.archive.access import read_access_log
from appservice.archive.chat import SHOWN, USAGE, search_reply
from appservice.db import open_database, transaction
from appservice.db.events import store_events
from appservice.db.sessions import create_session, set_room
from tests.databases import ENGINES, fresh_database

OFFICER = "@carol:localhost"


@pytest.fixture(params=ENGINES)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with fresh_database(request.param, tmp_path) as url:
        database = await open_database(url)
        yield database
        await database.stop()


async def archive_messages(db: Database, bodies: list[str]) -> None:
    async with transaction(db) as conn:
        session_id = await create_session(
            conn,
            group_id="billing",
            agent="@agent:localhost",
            question="?",
            preferences={},
            needed=1,
            alias_prefix="s-",
        )
        await set_room(conn, session_id, "!room")
        await store_events(
            conn,
            [
                {
                    "event_id": f"$m{number}",
                    "room_id": "!room",
                    "sender": "@alice:localhost",
                    "type": "m.room.message",
                    "origin_server_ts": 1_714_572_000_000 + number * 60_000,
                    "content": {"msgtype": "m.text", "body": body},
                }
                for number, body in enumerate(bodies)
            ],
        )


async def test_shows_the_newest_hits_and_counts_the_rest(db: Database) -> None:
    await archive_messages(db, [f"refund number {n}" for n in range(SHOWN + 3)])

    async with transaction(db) as conn:
        reply = await search_reply(conn, OFFICER, "refund")

    lines = reply.splitlines()
    assert lines[0] == "Newest matches for 'refund':"
    assert lines[1].endswith("**refund** number 7")
    assert len(lines) == 1 + SHOWN + 1
    assert lines[-1] == "3 more: use the archive page or `backline search`."


async def test_every_search_is_logged_with_its_asker(db: Database) -> None:
    await archive_messages(db, ["refund"])

    async with transaction(db) as conn:
        await search_reply(conn, OFFICER, "  refund ")
        logged = await read_access_log(conn)

    assert [(e.actor, e.action, e.target) for e in logged] == [(OFFICER, "search", "refund")]
    assert logged[0].details == {"results": 1, "via": "bot"}


async def test_nothing_found_is_said_plainly(db: Database) -> None:
    await archive_messages(db, ["refund"])

    async with transaction(db) as conn:
        reply = await search_reply(conn, OFFICER, "chargeback")

    assert reply == "Nothing in the archive matches 'chargeback'."


async def test_an_empty_search_explains_itself_and_is_not_logged(db: Database) -> None:
    async with transaction(db) as conn:
        reply = await search_reply(conn, OFFICER, "   ")
        logged = await read_access_log(conn)

    assert reply == USAGE
    assert logged == []
