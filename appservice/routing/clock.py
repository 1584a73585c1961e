"""Routing timers: offers that time out, steps that run out, working hours that begin.

Every deadline is a column in the store (`offer.expires_at`, `session.step_deadline`), so
nothing is lost when Backline stops: after a restart, whatever fell due meanwhile fires at once
and the rest on schedule. The clock sleeps until the earliest deadline, or until poked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from mautrix.util.async_db import Database

from ..config import Config, next_change
from ..db import connection, now_ms, offers, outbox, sessions, transaction
from ..db.sessions import ROUTABLE_STATES
from . import moves, texts
from .opening import session_lane

log = logging.getLogger("backline.routing.clock")

# Look again at least this often, whatever the deadlines say (a clock change, a lost poke).
MAX_SLEEP = 30.0


class RoutingClock:
    """Fires routing deadlines from the store."""

    def __init__(
        self,
        config: Config,
        db: Database,
        state_lock: asyncio.Lock,
        wake_outbox: Callable[[], None],
    ) -> None:
        self.config = config
        self.db = db
        self.state_lock = state_lock
        self.wake_outbox = wake_outbox
        self._poked = asyncio.Event()
        self._hours_change = self._next_hours_change()

    def poke(self) -> None:
        """A deadline may have been added: look at the store again."""
        self._poked.set()

    async def run_forever(self) -> None:
        """Fire due deadlines, then sleep until the next one or a poke."""
        while True:
            self._poked.clear()
            try:
                await self.fire_due()
                sleep = await self._seconds_to_next()
            except Exception:  # the store may be away for a while; keep the clock alive
                log.exception("Routing timers could not run; trying again shortly")
                sleep = 5.0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(sleep):
                    await self._poked.wait()

    async def fire_due(self) -> None:
        """Time out overdue offers, end overdue steps, re-route at working-hours changes."""
        now = now_ms()
        async with self.state_lock, transaction(self.db) as conn:
            for offer in await offers.overdue_offers(conn, now):
                session = await sessions.get_session(conn, offer.session_id)
                if session is None:
                    continue
                timeout = (
                    (offer.expires_at or now) - (offer.offered_at or offer.created_at)
                ) / 1000
                why = texts.timed_out(max(timeout, 0))
                await moves.end_offer(conn, self.config, session, offer, "timed_out", why)
            for session in await sessions.overdue_sessions(conn, now):
                step = moves.current_step(self.config, session)
                why = texts.step_timed_out(step.timeout or 0)
                await moves.step_on(conn, self.config, session, why)
            if self._hours_change is not None and self._hours_change.timestamp() * 1000 <= now:
                # Someone's working hours began or ended: waiting requests may go to them now.
                for session in await sessions.sessions_in_states(conn, ROUTABLE_STATES):
                    await outbox.enqueue(
                        conn, session_lane(session.id), "route", session_id=session.id
                    )
                self._hours_change = self._next_hours_change()
        self.wake_outbox()

    async def _seconds_to_next(self) -> float:
        async with connection(self.db) as conn:
            deadlines = [
                await offers.next_offer_deadline(conn),
                await sessions.next_step_deadline(conn),
            ]
        if self._hours_change is not None:
            deadlines.append(int(self._hours_change.timestamp() * 1000))
        upcoming = [d for d in deadlines if d is not None]
        if not upcoming:
            return MAX_SLEEP
        return min(max((min(upcoming) - now_ms()) / 1000, 0.0), MAX_SLEEP)

    def _next_hours_change(self) -> datetime | None:
        now = datetime.now(UTC)
        changes = [
            change
            for profile in self.config.experts.values()
            if (change := next_change(profile.hours, profile.timezone, now)) is not None
        ]
        return min(changes, default=None)
