"""Archive search on a large archive: newest-first pages for rare, medium, common and phrase
queries, against the bare full-text query of the same engine.

    .venv/bin/python -m bench.search [--messages 1000000] [--runs 30] [--engine sqlite|postgres]

The archive is filled through the store layer (`store_events`, 1,000 events a transaction, one
session per 100 messages), so every row goes through the same tables, hash chains, triggers
and indexes as a live transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mautrix.util.async_db import Database, Scheme

from appservice.archive.search import SearchFilters, search_archive
from appservice.db import connection, open_database, transaction
from appservice.db.events import store_events
from appservice.db.sessions import create_session, set_room
from bench.common import ENGINES, fresh_database, median, percentile, print_table, timed

BATCH = 1_000
PER_SESSION = 100
PAGE = 50
START = 1_700_000_000_000

# Hits per million messages: about 30 (rare), 1,300 (medium), 146,000 (common), 130 (phrase).
RARE, MEDIUM, COMMON, PHRASE = "zanzibarite", "quarterly", "customer", "refund portal"
RATES = {RARE: 30e-6, MEDIUM: 1.3e-3, COMMON: 0.15, PHRASE: 130e-6}
# Each word of the phrase also appears on its own, so the phrase check has work to do.
LONE_RATE = 5e-3
TARGET_MS = {"postgres": 50.0, "sqlite": 100.0}


@dataclass(frozen=True)
class Query:
    kind: str
    text: str
    hits: int
    # PostgreSQL keeps no target for the very common word (see bench/README.md).
    has_target: dict[str, bool]


class Corpus:
    """Synthetic messages: filler words plus controlled terms at exact counts."""

    def __init__(
        self, messages: int, seed: int = 7, rates: dict[str, float] | None = None
    ) -> None:
        self.rng = random.Random(seed)
        self.messages = messages
        syllables = ["ka", "lo", "mi", "re", "tu", "sa", "ne", "po", "vi", "da", "gu", "fe"]
        self.fillers = sorted(
            {"".join(self.rng.choices(syllables, k=self.rng.randint(2, 4))) for _ in range(9000)}
        )
        everyone = range(messages)
        self.placed = {
            term: set(self.rng.sample(everyone, max(3, round(messages * rate))))
            for term, rate in (rates or RATES).items()
        }
        lone = self.rng.sample(everyone, 2 * max(3, round(messages * LONE_RATE)))
        # Disjoint, so "refund" and "portal" never meet by chance.
        self.lone_refund, self.lone_portal = set(lone[::2]), set(lone[1::2])

    def body(self, index: int) -> str:
        words = self.rng.choices(self.fillers, k=self.rng.randint(6, 16))
        for term, where in self.placed.items():
            if index in where:
                words.insert(self.rng.randint(0, len(words)), term)
        if index in self.lone_refund:
            words.insert(0, "refund")
        if index in self.lone_portal:
            words.append("portal")
        return " ".join(words)

    def queries(self) -> list[Query]:
        return [
            Query("rare", RARE, len(self.placed[RARE]), {"postgres": True, "sqlite": True}),
            Query("medium", MEDIUM, len(self.placed[MEDIUM]), {"postgres": True, "sqlite": True}),
            Query("common", COMMON, len(self.placed[COMMON]), {"postgres": False, "sqlite": True}),
            Query(
                "phrase",
                f'"{PHRASE}"',
                len(self.placed[PHRASE]),
                {"postgres": True, "sqlite": True},
            ),
        ]


async def fill(db: Database, corpus: Corpus) -> float:
    """Archive every message through `store_events`; returns events per second."""
    started = time.perf_counter()
    for first in range(0, corpus.messages, BATCH):
        events = []
        async with transaction(db) as conn:
            for index in range(first, min(first + BATCH, corpus.messages)):
                room = f"!bench{index // PER_SESSION}"
                if index % PER_SESSION == 0:
                    await _new_session(conn, room, index)
                events.append(_message(index, room, corpus.body(index)))
            await store_events(conn, events)
        if first and first % 100_000 == 0:
            rate = first / (time.perf_counter() - started)
            print(f"  {first:,} archived ({rate:,.0f}/s)", flush=True)
    return corpus.messages / (time.perf_counter() - started)


async def _new_session(conn: Any, room: str, index: int) -> None:
    session_id = await create_session(
        conn,
        group_id=f"group{index % 7}",
        agent=f"@agent{index % 13}:localhost",
        question="How do I ...?",
        preferences={},
        needed=1,
        alias_prefix="bench-",
    )
    await set_room(conn, session_id, room)


def _message(index: int, room: str, body: str) -> dict[str, Any]:
    return {
        "event_id": f"$bench{index}",
        "room_id": room,
        "sender": f"@user{index % 50}:localhost",
        "type": "m.room.message",
        "origin_server_ts": START + index * 1000,
        "content": {"msgtype": "m.text", "body": body},
    }


async def bare_query(db: Database, text: str) -> int:
    """The engine's own newest-first page, without joins, filters or snippets: the baseline."""
    async with connection(db) as conn:
        if conn.scheme == Scheme.SQLITE:
            rows = await conn.fetch(
                "SELECT rowid FROM message_fts WHERE message_fts MATCH $1"
                " ORDER BY rowid DESC LIMIT $2",
                text,
                PAGE,
            )
        else:
            rows = await conn.fetch(
                "SELECT seq FROM message_text WHERE tsv @@ websearch_to_tsquery('simple', $1)"
                " ORDER BY seq DESC LIMIT $2",
                text,
                PAGE,
            )
    return len(rows)


