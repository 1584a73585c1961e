"""Committing what the homeserver sends before telling it so.

The homeserver re-sends a transaction until it gets a 2xx, so a transaction is answered only
after its events, and every decision they cause, are committed in one database transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import re
from collections.abc import Callable
from typing import Any

import orjson
from mautrix.util.async_db import Database

from ..db import transaction
from ..db.delivery import Delivery, store_delivery
from ..db.events import index_queued_texts, prepare_events
from ..errors import BacklineError
from ..routing.inbound import Inbound
from .events import is_room_event, parse_presence

log = logging.getLogger("backline.matrix.transactions")

# A transaction of this many events or more means the homeserver is sending faster than one
# event at a time (a busy server, or catch-up after an outage). Its message texts are indexed
# for search right after the commit, many transactions' worth at once, which costs a fraction
# of indexing each inside its own transaction. Smaller transactions, live chat, are
# searchable the moment they are acknowledged.
BULK_EVENTS = 20


class BadTransaction(BacklineError):
    """The body is not a transaction (not JSON, or not an object with lists)."""


# Half of a UTF-16 pair, as a lone `\uD83D` escape gives: no database text can hold one.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_body(body: bytes) -> tuple[list[Any], list[Any]]:
    """The room events and ephemeral events of a transaction body."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = _parse_what_orjson_refuses(body)
    if not isinstance(data, dict):
        raise BadTransaction("transaction body is not a JSON object")
    room_events = data.get("events", [])
    # Ephemeral events are stable since spec v1.13; Synapse may still use the MSC2409 key.
    ephemeral = data.get("ephemeral", data.get("de.sorunome.msc2409.ephemeral", []))
    if not isinstance(room_events, list) or not isinstance(ephemeral, list):
        raise BadTransaction("'events' and 'ephemeral' must be lists")
    return room_events, ephemeral


def _parse_what_orjson_refuses(body: bytes) -> Any:
    """JSON that orjson refuses but is JSON still: integers beyond 64 bits, lone surrogates.

    Refusing it would make the homeserver send the transaction again forever, holding back
    everything after it. Lone surrogates become U+FFFD, the rest is kept as sent.
    """
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadTransaction(f"transaction body is not JSON: {e}") from e
    return _whole_characters(data)


def _whole_characters(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_whole_characters(item) for item in value]
    if isinstance(value, dict):
        return {_whole_characters(k): _whole_characters(v) for k, v in value.items()}
    return value


class TransactionHandler:
    """Stores a transaction's events and the state changes they cause, atomically.

    `on_commit` is called after each commit, with whether the transaction acted on anything
    (an event in a room Backline has a part in, or presence): only then can it have queued
    calls to the homeserver.
    """

    def __init__(
        self,
        db: Database,
        inbound: Inbound,
        state_lock: asyncio.Lock,
        on_commit: Callable[[bool], None],
    ) -> None:
        self.db = db
        self.inbound = inbound
        self.state_lock = state_lock
        self.on_commit = on_commit
        self.indexer = QueuedTextIndexer(db)

    async def handle(self, txn_id: str, body: bytes) -> int:
        """Commit a transaction; returns how many new events it held. Raises if not stored."""
        room_events, ephemeral = parse_body(body)
        delivery = Delivery(txn_id, hashlib.sha256(body).hexdigest())
        prepared = prepare_events(self._well_formed(txn_id, room_events))
        index_now = len(prepared) < BULK_EVENTS
        presence = [update for raw in ephemeral if (update := parse_presence(raw)) is not None]

        async with self.state_lock, transaction(self.db) as conn:
            stored = await store_delivery(conn, delivery, prepared, index_now=index_now)
            if stored is None:
                log.debug("Transaction %s seen before", txn_id)
                return 0
            acted = await self.inbound.handle_batch(conn, stored.fresh, stored.known_rooms)
            for update in presence:
                await self.inbound.on_presence(conn, update)

        log.debug(
            "Transaction committed",
            extra={"txn_id": txn_id, "events": len(room_events), "new": len(stored.fresh)},
        )
        if stored.fresh and not index_now:
            self.indexer.wake()
        self.on_commit(acted > 0 or bool(presence))
        return len(stored.fresh)

    @staticmethod
    def _well_formed(txn_id: str, room_events: list[Any]) -> list[dict[str, Any]]:
        """The events that have what every room event has; the others are logged and dropped."""
        well_formed = [raw for raw in room_events if is_room_event(raw)]
        if len(well_formed) < len(room_events):
            log.warning(
                "Skipping malformed events",
                extra={"txn_id": txn_id, "malformed": len(room_events) - len(well_formed)},
            )
        return well_formed


class QueuedTextIndexer:
    """Indexes queued message texts for search right after the commits that queued them.

    One run at a time: a wake during a run makes it go round once more, taking everything
    queued meanwhile in one bulk. Texts stay queued until a run commits, so a failed run or a
    restart loses nothing: Backline wakes the indexer at start, and every bulk commit does.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._run: asyncio.Task[None] | None = None
        self._again = False

    def wake(self) -> None:
        """Index what is queued now, or after the run under way."""
        if self._run is not None and not self._run.done():
            self._again = True
            return
        # A fresh context: the run must take a connection of its own, never one a caller
        # still holds for its transaction.
        self._run = asyncio.create_task(
            self._index_until_done(), name="search index", context=contextvars.Context()
        )
        self._run.add_done_callback(self._finished)

    async def stop(self) -> None:
        """Stop indexing; what is still queued is indexed after the next start."""
        if self._run is not None:
            self._run.cancel()
            await asyncio.gather(self._run, return_exceptions=True)

    async def idle(self) -> None:
        """Wait until nothing is being indexed (for tests and benchmarks)."""
        while self._run is not None and not self._run.done():
            await asyncio.wait([self._run])

    async def _index_until_done(self) -> None:
        self._again = True
        while self._again:
            self._again = False
            async with transaction(self.db) as conn:
                count = await index_queued_texts(conn)
            log.debug("Queued texts indexed", extra={"messages": count})

    def _finished(self, run: asyncio.Task[None]) -> None:
        if not run.cancelled() and (error := run.exception()) is not None:
            log.warning(
                "Could not index queued message texts; they stay queued for the next run",
                exc_info=error,
            )
