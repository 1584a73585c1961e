"""Carrying out queued homeserver calls: in order within a lane, lanes side by side."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from mautrix.errors import MatrixConnectionError, MatrixRequestError
from mautrix.util.async_db import Database

from ..db import connection, outbox
from ..db.outbox import Action
from ..tasks import TaskSet

log = logging.getLogger("backline.outbox")

Executor = Callable[[Action], Awaitable[None]]

MAX_BACKOFF = 60.0
# Homeserver calls in flight at once. Without a cap, a burst of requests opens a lane each and
# they all call the homeserver together: it queues them past the client timeout, and every
# session finishes late instead of the first ones finishing early.
MAX_PARALLEL_CALLS = 16


def is_transient(error: BaseException) -> bool:
    """Worth retrying: the homeserver was unreachable, overloaded or rate-limiting."""
    if isinstance(error, MatrixConnectionError | OSError | asyncio.TimeoutError):
        return True
    if isinstance(error, MatrixRequestError):
        return error.http_status == 429 or error.http_status >= 500
    return False


class OutboxWorker:
    """Runs pending outbox actions; woken after every commit that may have added some."""

    def __init__(self, db: Database, execute: Executor, tasks: TaskSet) -> None:
        self.db = db
        self.execute = execute
        self.tasks = tasks
        self._wakeup = asyncio.Event()
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Fair (first come, first served): lanes get their turns in the order they asked.
        self._calls = asyncio.Semaphore(MAX_PARALLEL_CALLS)

    def start(self) -> None:
        """Begin working, starting with whatever a previous run left pending."""
        self._task = self.tasks.spawn(self._run(), "outbox")
        self.wake()

    def wake(self) -> None:
        """Look for new actions soon."""
        self._idle.clear()
        self._wakeup.set()

    async def stop(self) -> None:
        """Stop all lanes; unfinished actions stay in the store for the next start."""
        tasks = [*self._lanes.values(), *([self._task] if self._task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Wait until nothing is pending (for tests and orderly shutdown)."""
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                async with connection(self.db) as conn:
                    actions = await outbox.pending(conn)
            except Exception:
                log.exception("Could not read the outbox; retrying")
                await asyncio.sleep(1)
                self._wakeup.set()
                continue
            for lane in dict.fromkeys(action.lane for action in actions):
                if lane not in self._lanes:
                    self._lanes[lane] = self.tasks.spawn(self._run_lane(lane), f"outbox {lane}")
            if not actions and not self._lanes:
                self._idle.set()

    async def _run_lane(self, lane: str) -> None:
        try:
            while actions := await self._pending(lane):
                for action in actions:
                    await self._carry_out(action)
        finally:
            del self._lanes[lane]
            self.wake()

    async def _pending(self, lane: str) -> list[Action]:
        async with connection(self.db) as conn:
            return await outbox.pending(conn, lane, limit=50)

    async def _finish(self, action: Action, error: str | None = None) -> None:
        async with connection(self.db) as conn:
            await outbox.finish(conn, action.id, error)

    async def _carry_out(self, action: Action) -> None:
        """Run one action until it succeeds or fails for good; transient faults are retried."""
        delay = 1.0
        while True:
            try:
                async with self._calls:
                    await self.execute(action)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if is_transient(e):
                    log.warning(
                        "Homeserver call failed, retrying in %.0f s: %s",
                        delay,
                        e,
                        extra={"action": action.kind, "lane": action.lane},
                    )
                    async with connection(self.db) as conn:
                        await outbox.count_attempt(conn, action.id, str(e))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MAX_BACKOFF)
                    continue
                log.warning(
                    "Homeserver call failed for good: %s",
                    e,
                    extra={"action": action.kind, "lane": action.lane},
                    exc_info=not isinstance(e, MatrixRequestError),
                )
                await self._finish(action, str(e))
                return
            await self._finish(action)
            return
