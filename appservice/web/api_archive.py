"""The compliance archive over HTTP: search, transcripts, exports, legal holds, access log.

Only compliance officers and admins get in, and only as people: API tokens never reach the
archive. Every search, view and export is written to the access log in the same transaction
that reads the archive, so nothing is shown that was not recorded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast, get_args

from aiohttp import web
from mautrix.util.async_db import Database

from ..archive.access import AccessEntry, read_access_log, record_access
from ..archive.holds import Hold, HoldKind, list_holds, place_hold, release_hold
from ..archive.search import SearchError, SearchFilters, search_archive
from ..archive.transcript import export_json, load_transcript
from ..config import USER_ID_RE, Config
from ..db import transaction
from ..db.sessions import get_session
from ..permissions import can_search_archive
from ..timefmt import iso_utc
from .auth import Identity, TokenAuthenticator, require
from .errors import APIError, Handler
from .render import render_export_html

Guarded = Callable[[web.Request, Identity], Awaitable[web.StreamResponse]]

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
# Longer queries are not questions anyone types; refusing them bounds the engine's work.
MAX_QUERY_LENGTH = 1000
MAX_VALUE_LENGTH = 255
MAX_REASON_LENGTH = 2000
# Row IDs are 64-bit in both engines; a longer number would fail in the driver, not here.
ROW_ID_RE = re.compile(r"[0-9]{1,18}")
FILTER_NAMES = ("group", "agent", "expert", "since", "until", "channel", "reference")
# Archive answers are personal data: never kept by browsers or proxies, never sniffed.
PRIVATE_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
# The export is a file people open later: it may style itself, but nothing may run or load.
EXPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'"
EXPORT_FORMATS = ("json", "html")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# region parsing


def invalid(name: str, expected: str) -> APIError:
    """A 400 that names the parameter and what it should have been."""
    return APIError(400, "M_INVALID_PARAM", f"{name} must be {expected}")


def parse_time(name: str, value: str | None, *, end_of_day: bool = False) -> int | None:
    """An ISO date or date-time as milliseconds (UTC unless an offset is given).

    A bare date means the start of that day; with `end_of_day` (for `until`, which is
    exclusive) it means the start of the next day, so `until=2026-01-31` includes the 31st.
    """
    if value is None:
        return None
    expected = "an ISO 8601 date or date-time, e.g. 2026-01-31 or 2026-01-31T10:00:00Z"
    if len(value) > 40:
        raise invalid(name, expected)
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    try:
        if day is not None:
            moment = datetime.combine(day, time(), UTC)
            if end_of_day:
                moment += timedelta(days=1)
        else:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
        # Integer arithmetic: a float timestamp could land one millisecond off.
        return (moment - EPOCH) // timedelta(milliseconds=1)
    except (ValueError, OverflowError) as e:
        raise invalid(name, expected) from e


def parse_limit(value: str | None) -> int:
    """The page size: 1 to MAX_LIMIT, DEFAULT_LIMIT when absent."""
    if value is None:
        return DEFAULT_LIMIT
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise invalid("limit", f"a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def parse_row_id(value: str | None, name: str) -> int | None:
    """A keyset position such as `before`: a non-negative whole number, or absent."""
    if value is None:
        return None
    if not ROW_ID_RE.fullmatch(value):
        raise invalid(name, "a whole number")
    return int(value)


def text_param(request: web.Request, name: str, max_length: int = MAX_VALUE_LENGTH) -> str | None:
    """A text parameter; empty counts as absent. NUL is refused: PostgreSQL text cannot hold it."""
    value = request.query.get(name, "")
    if not value:
        return None
    if "\x00" in value:
        raise invalid(name, "text without NUL characters")
    if len(value) > max_length:
        raise invalid(name, f"at most {max_length} characters long")
    return value


def path_id(request: web.Request, thing: str) -> int:
    """The numeric `{id}` of the path; anything else names nothing, so it is a 404."""
    raw = request.match_info["id"]
    if not ROW_ID_RE.fullmatch(raw):
        raise APIError(404, "M_NOT_FOUND", f"no such {thing}")
    return int(raw)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object: 400 M_NOT_JSON or M_BAD_JSON otherwise."""
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as e:
        raise APIError(400, "M_NOT_JSON", "the body is not valid JSON") from e
    if not isinstance(body, dict):
        raise APIError(400, "M_BAD_JSON", "the body must be a JSON object")
    return body


