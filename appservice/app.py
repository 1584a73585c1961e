"""Backline assembled: store, homeserver client, HTTP listener and background work."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from mautrix.util.async_db import Database

from .config import Config
from .db import open_database
from .matrix.client import MatrixClient
from .matrix.outbox import OutboxWorker
from .matrix.roster import prepare_roster
from .matrix.server import AppserviceAPI
from .matrix.transactions import TransactionHandler
from .routing.actions import Actions
from .routing.inbound import Inbound
from .tasks import cancel_all
from .web.errors import error_middleware
from .web.health import Health

log = logging.getLogger("backline")


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

    async def start(self) -> None:
        """Open the store, listen, register our users, prepare rosters, resume pending work."""
        self.db = await open_database(self.config.database.url, self.config.database.pool_size)
        self.actions = Actions(self.config, self.db, self.matrix, self.state_lock)
        self.outbox = OutboxWorker(self.db, self.actions.execute)
        inbound = Inbound(self.config)
        transactions = TransactionHandler(self.db, inbound, self.state_lock, self.outbox.wake)

        app = web.Application(
            client_max_size=self.config.appservice.max_body_size,
            middlewares=[error_middleware],
        )
        AppserviceAPI(self.config, transactions, self.matrix).add_routes(app)
        Health(self.db, self.matrix).add_routes(app)
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

        await self.matrix.register_users()
        await asyncio.gather(
            *(prepare_roster(self.db, self.matrix, self.actions, g) for g in self.config.groups)
        )
        self.outbox.start()
        await self.matrix.ping()
        log.info("Backline started", extra={"groups": len(self.config.groups)})

    async def stop(self) -> None:
        """Stop listening and working; pending work stays stored for the next start."""
        if self.outbox is not None:
            await self.outbox.stop()
        if self.runner is not None:
            await self.runner.cleanup()
        await cancel_all()
        await self.matrix.close()
        if self.db is not None:
            await self.db.stop()
        log.info("Backline stopped")
