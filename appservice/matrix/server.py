"""The appservice API the homeserver calls (spec: Application Service API, v1)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

from aiohttp import web
from mautrix.types import UserID

from ..config import Config
from ..web.errors import APIError
from .client import MatrixClient
from .transactions import BadTransaction, TransactionHandler

log = logging.getLogger("backline.matrix.server")


def check_hs_token(request: web.Request, hs_token: str) -> None:
    """Accept only the homeserver's token, compared in constant time.

    The header is the spec's way since v1.4; the query parameter is the older form.
    """
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        given = header.removeprefix("Bearer ")
    else:
        given = request.query.get("access_token", "")
    if not given:
        raise APIError(401, "M_MISSING_TOKEN", "missing homeserver token")
    if not hmac.compare_digest(given.encode(), hs_token.encode()):
        raise APIError(403, "M_FORBIDDEN", "wrong homeserver token")


class AppserviceAPI:
    """Routes under /_matrix/app/v1 for transactions, user and alias queries, and pings."""

    def __init__(
        self,
        config: Config,
        transactions: TransactionHandler,
        matrix: MatrixClient,
        on_store_failure: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.transactions = transactions
        self.matrix = matrix
        self.on_store_failure = on_store_failure

    def add_routes(self, app: web.Application) -> None:
        """Register the routes, with the pre-v1 paths older homeservers use."""
        for prefix in ("/_matrix/app/v1", ""):
            app.router.add_put(prefix + "/transactions/{txn_id}", self.put_transaction)
            app.router.add_get(prefix + "/users/{user_id}", self.get_user)
            app.router.add_get(prefix + "/rooms/{alias}", self.get_room)
        app.router.add_post("/_matrix/app/v1/ping", self.post_ping)

    async def put_transaction(self, request: web.Request) -> web.Response:
        """Commit the transaction's events, then answer 200; any failure answers 5xx."""
        check_hs_token(request, self.config.appservice.hs_token)
        txn_id = request.match_info["txn_id"]
        body = await request.read()
        try:
            await self.transactions.handle(txn_id, body)
        except BadTransaction as e:
            raise APIError(400, "M_NOT_JSON", str(e)) from e
        except Exception as e:
            # The homeserver will send the same transaction again; nothing is lost.
            log.exception("Could not commit transaction %s; the homeserver will retry", txn_id)
            self.on_store_failure()
            raise APIError(503, "M_UNKNOWN", "could not store the transaction; retry") from e
        return web.json_response({})

    async def get_user(self, request: web.Request) -> web.Response:
        """The homeserver asks whether a user in our namespace exists: ours are made on demand."""
        check_hs_token(request, self.config.appservice.hs_token)
        user_id = request.match_info["user_id"]
        if not self.config.is_own_user(user_id):
            raise APIError(404, "M_NOT_FOUND", "no such user")
        await self.matrix.intent(UserID(user_id)).ensure_registered()
        return web.json_response({})

    async def get_room(self, request: web.Request) -> web.Response:
        """Session room aliases are made with their rooms, never on demand."""
        check_hs_token(request, self.config.appservice.hs_token)
        raise APIError(404, "M_NOT_FOUND", "no such room alias")

    async def post_ping(self, request: web.Request) -> web.Response:
        """Answer the homeserver's ping (spec v1.7)."""
        check_hs_token(request, self.config.appservice.hs_token)
        return web.json_response({})
