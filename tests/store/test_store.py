"""The store on SQLite and PostgreSQL: migrations, version guard, deduplication."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from mautrix.util.async_db import Database

from appservice.config import config_from_dict
from appservice.db import connection, open_database, transaction
from appservice.db import dm_rooms as dm_rooms_db
from appservice.db import events as events_db
from appservice.db import offers as offers_db
from appservice.db import sessions as sessions_db
from appservice.db.database import build_upgrade_table
from appservice.db.delivery import Delivery, store_delivery
from appservice.errors import DatabaseError
from appservice.matrix.transactions import BULK_EVENTS, TransactionHandler
from appservice.routing.inbound import Inbound
from tests.store.archive_data import archived_session

TABLES = {
    "appservice_txn",
    "room_chain",
    "message_text",
    "archive_media",
    "legal_hold",
    "archive_access",
    "web_session",
    "room_event",
    "group_state",
    "dm_room",
    "session",
    "offer",
    "routing_decision",
    "presence",
    "outbox",
    "message_text_queue",
    "chain_gap",
}


CONFIG = config_from_dict({"appservice": {"as_token": "a" * 43, "hs_token": "h" * 43}})


def event(event_id: str) -> dict[str, object]:
    return {
        "event_id": event_id,
        "room_id": "!room:localhost",
        "sender": "@agent:localhost",
        "type": "m.room.message",
        "origin_server_ts": 1,
        "content": {"body": "hello"},
    }


async def test_migrations_from_empty_create_every_table(db: Database) -> None:
    for table in TABLES:
        assert await db.table_exists(table), table
    version = await db.fetchval("SELECT version FROM backline_version")
    assert version == len(build_upgrade_table(db.scheme).upgrades)


async def test_reopening_an_up_to_date_database_keeps_its_data(database_url: str) -> None:
    first = await open_database(database_url)
    async with transaction(first) as conn:
        await events_db.store_events(conn, [event("$kept")])
    await first.stop()

    second = await open_database(database_url)
    async with connection(second) as conn:
        assert await events_db.count_events(conn, "$kept") == 1
    await second.stop()


async def test_a_newer_schema_is_refused(database_url: str) -> None:
    db = await open_database(database_url)
    await db.execute("UPDATE backline_version SET version=version+1")
    await db.stop()

    with pytest.raises(DatabaseError, match="newer than this Backline") as raised:
        await open_database(database_url)
    assert "upgrade Backline" in str(raised.value)


async def test_a_database_owned_by_another_program_is_refused(database_url: str) -> None:
    db = await open_database(database_url)
    await db.execute("UPDATE database_owner SET owner='someone-else'")
    await db.stop()

    with pytest.raises(DatabaseError, match="belongs to another program"):
        await open_database(database_url)


async def test_an_event_delivered_twice_is_stored_once(db: Database) -> None:
    async with transaction(db) as conn:
        first = await events_db.store_events(conn, [event("$twice"), event("$twice")])
        second = await events_db.store_events(conn, [event("$twice")])

        assert [e["event_id"] for e in first] == ["$twice"]
        assert second == []
        assert await events_db.count_events(conn, "$twice") == 1


async def test_a_large_transaction_is_stored_once_and_searchable_soon_after_its_commit(
    db: Database,
) -> None:
    handler = TransactionHandler(db, Inbound(CONFIG), asyncio.Lock(), lambda acted: None)
    body = json.dumps({"events": [event(f"$bulk{n}") for n in range(BULK_EVENTS)]}).encode()

    stored = await handler.handle("1", body)
    await handler.indexer.idle()
    replayed = await handler.handle("1", body)

    async with connection(db) as conn:
        searchable = await conn.fetchval("SELECT COUNT(*) FROM message_text")
        queued = await conn.fetchval("SELECT COUNT(*) FROM message_text_queue")
    assert (stored, replayed) == (BULK_EVENTS, 0)
    assert (searchable, queued) == (BULK_EVENTS, 0)


async def test_events_lacking_ids_are_skipped_and_the_rest_of_the_transaction_kept(
    db: Database,
) -> None:
    handler = TransactionHandler(db, Inbound(CONFIG), asyncio.Lock(), lambda acted: None)
    broken = [{"event_id": 5}, {**event("$no-room"), "room_id": ""}, "not an event"]
    body = json.dumps({"events": [*broken, event("$whole")]}).encode()

    stored = await handler.handle("1", body)

    async with connection(db) as conn:
        assert await conn.fetchval("SELECT COUNT(*) FROM room_event") == 1
    assert stored == 1


async def test_a_commit_says_whether_the_transaction_acted_on_anything(db: Database) -> None:
    acted: list[bool] = []
    handler = TransactionHandler(db, Inbound(CONFIG), asyncio.Lock(), acted.append)
    elsewhere = {"events": [event("$elsewhere")]}
    presence = {
        "ephemeral": [
            {
                "type": "m.presence",
                "sender": "@expert:localhost",
                "content": {"presence": "online"},
            }
        ]
    }
    invite = {
        "events": [
            {
                **event("$invite"),
                "type": "m.room.member",
                "state_key": "@backline:localhost",
                "content": {"membership": "invite"},
            }
        ]
    }

    for number, body in enumerate([elsewhere, presence, invite]):
        await handler.handle(str(number), json.dumps(body).encode())

    # Only the last two can have queued calls to the homeserver (none for a message in a
    # room Backline has no part in), so only they wake the outbox.
    assert acted == [False, True, True]


async def test_a_transaction_id_reused_with_a_new_body_is_not_a_repeat(db: Database) -> None:
    events = events_db.prepare_events([event("$first")])
    async with transaction(db) as conn:
        first = await store_delivery(conn, Delivery("1", "digest-a"), events, index_now=True)
        repeat = await store_delivery(conn, Delivery("1", "digest-a"), events, index_now=True)
        reused = await store_delivery(
            conn,
            Delivery("1", "digest-b"),
            events_db.prepare_events([event("$new")]),
            index_now=True,
        )
        again = await store_delivery(conn, Delivery("1", "digest-b"), [], index_now=True)

    assert first is not None and [raw["event_id"] for raw in first.fresh] == ["$first"]
    assert repeat is None
    assert reused is not None and [raw["event_id"] for raw in reused.fresh] == ["$new"]
    assert again is None


async def test_a_delivery_names_its_session_and_dm_rooms_and_only_those(db: Database) -> None:
    def message(event_id: str, room_id: str) -> dict[str, object]:
        return {**event(event_id), "room_id": room_id}

    async with transaction(db) as conn:
        _, session_room, _ = await archived_session(conn)
        await dm_rooms_db.upsert_dm(conn, "!dm:localhost", "billing", "@agent:localhost", "joined")
        raws = [
            message("$in-session", session_room),
            message("$in-dm", "!dm:localhost"),
            message("$elsewhere", "!other:localhost"),
        ]
        stored = await store_delivery(
            conn, Delivery("1", "digest"), events_db.prepare_events(raws), index_now=True
        )

    assert stored is not None
    assert [raw["event_id"] for raw in stored.fresh] == ["$in-session", "$in-dm", "$elsewhere"]
    assert stored.known_rooms == {session_room, "!dm:localhost"}


async def test_an_expert_is_offered_a_session_once_and_offers_end_once(db: Database) -> None:
    async with transaction(db) as conn:
        session_id = await sessions_db.create_session(
            conn,
            group_id="billing",
            agent="@agent:localhost",
            question="Refund?",
            preferences={},
            needed=1,
            alias_prefix="backline-session-",
        )
        added = [await offers_db.add_offer(conn, session_id, "@alice:localhost") for _ in range(2)]
        ended = [
            await offers_db.end_offer(conn, session_id, "@alice:localhost", state)
            for state in ("accepted", "withdrawn")
        ]
        offer = await offers_db.get_offer(conn, session_id, "@alice:localhost")

    assert added == [True, False]
    assert ended == [True, False]
    assert offer is not None and offer.state == "accepted"


async def test_a_session_moves_state_only_from_the_states_named(db: Database) -> None:
    async with transaction(db) as conn:
        session_id = await sessions_db.create_session(
            conn,
            group_id="billing",
            agent="@agent:localhost",
            question="Refund?",
            preferences={"languages": ["de"]},
            needed=1,
            alias_prefix="backline-session-",
        )
        claimed = await sessions_db.set_state(conn, session_id, "claimed", only_from=("opening",))
        again = await sessions_db.set_state(conn, session_id, "claimed", only_from=("opening",))
        session = await sessions_db.get_session(conn, session_id)

    assert (claimed, again) == (True, False)
    assert session is not None and session.state == "claimed" and session.claimed_at
    assert session.preferences == {"languages": ["de"]}
    assert session.room_alias is not None
    assert session.room_alias.startswith(f"backline-session-{session_id}-")


async def test_an_sqlite_transaction_waits_for_another_writer_instead_of_failing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.db"
    db = await open_database(f"sqlite:{path}")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute(
        "INSERT INTO archive_access (at, actor, action, target, details)"
        " VALUES (1, 'cli:root', 'hold', 'x', '{}')"
    )

    async def read_then_write() -> int:
        async with transaction(db) as conn:
            seen = int(await conn.fetchval("SELECT COUNT(*) FROM archive_access"))
            await conn.execute(
                "INSERT INTO archive_access (at, actor, action, target, details)"
                " VALUES (2, '@carol:localhost', 'search', 'y', '{}')"
            )
            return seen

    writer = asyncio.create_task(read_then_write())
    await asyncio.sleep(0.3)
    other.execute("COMMIT")
    seen = await writer

    assert seen == 1
    assert other.execute("SELECT COUNT(*) FROM archive_access").fetchone() == (2,)
    other.close()
    await db.stop()
