"""Committing what the homeserver sends before telling it so.

The homeserver re-sends a transaction until it gets a 2xx, so a transaction is answered only
after its events, and every decision they cause, are committed in one database transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from mautrix.util.async_db import Database

from ..db import transaction, transactions
from ..db.events import store_events
from ..errors import BacklineError
from ..routing.inbound import Inbound
from .events import parse_presence, parse_room_event

log = logging.getLogger("backline.matrix.transactions")


class BadTransaction(BacklineError):
    """The body is not a transaction (not JSON, or not an object with lists)."""


def parse_body(body: bytes) -> tuple[list[Any], list[Any]]:
    """The room events and ephemeral events of a transaction body."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadTransaction(f"transaction body is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise BadTransaction("transaction body is not a JSON object")
    room_events = data.get("events", [])
    # Ephemeral events are stable since spec v1.13; Synapse may still use the MSC2409 key.
    ephemeral = data.get("ephemeral", data.get("de.sorunome.msc2409.ephemeral", []))
    if not isinstance(room_events, list) or not isinstance(ephemeral, list):
        raise BadTransaction("'events' and 'ephemeral' must be lists")
    return room_events, ephemeral


class TransactionHandler:
    """Stores a transaction's events and the state changes they cause, atomically."""

    def __init__(
        self,
        db: Database,
        inbound: Inbound,
        state_lock: asyncio.Lock,
        on_commit: Callable[[], None],
    ) -> None:
        self.db = db
        self.inbound = inbound
        self.state_lock = state_lock
        self.on_commit = on_commit

    async def handle(self, txn_id: str, body: bytes) -> int:
        """Commit a transaction; returns how many new events it held. Raises if not stored."""
        room_events, ephemeral = parse_body(body)
        digest = hashlib.sha256(body).hexdigest()

        async with self.state_lock, transaction(self.db) as conn:
            if await transactions.is_processed(conn, txn_id, digest):
                log.debug("Transaction %s seen before", txn_id)
                return 0
            parsed = {}
            for raw in room_events:
                event = parse_room_event(raw)
                if event is None:
                    log.warning("Skipping a malformed event", extra={"txn_id": txn_id})
                else:
                    parsed[event.event_id] = (raw, event)
            fresh = await store_events(conn, [raw for raw, _ in parsed.values()])
            await self.inbound.handle_batch(
                conn, [(parsed[raw["event_id"]][1], raw) for raw in fresh]
            )
            new_events = len(fresh)
            for raw in ephemeral:
                update = parse_presence(raw)
                if update is not None:
                    await self.inbound.on_presence(conn, update)
            await transactions.mark_processed(conn, txn_id, digest)

        log.debug(
            "Transaction committed",
            extra={"txn_id": txn_id, "events": len(room_events), "new": new_events},
        )
        self.on_commit()
        return new_events
