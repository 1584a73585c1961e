"""Ingest: synthetic transactions PUT into a running Backline, against a bare insert.

    .venv/bin/python -m bench.ingest [--transactions 500] [--engine sqlite|postgres]

A throwaway Synapse and `backline` (its own process) run on 127.0.0.1 with a fresh database.
The benchmark PUTs transactions of 100 `m.room.message` events (distinct event IDs, 10 rooms
per transaction out of 500) with the homeserver token, one at a time as a homeserver does;
Backline answers each only once it is committed. Two clocks: one stops when the last PUT
is answered (every event committed: stored and chained), the other when every message is
also searchable (a transaction this large has its texts indexed right after its commit).
Events per second are compared with a bare `executemany` of the
same rows into a table like `room_event` (same columns and indexes), one transaction per 100
rows, in a fresh database of the same engine; and with the same plus the message text into a
table indexed for search as Backline's is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from mautrix.util.async_db import Database

from appservice.archive.chain import GENESIS, canonical_json, link_hash
from appservice.db import open_database, transaction
from bench.common import ENGINES, fresh_database, print_table, synapse_and_backline

PER_TRANSACTION = 100
ROOMS = 500
ROOMS_PER_TRANSACTION = 10
TARGET = 0.7
WARM_UP = 3
# How often to look whether the last messages are searchable yet, once every PUT is answered.
POLL_SECONDS = 0.005
# fmt: off
_WORDS = [
    "refund", "invoice", "customer", "payment", "charged", "twice", "portal", "account", "card",
    "bank", "transfer", "please", "check", "order", "number", "delivery", "address", "update",
    "cancel", "subscription", "plan", "upgrade", "discount", "code", "expired", "tomorrow",
    "today", "thanks", "hello", "could", "you", "help", "with", "this", "issue", "again",
]
# fmt: on


def transactions(count: int, seed: int = 3) -> list[list[dict[str, Any]]]:
    """`count` transactions of 100 distinct message events, spread over a few rooms each."""
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    result = []
    for number in range(count):
        events = []
        for index in range(PER_TRANSACTION):
            room = (number * ROOMS_PER_TRANSACTION + index % ROOMS_PER_TRANSACTION) % ROOMS
            events.append(
                {
                    "event_id": f"$ingest-{number}-{index}-{rng.getrandbits(64):x}",
                    "room_id": f"!ingestroom{room}",
                    "sender": f"@user{rng.randrange(200)}:localhost",
                    "type": "m.room.message",
                    "origin_server_ts": now + number * PER_TRANSACTION + index,
                    "content": {
                        "msgtype": "m.text",
                        "body": " ".join(rng.choices(_WORDS, k=rng.randint(5, 20))),
                    },
                    "unsigned": {"age": rng.randrange(50)},
                }
            )
        result.append(events)
    return result


_SEARCHABLE = (
    "SELECT COUNT(*) FROM message_text m JOIN room_event e ON e.seq = m.seq"
    " WHERE e.event_id LIKE $1"
)


async def through_backline(
    engine: str, batches: list[list[dict[str, Any]]]
) -> tuple[float, float]:
    """Events per second through a running Backline, PUT by PUT: committed, and searchable."""
    total = len(batches) * PER_TRANSACTION
    with tempfile.TemporaryDirectory(prefix="backline-bench-") as work:
        async with (
            fresh_database(engine, Path(work)) as url,
            synapse_and_backline(url) as stack,
            aiohttp.ClientSession() as http,
            _database(url) as db,
        ):
            headers = {"Authorization": f"Bearer {stack.config.appservice.hs_token}"}
            bodies = [json.dumps({"events": events}).encode() for events in batches]
            base = f"{stack.backline_url}/_matrix/app/v1/transactions/bench-{engine}-"

            async def put(number: int) -> None:
                async with http.put(base + str(number), data=bodies[number], headers=headers) as r:
                    if r.status != 200:
                        raise RuntimeError(f"transaction {number}: {r.status} {await r.text()}")

            for number in range(WARM_UP):
                await put(number)
            await _wait_until_searchable(db, WARM_UP * PER_TRANSACTION)
            started = time.perf_counter()
            for number in range(WARM_UP, len(bodies)):
                await put(number)
            committed = time.perf_counter() - started
            await _wait_until_searchable(db, total)
            searchable = time.perf_counter() - started

            stored = await db.fetchval(
                "SELECT COUNT(*) FROM room_event WHERE event_id LIKE $1", _OURS
            )
            if stored != total:
                raise RuntimeError(f"{stored} events stored of {total}")
    counted = (len(bodies) - WARM_UP) * PER_TRANSACTION
    return counted / committed, counted / searchable


_OURS = "$ingest-%"


@asynccontextmanager
async def _database(url: str) -> AsyncIterator[Database]:
    """The benchmark's own connection to Backline's database, opened before the clock starts."""
    db = await open_database(url)
    try:
        yield db
    finally:
        await db.stop()


async def _wait_until_searchable(db: Database, count: int) -> None:
    """Wait until `count` of the benchmark's messages are in the search index."""
    # Polling: Backline runs in another process, so there is nothing to wait on.
    async with asyncio.timeout(60):
        while True:
            if int(await db.fetchval(_SEARCHABLE, _OURS)) >= count:
                return
            await asyncio.sleep(POLL_SECONDS)