def body_text(body: dict[str, Any], name: str, max_length: int = MAX_VALUE_LENGTH) -> str:
    """A required, non-empty text field of a JSON body."""
    value = body.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise invalid(name, "non-empty text")
    if "\x00" in value or len(value) > max_length:
        raise invalid(name, f"text of at most {max_length} characters, without NUL")
    return value.strip()


# endregion
# region answers


def hold_json(hold: Hold) -> dict[str, Any]:
    """A legal hold, with ISO times."""
    return {
        "id": hold.id,
        "kind": hold.kind,
        "value": hold.value,
        "reason": hold.reason,
        "created_by": hold.created_by,
        "created_at": iso_utc(hold.created_at),
        "released_by": hold.released_by,
        "released_at": iso_utc(hold.released_at),
    }


def access_json(entry: AccessEntry) -> dict[str, Any]:
    """One access log entry, with an ISO time."""
    return {
        "id": entry.id,
        "at": iso_utc(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "details": entry.details,
    }


# endregion


class ArchiveAPI:
    """Routes under /api/v1 for compliance officers: sessions, exports, holds, access log."""

    def __init__(self, config: Config, db: Database, auth: TokenAuthenticator) -> None:
        self.config = config
        self.db = db
        self.auth = auth

    def add_routes(self, app: web.Application) -> None:
        """Register the routes; each one goes through the compliance check first."""
        router = app.router
        router.add_get("/api/v1/sessions", self._guard(self.search_sessions))
        router.add_get("/api/v1/sessions/{id}", self._guard(self.get_session))
        router.add_get("/api/v1/sessions/{id}/export", self._guard(self.export_session))
        router.add_get("/api/v1/holds", self._guard(self.get_holds))
        router.add_post("/api/v1/holds", self._guard(self.post_hold))
        router.add_delete("/api/v1/holds/{id}", self._guard(self.delete_hold))
        router.add_get("/api/v1/access-log", self._guard(self.get_access_log))

    def _guard(self, handler: Guarded) -> Handler:
        """Wrap a handler so that no archive route can be reached without the role."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            identity = await self.auth.identify(request, allow_api_tokens=False)
            require(identity, can_search_archive, "search or export the archive")
            response = await handler(request, identity)
            response.headers.update(PRIVATE_HEADERS)
            return response

        return guarded

    async def search_sessions(self, request: web.Request, identity: Identity) -> web.Response:
        """GET /api/v1/sessions: matching messages (or sessions, without `q`), newest first."""
        query = text_param(request, "q", MAX_QUERY_LENGTH) or ""
        filters = SearchFilters(
            group=text_param(request, "group"),
            agent=text_param(request, "agent"),
            expert=text_param(request, "expert"),
            since=parse_time("since", request.query.get("since")),
            until=parse_time("until", request.query.get("until"), end_of_day=True),
            channel=text_param(request, "channel"),
            reference=text_param(request, "reference"),
        )
        cursor = text_param(request, "cursor", MAX_QUERY_LENGTH)
        limit = parse_limit(request.query.get("limit"))

        details: dict[str, Any] = {
            name: getattr(filters, name)
            for name in FILTER_NAMES
            if getattr(filters, name) is not None
        }
        async with transaction(self.db) as conn:
            try:
                page = await search_archive(conn, query, filters, cursor, limit)
            except SearchError as e:
                message = f"{e.args[0]}; {e.hint}" if e.hint else str(e.args[0])
                raise APIError(400, "M_INVALID_PARAM", message) from e
            details["results"] = len(page.hits)
            await record_access(conn, identity.user_id, "search", query, details)

        results = [hit.to_json() for hit in page.hits]
        return web.json_response({"results": results, "next_cursor": page.next_cursor})

    async def get_session(self, request: web.Request, identity: Identity) -> web.Response:
        """GET /api/v1/sessions/{id}: the session's metadata and every archived event."""
        session_id = path_id(request, "session")

        async with transaction(self.db) as conn:
            transcript = await load_transcript(conn, session_id)
            if transcript is None:
                raise APIError(404, "M_NOT_FOUND", "no such session")
            await record_access(conn, identity.user_id, "view", str(session_id))

        return web.json_response(export_json(transcript))

    async def export_session(self, request: web.Request, identity: Identity) -> web.Response:
        """GET /api/v1/sessions/{id}/export?format=json|html: the transcript as a file."""
        session_id = path_id(request, "session")
        export_format = request.query.get("format", "json")
        if export_format not in EXPORT_FORMATS:
            raise invalid("format", "json or html")

        async with transaction(self.db) as conn:
            transcript = await load_transcript(conn, session_id)
            if transcript is None:
                raise APIError(404, "M_NOT_FOUND", "no such session")
            details = {"format": export_format}
            await record_access(conn, identity.user_id, "export", str(session_id), details)

        filename = f"session-{session_id}.{export_format}"
        headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
        if export_format == "json":
            return web.json_response(export_json(transcript), headers=headers)
        headers |= {"Content-Security-Policy": EXPORT_CSP, "X-Frame-Options": "DENY"}
        html = render_export_html(transcript)
        return web.Response(text=html, content_type="text/html", headers=headers)

    async def get_holds(self, request: web.Request, identity: Identity) -> web.Response:
        """GET /api/v1/holds: active holds; `?released=true` adds released ones."""
        include_released = request.query.get("released", "").lower() in ("1", "true", "yes")
        async with transaction(self.db) as conn:
            holds = await list_holds(conn, include_released)
        return web.json_response({"holds": [hold_json(hold) for hold in holds]})

    async def post_hold(self, request: web.Request, identity: Identity) -> web.Response:
        """POST /api/v1/holds `{kind, value, reason}`: keep matching sessions from purges."""
        body = await read_json_object(request)
        if body.get("kind") not in get_args(HoldKind):
            raise invalid("kind", "one of session, agent, group")
        kind = cast(HoldKind, body["kind"])
        value = body_text(body, "value")
        reason = body_text(body, "reason", MAX_REASON_LENGTH)
        if kind == "agent" and not USER_ID_RE.fullmatch(value):
            raise invalid("value", "a Matrix user ID for an agent hold")
        if kind == "session" and not ROW_ID_RE.fullmatch(value):
            raise invalid("value", "a session ID for a session hold")

        async with transaction(self.db) as conn:
            if kind == "session" and await get_session(conn, int(value)) is None:
                raise APIError(404, "M_NOT_FOUND", "no such session")
            hold = await place_hold(conn, kind, value, reason, identity.user_id)
        return web.json_response(hold_json(hold), status=201)

    async def delete_hold(self, request: web.Request, identity: Identity) -> web.Response:
        """DELETE /api/v1/holds/{id}: release an active hold; the record of it stays."""
        hold_id = path_id(request, "hold")
        async with transaction(self.db) as conn:
            hold = await release_hold(conn, hold_id, identity.user_id)
        if hold is None:
            raise APIError(404, "M_NOT_FOUND", "no such active hold")
        return web.json_response(hold_json(hold))

    async def get_access_log(self, request: web.Request, identity: Identity) -> web.Response:
        """GET /api/v1/access-log?before=&limit=: who looked at what, newest first."""
        before = parse_row_id(request.query.get("before"), "before")
        limit = parse_limit(request.query.get("limit"))

        async with transaction(self.db) as conn:
            entries = await read_access_log(conn, limit, before)
            details: dict[str, Any] = {"before": before} if before is not None else {}
            await record_access(conn, identity.user_id, "access-log", "", details)

        next_before = entries[-1].id if len(entries) == limit else None
        return web.json_response(
            {"entries": [access_json(entry) for entry in entries], "next_before": next_before}
        )
