"""Synapse's own search against Backline's archive search, over the same messages.

    .venv/bin/python -m bench.synapse_search [--messages 10000] [--runs 30] [--engine ...]

A throwaway Synapse (SQLite, loopback) and `backline` (its own process, on a fresh database)
start together. The group user creates 10 rooms and invites a user, who joins, then sends the
messages through Synapse (appservice users are not rate limited); Backline archives them from
the transactions Synapse delivers. Then each room becomes a closed session through the store
layer, so that the archive search, which returns hits by session, covers them.

Timed, newest first, 50 per page: Synapse's `POST /_matrix/client/v3/search` (order_by
recent) as the user, Backline's `GET /api/v1/sessions?q=` as the same user holding the
compliance role, and `search_archive` called in-process (no HTTP, no access log) for reference.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from mautrix.util.async_db import Database

from appservice.archive.search import SearchFilters, search_archive
from appservice.db import connection, open_database, transaction
from appservice.db.events import attach_room_to_session
from appservice.db.sessions import create_session, set_room, set_state
from bench.common import (
    ENGINES,
    Stack,
    fresh_database,
    median,
    percentile,
    print_table,
    synapse_and_backline,
    timed,
)
from bench.search import COMMON, MEDIUM, PHRASE, RARE, Corpus

ROOMS = 10
PAGE = 50
SEARCHER = "searcher"
PASSWORD = secrets.token_urlsafe(16)
# Denser than bench.search's per-million rates, so 10,000 messages still hold each kind.
RATES = {RARE: 5e-4, MEDIUM: 1.3e-2, COMMON: 0.15, PHRASE: 1.3e-3}
_txn_ids = itertools.count()


class Homeserver:
    """Calls to Synapse as the appservice's group user or as the searching user."""

    def __init__(self, stack: Stack, http: aiohttp.ClientSession, searcher_token: str) -> None:
        self.base = stack.synapse.url + "/_matrix/client/v3"
        self.http = http
        self.as_token = stack.config.appservice.as_token
        self.group_user = stack.config.group_mxid("bench")
        self.searcher_token = searcher_token

    async def call(
        self, method: str, path: str, body: dict[str, Any], *, as_searcher: bool = False
    ) -> dict[str, Any]:
        token = self.searcher_token if as_searcher else self.as_token
        params = {} if as_searcher else {"user_id": self.group_user}
        async with self.http.request(
            method,
            self.base + path,
            json=body,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            answer: dict[str, Any] = await response.json()
            if response.status != 200:
                raise RuntimeError(f"{method} {path}: {response.status} {answer}")
            return answer

    async def room_with(self, user_id: str, number: int) -> str:
        body = {"preset": "private_chat", "invite": [user_id], "name": f"Bench {number}"}
        room_id = str((await self.call("POST", "/createRoom", body))["room_id"])
        await self.call("POST", f"/join/{quote(room_id)}", {}, as_searcher=True)
        return room_id

    async def send(self, room_id: str, body: str) -> None:
        path = f"/rooms/{quote(room_id)}/send/m.room.message/bench{next(_txn_ids)}"
        await self.call("PUT", path, {"msgtype": "m.text", "body": body})

    async def search(self, text: str) -> int:
        body = {
            "search_categories": {
                "room_events": {
                    "search_term": text,
                    "order_by": "recent",
                    "keys": ["content.body"],
                    "filter": {"limit": PAGE},
                }
            }
        }
        answer = await self.call("POST", "/search", body, as_searcher=True)
        return len(answer["search_categories"]["room_events"]["results"])


async def as_sessions(db: Database, rooms: list[str], agent: str) -> None:
    """Make each room a closed session, as if Backline had opened it, and claim its events.

    Done once Backline is idle: a second process writing to a SQLite archive while Backline
    commits a transaction makes that commit fail (see bench/README.md).
    """
    async with transaction(db) as conn:
        for room_id in rooms:
            session_id = await create_session(
                conn,
                group_id="bench",
                agent=agent,
                question="bench",
                preferences={},
                needed=1,
                alias_prefix="bench-",
            )
            await set_room(conn, session_id, room_id)
            await set_state(conn, session_id, "closed")
            await attach_room_to_session(conn, room_id, session_id)


async def send_all(homeserver: Homeserver, rooms: list[str], corpus: Corpus) -> float:
    """Send every message, one sender per room in parallel; returns messages per second."""

    async def sender(offset: int) -> None:
        for index in range(offset, corpus.messages, len(rooms)):
            await homeserver.send(rooms[offset], corpus.body(index))

    started = time.perf_counter()
    await asyncio.gather(*(sender(offset) for offset in range(len(rooms))))
    return corpus.messages / (time.perf_counter() - started)


async def wait_until_archived(db: Database, sender: str, messages: int) -> None:
    """Poll until every message sent has reached Backline's archive (2 minutes at most)."""
    query = "SELECT COUNT(*) FROM room_event WHERE type = 'm.room.message' AND sender = $1"
    for _ in range(240):
        archived = await db.fetchval(query, sender)
        if archived >= messages:
            print(f"  Backline archived {archived:,} messages", flush=True)
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"Backline archived {archived:,} of {messages:,} messages")


