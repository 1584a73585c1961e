"""Backline assembled: store, homeserver client, HTTP listener and background work."""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from mautrix.errors import MatrixConnectionError, MatrixRequestError
from mautrix.util.async_db import Database

from .archive.retention import RetentionJob
from .config import Config, load_config
from .db import open_database
from .db.database import database_error
from .errors import BacklineError
from .matrix.client import MatrixClient
from .matrix.outbox import OutboxWorker
from .matrix.roster import prepare_roster
from .matrix.server import AppserviceAPI
from .matrix.transactions import TransactionHandler
from .routing.actions import Actions
from .routing.clock import RoutingClock
from .routing.inbound import Inbound
from .routing.router import Router
from .routing.rules import RuleRunner
from .tasks import TaskSet
from .web.api_archive import ArchiveAPI
from .web.api_requests import RequestsAPI
from .web.auth import TokenAuthenticator
from .web.errors import error_middleware
from .web.health import Health
from .web.pages import ArchivePages
from .web.security import security_headers

log = logging.getLogger("backline")

# After a start, routing timers wait for this long without a homeserver transaction (at most
# CATCH_UP_LIMIT) so that what happened while Backline was down is seen first.
CATCH_UP_QUIET = 2.0
CATCH_UP_LIMIT = 30.0


