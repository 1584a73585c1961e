"""One error shape for every route: JSON `{errcode, error}` with the right status."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger("backline.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class APIError(Exception):
    """An error answer; raise it from a handler."""

    def __init__(self, status: int, errcode: str, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.errcode = errcode
        self.error = error


def error_response(status: int, errcode: str, error: str) -> web.Response:
    """The JSON body every error uses."""
    return web.json_response({"errcode": errcode, "error": error}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn raised errors into JSON; an unexpected one is logged and answered 500."""
    try:
        return await handler(request)
    except APIError as e:
        return error_response(e.status, e.errcode, e.error)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        errcode = {404: "M_NOT_FOUND", 405: "M_UNRECOGNIZED", 413: "M_TOO_LARGE"}.get(
            e.status, "M_UNKNOWN"
        )
        return error_response(e.status, errcode, e.reason)
    except Exception:
        log.exception("Request failed", extra={"path": request.path, "method": request.method})
        return error_response(500, "M_UNKNOWN", "internal error; see Backline's log")
