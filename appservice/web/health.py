"""GET /health: liveness and readiness, for container health checks and load balancers."""

from __future__ import annotations

import logging

from aiohttp import web
from mautrix.util.async_db import Database

from ..db.database import database_error
from ..matrix.client import MatrixClient

log = logging.getLogger("backline.web.health")


class Health:
    """Reports whether the database and the homeserver answer."""

    def __init__(self, db: Database, matrix: MatrixClient) -> None:
        self.db = db
        self.matrix = matrix

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/health", self.get_health)

    async def database_ok(self) -> tuple[bool, str]:
        error = await database_error(self.db)
        if error is not None:
            log.warning("Health check: database unreachable (%s)", error)
            return False, error
        return True, "ok"

    async def get_health(self, request: web.Request) -> web.Response:
        """200 when both answer, 503 otherwise, with each part's state."""
        db_ok, db_state = await self.database_ok()
        hs_ok = await self.matrix.homeserver_reachable()
        body = {
            "status": "ok" if db_ok and hs_ok else "degraded",
            "database": db_state,
            "homeserver": "ok" if hs_ok else "unreachable",
        }
        return web.json_response(body, status=200 if db_ok and hs_ok else 503)