class Backline:
    """One running Backline: `await start()`, then `await stop()`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        # Every change of session state happens under this lock, so that joins, declines
        # and routing of one session never interleave inside the store.
        self.state_lock = asyncio.Lock()
        self.db: Database | None = None
        self.matrix = MatrixClient(config)
        self.runner: web.AppRunner | None = None
        self.outbox: OutboxWorker | None = None
        self.actions: Actions | None = None
        self.clock: RoutingClock | None = None
        self.rules: RuleRunner | None = None
        self.transactions: TransactionHandler | None = None
        self.ready = asyncio.Event()
        self.tasks = TaskSet()
        self._recovering: asyncio.Task[None] | None = None
        self._delivery = asyncio.Event()

    async def start(self) -> None:
        """Open the store, listen, register our users, prepare rosters, resume pending work."""
        self.db = await open_database(self.config.database.url, self.config.database.pool_size)
        clock = self.clock = RoutingClock(self.config, self.db, self.state_lock, self._wake_outbox)
        self.rules = RuleRunner(self.config, self.matrix.session)
        router = Router(self.config, self.db, self.matrix, self.state_lock, self.rules, clock.poke)
        self.actions = Actions(self.config, self.db, self.matrix, self.state_lock, router)
        self.outbox = OutboxWorker(self.db, self.actions.execute, self.tasks)
        inbound = Inbound(self.config)
        transactions = self.transactions = TransactionHandler(
            self.db, inbound, self.state_lock, self._delivered
        )

        app = web.Application(
            client_max_size=self.config.appservice.max_body_size,
            # Outermost first: page answers get their security headers, errors included.
            middlewares=[security_headers, error_middleware],
        )
        AppserviceAPI(
            self.config, transactions, self.matrix, self._recover_after_store_failure
        ).add_routes(app)
        Health(self.db, self.matrix).add_routes(app)
        ArchivePages(self.config, self.db, self.matrix.session).add_routes(app)
        archive_auth = TokenAuthenticator(self.config, self.matrix.session)
        ArchiveAPI(self.config, self.db, archive_auth).add_routes(app)
        RequestsAPI(
            self.config,
            self.db,
            archive_auth,
            self.state_lock,
            self.outbox.wake,
            self.matrix.user_exists,
        ).add_routes(app)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(
            self.runner, self.config.appservice.hostname, self.config.appservice.port
        )
        await site.start()
        log.info(
            "Listening for the homeserver",
            extra={"host": self.config.appservice.hostname, "port": self.config.appservice.port},
        )

        self.outbox.start()
        # Texts a previous run queued for the search index and did not get to.
        transactions.indexer.wake()
        self.tasks.spawn(
            self._prepare_homeserver(self.db, self.actions, clock), "homeserver setup"
        )
        archive = self.config.archive
        if archive.retention is not None:
            job = RetentionJob(
                self.db, archive.retention, archive.purge_interval, archive.media_path
            )
            self.tasks.spawn(job.run_forever(), "retention")

    async def _prepare_homeserver(
        self, db: Database, actions: Actions, clock: RoutingClock
    ) -> None:
        """Register our users and prepare rosters, retrying while the homeserver is away."""
        delay = 1.0
        while True:
            try:
                await self._set_up_groups(db, actions)
                break
            except (MatrixConnectionError, OSError, TimeoutError) as e:
                log.warning("Homeserver unreachable (%s); retrying in %.0f s", e, delay)
            except MatrixRequestError as e:
                if e.http_status < 500:
                    raise
                log.warning("Homeserver failed (%s); retrying in %.0f s", e, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60)

        # Presence is fresh now: offer what waited while Backline was down to whoever is free.
        await actions.route_open_requests()
        self._wake_outbox()
        # A ping makes the homeserver deliver at once what it held back while we were down.
        await self.matrix.ping()
        self.tasks.spawn(self._run_clock_once_caught_up(clock), "routing clock")
        self.ready.set()
        log.info("Backline ready", extra={"groups": len(self.config.groups)})

    async def _set_up_groups(self, db: Database, actions: Actions) -> None:
        """Register the bot and group users, and prepare every group's roster room."""
        await self.matrix.register_users()
        await asyncio.gather(
            *(prepare_roster(db, self.matrix, actions, g) for g in self.config.groups)
        )

    async def reload_file(self) -> None:
        """Re-read the config file (on SIGHUP); a file with problems changes nothing."""
        if self.config.path is None:
            log.warning("Config not reloaded: it was not read from a file")
            return
        try:
            new = load_config(self.config.path)
        except BacklineError as e:
            log.error("Config not reloaded; the running one stays: %s", e)
            return
        await self.reload(new)

    async def reload(self, new: Config) -> None:
        """Apply a re-read config: permissions, experts, groups and API tokens at once.

        New group users are registered, new members invited to their roster, presence read
        afresh, and waiting requests offered to whoever the new config makes available.
        """
        try:
            functions = RuleRunner.load_functions(new)
        except BacklineError as e:
            log.error("Config not reloaded; the running one stays: %s", e)
            return
        async with self.state_lock:
            if self.rules is not None:
                self.rules.functions = functions
            later = self.config.adopt(new)
        if later:
            log.warning("Config sections that apply after a restart: %s", ", ".join(later))
        log.info("Config reloaded", extra={"groups": len(self.config.groups)})

        # Until Backline is ready, its start-up does the same with the new config.
        await self.ready.wait()
        if self.db is None or self.actions is None:
            return
        try:
            await self._set_up_groups(self.db, self.actions)
        except (MatrixConnectionError, MatrixRequestError, OSError, TimeoutError) as e:
            log.warning("Groups not fully set up after the reload: %s", e)
        await self.actions.route_open_requests()
        self._wake_outbox()

    async def _run_clock_once_caught_up(self, clock: RoutingClock) -> None:
        """Start the routing timers once the homeserver has sent what it held back.

        An expert may have accepted an offer while Backline was down; their join must be seen
        before that offer's deadline, which passed meanwhile, fires. After the ping the
        homeserver sends its backlog at once, transaction after transaction, so a short quiet
        spell means it is through.
        """
        give_up = time.monotonic() + CATCH_UP_LIMIT
        while (left := give_up - time.monotonic()) > 0:
            self._delivery.clear()
            try:
                async with asyncio.timeout(min(CATCH_UP_QUIET, left)):
                    await self._delivery.wait()
            except TimeoutError:
                break
        await clock.run_forever()

    def _delivered(self, acted: bool) -> None:
        """A homeserver transaction was committed; if it acted on anything, calls may wait."""
        self._delivery.set()
        if acted:
            self._wake_outbox()

    def _wake_outbox(self) -> None:
        if self.outbox is not None:
            self.outbox.wake()

    def _recover_after_store_failure(self) -> None:
        """After a database outage, have the homeserver re-send what failed as soon as it ends.

        The homeserver backs off up to minutes between retries; a ping makes it retry at once.
        A failure while the database still answers is left to the homeserver's own backoff.
        """
        if self.db is not None and (self._recovering is None or self._recovering.done()):
            self._recovering = self.tasks.spawn(self._wait_for_database(self.db), "recovery")

    async def _wait_for_database(self, db: Database) -> None:
        if await database_error(db) is None:
            return
        log.warning("Database unreachable; waiting for it to come back")
        # Polling: an outage ends without any event to wait for.
        while True:
            await asyncio.sleep(1)
            if await database_error(db) is None:
                break
        log.info("Database reachable again; asking the homeserver to retry")
        await self.matrix.ping()
        # Presence updates in the failed transactions are not sent again: read it afresh.
        if self.actions is not None:
            actions = self.actions
            await asyncio.gather(*(actions.refresh_presence(g) for g in self.config.groups))
            await actions.route_open_requests()
            self._wake_outbox()

    async def stop(self) -> None:
        """Stop listening and working; pending work stays stored for the next start."""
        if self.outbox is not None:
            await self.outbox.stop()
            self.outbox = None
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self.transactions is not None:
            await self.transactions.indexer.stop()
            self.transactions = None
        await self.tasks.cancel_all()
        if not self.matrix.session.closed:
            await self.matrix.close()
        if self.db is not None:
            await self.db.stop()
            self.db = None
            log.info("Backline stopped")