async def bench_engine(engine: str, messages: int, runs: int) -> list[list[object]]:
    corpus = Corpus(messages, rates=RATES)
    searcher_id = f"@{SEARCHER}:localhost"
    with tempfile.TemporaryDirectory(prefix="backline-bench-") as work:
        async with (
            fresh_database(engine, Path(work)) as url,
            synapse_and_backline(url, roles={searcher_id: "compliance"}) as stack,
            aiohttp.ClientSession() as http,
        ):
            _, token = await stack.synapse.register_user(SEARCHER, PASSWORD)
            homeserver = Homeserver(stack, http, token)
            db = await open_database(url)
            try:
                rooms = [await homeserver.room_with(searcher_id, n) for n in range(ROOMS)]
                rate = await send_all(homeserver, rooms, corpus)
                print(f"{engine}: sent {messages:,} messages at {rate:,.0f}/s", flush=True)
                await wait_until_archived(db, homeserver.group_user, messages)
                await as_sessions(db, rooms, searcher_id)
                api = BacklineAPI(stack, http, token)
                return [
                    await _row(engine, kind, text, hits, homeserver, api, db, runs)
                    for kind, text, hits in _queries(corpus)
                ]
            finally:
                await db.stop()


def _queries(corpus: Corpus) -> list[tuple[str, str, int]]:
    return [(q.kind, q.text, q.hits) for q in corpus.queries()]


class BacklineAPI:
    """Backline's archive search over HTTP, as a compliance officer's client calls it."""

    def __init__(self, stack: Stack, http: aiohttp.ClientSession, token: str) -> None:
        self.url = stack.backline_url + "/api/v1/sessions"
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"}

    async def search(self, text: str) -> int:
        params = {"q": text, "limit": str(PAGE)}
        async with self.http.get(self.url, params=params, headers=self.headers) as response:
            answer = await response.json()
            if response.status != 200:
                raise RuntimeError(f"GET /api/v1/sessions: {response.status} {answer}")
            return len(answer["results"])


async def _in_process(db: Database, text: str) -> int:
    async with connection(db) as conn:
        return len((await search_archive(conn, text, SearchFilters(), limit=PAGE)).hits)


async def _row(
    engine: str,
    kind: str,
    text: str,
    hits: int,
    homeserver: Homeserver,
    api: BacklineAPI,
    db: Database,
    runs: int,
) -> list[object]:
    synapse, synapse_page = await timed(lambda: homeserver.search(text), runs)
    http, http_page = await timed(lambda: api.search(text), runs)
    local, _ = await timed(lambda: _in_process(db, text), runs)
    return [
        engine,
        kind,
        hits,
        f"{synapse_page}/{http_page}",
        median(synapse),
        percentile(synapse, 0.95),
        median(http),
        percentile(http, 0.95),
        f"{median(synapse) / median(http):.1f}x",
        median(local),
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--engine", choices=ENGINES, action="append")
    args = parser.parse_args()

    rows = []
    for engine in args.engine or ENGINES:
        rows += await bench_engine(engine, args.messages, args.runs)
    print_table(
        f"Search, newest {PAGE}, {args.messages:,} messages in {ROOMS} rooms, {args.runs} runs"
        " (ms; Synapse on SQLite; engine = Backline's database)",
        [
            "engine",
            "query",
            "matches",
            "page S/B",
            "Synapse p50",
            "p95",
            "Backline API p50",
            "p95",
            "Backline faster",
            "search_archive p50",
        ],
        rows,
    )


if __name__ == "__main__":
    asyncio.run(main())