def bare_rows(batches: list[list[dict[str, Any]]]) -> list[list[tuple[Any, ...]]]:
    """The rows Backline would write, hashes and all, computed before the clock starts."""
    tips: dict[str, tuple[int, str]] = {}
    seq = 0
    result = []
    for events in batches:
        rows = []
        for event in events:
            index, previous = tips.get(event["room_id"], (-1, GENESIS))
            canonical = canonical_json(event)
            digest = link_hash(previous, canonical)
            tips[event["room_id"]] = (index + 1, digest)
            seq += 1
            # The 13 columns of the insert, then the body for the search table.
            rows.append(
                (
                    seq,
                    event["event_id"],
                    event["room_id"],
                    event["sender"],
                    event["type"],
                    None,
                    event["origin_server_ts"],
                    None,
                    canonical,
                    0,
                    index + 1,
                    previous,
                    digest,
                    event["content"]["body"],
                )
            )
        result.append(rows)
    return result


_EVENT_TABLE = {
    "sqlite": "seq INTEGER PRIMARY KEY, origin_ts INTEGER NOT NULL, session_id INTEGER,"
    " received_at INTEGER NOT NULL, chain_index INTEGER NOT NULL,",
    "postgres": "seq BIGINT PRIMARY KEY, origin_ts BIGINT NOT NULL, session_id BIGINT,"
    " received_at BIGINT NOT NULL, chain_index BIGINT NOT NULL,",
}
_SEARCH_TABLES = {
    "sqlite": [
        "CREATE TABLE bench_text (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)",
        "CREATE VIRTUAL TABLE bench_fts USING fts5 (body, content='bench_text',"
        " content_rowid='seq', tokenize='unicode61 remove_diacritics 2')",
        "CREATE TRIGGER bench_text_insert AFTER INSERT ON bench_text BEGIN"
        " INSERT INTO bench_fts (rowid, body) VALUES (new.seq, new.body); END",
    ],
    "postgres": [
        "CREATE TABLE bench_text (seq BIGINT PRIMARY KEY, body TEXT NOT NULL,"
        " tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED)",
        "CREATE INDEX bench_text_tsv ON bench_text USING GIN (tsv)",
    ],
}


async def _create_bare_tables(db: Database, with_search: bool) -> None:
    # room_event's columns and indexes (schema/*/001-initial.sql), nothing else.
    await db.execute(
        f"CREATE TABLE bench_event ({_EVENT_TABLE[db.scheme.value]} event_id TEXT NOT NULL UNIQUE,"
        " room_id TEXT NOT NULL, sender TEXT NOT NULL, type TEXT NOT NULL, state_key TEXT,"
        " event_json TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,"
        " redacted_by TEXT, redacted_at BIGINT)"
    )
    await db.execute("CREATE UNIQUE INDEX bench_event_chain ON bench_event (room_id, chain_index)")
    await db.execute("CREATE INDEX bench_event_session ON bench_event (session_id, seq)")
    for statement in _SEARCH_TABLES[db.scheme.value] if with_search else []:
        await db.execute(statement)


async def bare_insert(
    engine: str, batches: list[list[tuple[Any, ...]]], with_search: bool
) -> float:
    """Events per second of a bare executemany of the same rows, one transaction per batch."""
    with tempfile.TemporaryDirectory(prefix="backline-bench-") as work:
        async with fresh_database(engine, Path(work)) as url:
            db = await open_database(url)
            try:
                await _create_bare_tables(db, with_search)
                started = time.perf_counter()
                for rows in batches:
                    async with transaction(db) as conn:
                        await conn.executemany(
                            "INSERT INTO bench_event (seq, event_id, room_id, sender, type,"
                            " state_key, origin_ts, session_id, event_json, received_at,"
                            " chain_index, prev_hash, hash)"
                            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                            [row[:13] for row in rows],
                        )
                        if with_search:
                            await conn.executemany(
                                "INSERT INTO bench_text (seq, body) VALUES ($1, $2)",
                                [(row[0], row[13]) for row in rows],
                            )
                elapsed = time.perf_counter() - started
            finally:
                await db.stop()
    return sum(len(rows) for rows in batches) / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=500)
    parser.add_argument("--engine", choices=ENGINES, action="append")
    args = parser.parse_args()

    batches = transactions(args.transactions + WARM_UP)
    rows = bare_rows(batches[WARM_UP:])
    table = []
    for engine in args.engine or ENGINES:
        print(f"{engine}: bare inserts ...", flush=True)
        bare = await bare_insert(engine, rows, with_search=False)
        indexed = await bare_insert(engine, rows, with_search=True)
        print(f"{engine}: Synapse, Backline and {args.transactions} transactions ...", flush=True)
        rates = await through_backline(engine, batches)
        clocks = ("PUT answered (committed)", "PUT to searchable")
        for clock, ours in zip(clocks, rates, strict=True):
            table.append(
                [
                    engine,
                    clock,
                    args.transactions * PER_TRANSACTION,
                    ours,
                    bare,
                    f"{ours / bare:.2f}x",
                    indexed,
                    f"{ours / indexed:.2f}x",
                    f">= {TARGET}x",
                    "ok" if ours / bare >= TARGET else "MISSED",
                ]
            )
    print_table(
        "Ingest, events per second (transactions of 100 events)",
        [
            "engine",
            "Backline clock",
            "events",
            "Backline",
            "bare insert",
            "ratio",
            "bare + search index",
            "ratio",
            "target",
            "",
        ],
        table,
    )


if __name__ == "__main__":
    asyncio.run(main())