async def backline_query(db: Database, text: str) -> int:
    async with connection(db) as conn:
        page = await search_archive(conn, text, SearchFilters(), limit=PAGE)
    return len(page.hits)


async def bench_engine(engine: str, corpus: Corpus, runs: int) -> list[list[object]]:
    with tempfile.TemporaryDirectory(prefix="backline-bench-") as work:
        async with fresh_database(engine, Path(work)) as url:
            db = await open_database(url)
            try:
                print(f"{engine}: archiving {corpus.messages:,} messages ...", flush=True)
                rate = await fill(db, corpus)
                print(f"{engine}: archived at {rate:,.0f} events/s", flush=True)
                # Statistics, as autovacuum (or SQLite's optimize) would have them by now.
                await db.execute("ANALYZE")
                return [await _row(db, engine, q, runs) for q in corpus.queries()]
            finally:
                await db.stop()


async def _row(db: Database, engine: str, query: Query, runs: int) -> list[object]:
    ours, page = await timed(lambda: backline_query(db, query.text), runs)
    bare, _ = await timed(lambda: bare_query(db, query.text), runs)
    p95 = percentile(ours, 0.95)
    target = TARGET_MS[engine] if query.has_target[engine] else None
    verdict = "-" if target is None else ("ok" if p95 < target else "MISSED")
    return [
        engine,
        query.kind,
        query.hits,
        page,
        median(ours),
        p95,
        median(bare),
        percentile(bare, 0.95),
        f"{median(ours) / median(bare):.1f}x",
        f"< {target:.0f}" if target else "none",
        verdict,
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--engine", choices=ENGINES, action="append")
    args = parser.parse_args()

    corpus = Corpus(args.messages)
    rows = []
    for engine in args.engine or ENGINES:
        # The same messages for each engine: a fresh generator with the same seed.
        rows += await bench_engine(engine, Corpus(args.messages), args.runs)
    print_table(
        f"Archive search, newest {PAGE}, {corpus.messages:,} messages, {args.runs} runs (ms)",
        [
            "engine",
            "query",
            "matches",
            "page",
            "Backline p50",
            "p95",
            "bare p50",
            "bare p95",
            "ratio p50",
            "target p95",
            "",
        ],
        rows,
    )


if __name__ == "__main__":
    asyncio.run(main())
