"""The archive web page: search, transcripts, exports and stored files, for compliance.

Every page works without JavaScript and loads nothing from elsewhere. Every search, opened
transcript, export and file download is written to the access log before it is answered.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web
from mautrix.util.async_db import Database

from ..archive.access import record_access
from ..archive.media import media_file
from ..archive.search import SearchError, SearchFilters, search_archive
from ..archive.transcript import Transcript, export_json, load_transcript
from ..config import Config
from ..db import transaction
from ..db.stored_media import stored_media
from ..db.web_sessions import WebSession
from .render import (
    STYLESHEET,
    PageError,
    html_response,
    redirect,
    render_export_html,
    shows_errors,
    transcript_context,
)
from .signin import SignIn

log = logging.getLogger("backline.web.pages")

PAGE_SIZE = 25
MAX_QUERY_LENGTH = 500
SHA256_RE = re.compile(r"[0-9a-f]{64}")
MEDIA_TYPE_RE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}")
EXPORT_FORMATS = ("json", "html")
# Session IDs are BIGINT on PostgreSQL; anything longer is no session.
MAX_SESSION_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class SearchForm:
    """The search page's fields as typed, and the filters they mean."""

    query: str
    fields: dict[str, str]
    filters: SearchFilters
    cursor: str | None

    @classmethod
    def parse(cls, query: Any) -> SearchForm:
        """Read the query string; a malformed date raises `ValueError` naming the field."""
        fields = {
            name: str(query.get(name, "")).strip()[:MAX_QUERY_LENGTH]
            for name in ("group", "agent", "expert", "since", "until")
        }
        filters = SearchFilters(
            group=fields["group"] or None,
            agent=fields["agent"] or None,
            expert=fields["expert"] or None,
            since=day_start(fields["since"], "From"),
            # "To" names the last day to include; the archive's bound is exclusive.
            until=day_start(fields["until"], "To", days_after=1),
        )
        text = str(query.get("q", "")).strip()[:MAX_QUERY_LENGTH]
        return cls(text, fields, filters, query.get("cursor") or None)

    def url(self, cursor: str) -> str:
        """This search's page that starts at `cursor`."""
        params = {"q": self.query, **self.fields, "cursor": cursor}
        return "/archive?" + urlencode({k: v for k, v in params.items() if v})


def day_start(value: str, label: str, days_after: int = 0) -> int | None:
    """Midnight UTC of a YYYY-MM-DD day (plus `days_after` days) in ms; None when empty."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{label}: {value!r} is not a date like 2024-05-31.") from None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=days_after)
    return int(start.timestamp() * 1000)


def session_id_of(request: web.Request) -> int:
    """The session ID in the path; anything else is a page that does not exist."""
    raw = request.match_info["session_id"]
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_SESSION_ID:
        raise no_such_session()
    return int(raw)


def no_such_session() -> PageError:
    """The page for a session number the archive does not know."""
    return PageError(404, "No such session", "The archive has no session with this number.")


def attachment(filename: str) -> str:
    """A Content-Disposition value that makes the browser save the file, never show it."""
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", filename)[:100] or "file"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


def safe_content_type(declared: str | None) -> str:
    """The sender's declared type if it is a plain media type, else octet-stream."""
    if declared and MEDIA_TYPE_RE.fullmatch(declared):
        return declared
    return "application/octet-stream"


class ArchivePages:
    """The people-facing pages of the archive; see `add_routes` for the routes."""

    def __init__(self, config: Config, db: Database, http_session: aiohttp.ClientSession) -> None:
        self.config = config
        self.db = db
        self.signin = SignIn(config, db, http_session)

    def add_routes(self, app: web.Application) -> None:
        """Add every page route, sign-in included."""
        app.router.add_get("/", self.get_root)
        app.router.add_get("/static/backline.css", self.get_stylesheet)
        self.signin.add_routes(app)
        app.router.add_get("/archive", shows_errors(self.get_search))
        app.router.add_get("/archive/sessions/{session_id}", shows_errors(self.get_transcript))
        export = "/archive/sessions/{session_id}/export"
        app.router.add_get(export, shows_errors(self.get_export))
        app.router.add_get("/archive/media/{sha256}", shows_errors(self.get_media))

    async def get_root(self, request: web.Request) -> web.Response:
        """GET /: the archive is the only page people have."""
        return redirect("/archive")

    async def get_stylesheet(self, request: web.Request) -> web.FileResponse:
        """GET /static/backline.css."""
        return web.FileResponse(STYLESHEET, headers={"Content-Type": "text/css; charset=utf-8"})

    def page_context(self, viewer: WebSession) -> dict[str, Any]:
        """What the page frame shows: who is signed in, and the token for its sign-out form."""
        return {"user": viewer.user_id, "csrf_token": viewer.csrf_token}

    async def get_search(self, request: web.Request) -> web.Response:
        """GET /archive: the search form, and results when there are any."""
        viewer = await self.signin.require(request)
        context = self.page_context(viewer) | {"groups": [g.id for g in self.config.groups]}
        try:
            form = SearchForm.parse(request.query)
        except ValueError as e:
            fields = {name: request.query.get(name, "") for name in ("since", "until")}
            blank = {"group": "", "agent": "", "expert": ""} | fields
            context |= {"query": request.query.get("q", ""), "filters": blank}
            return html_response(
                "search.html", 400, **context, error=str(e), hits=None, next_url=None
            )
        context |= {"query": form.query, "filters": form.fields}

        details: dict[str, Any] = {"via": "web"}
        details |= {name: value for name, value in form.fields.items() if value}
        async with transaction(self.db) as conn:
            try:
                page = await search_archive(conn, form.query, form.filters, form.cursor, PAGE_SIZE)
            except SearchError:
                error = "This results page link is no longer valid; search again."
                return html_response(
                    "search.html", 400, **context, error=error, hits=None, next_url=None
                )
            details["results"] = len(page.hits)
            await record_access(conn, viewer.user_id, "search", form.query, details)

        next_url = form.url(page.next_cursor) if page.next_cursor else None
        return html_response("search.html", **context, error="", hits=page.hits, next_url=next_url)

    async def get_transcript(self, request: web.Request) -> web.Response:
        """GET /archive/sessions/{id}: the session as a chat, with its facts."""
        viewer = await self.signin.require(request)
        session_id = session_id_of(request)

        transcript = await self.load(viewer, session_id, "view", {"via": "web"})

        context = self.page_context(viewer) | transcript_context(transcript)
        return html_response("transcript.html", **context)

    async def get_export(self, request: web.Request) -> web.Response:
        """GET /archive/sessions/{id}/export?format=json|html: the transcript as a file."""
        viewer = await self.signin.require(request)
        session_id = session_id_of(request)
        export_format = request.query.get("format", "html")
        if export_format not in EXPORT_FORMATS:
            raise PageError(400, "Unknown export format", "Choose the JSON or HTML export.")

        details = {"via": "web", "format": export_format}
        transcript = await self.load(viewer, session_id, "export", details)

        filename = f"backline-session-{session_id}.{export_format}"
        headers = {"Content-Disposition": attachment(filename)}
        if export_format == "json":
            body = json.dumps(export_json(transcript), indent=2, ensure_ascii=False)
            return web.Response(text=body, content_type="application/json", headers=headers)
        html = render_export_html(transcript)
        return web.Response(text=html, content_type="text/html", headers=headers)

    async def load(
        self, viewer: WebSession, session_id: int, action: str, details: dict[str, Any]
    ) -> Transcript:
        """A session's transcript, logged as `action` before anyone sees it."""
        async with transaction(self.db) as conn:
            transcript = await load_transcript(conn, session_id)
            if transcript is None:
                raise no_such_session()
            await record_access(conn, viewer.user_id, action, str(session_id), details)
        return transcript

    async def get_media(self, request: web.Request) -> web.FileResponse:
        """GET /archive/media/{sha256}: a stored file, always as a download."""
        viewer = await self.signin.require(request)
        digest = request.match_info["sha256"]
        missing = PageError(404, "No such file", "The archive keeps no file with this hash.")
        if not SHA256_RE.fullmatch(digest):
            raise missing

        path = media_file(self.config.archive.media_path, digest)
        async with transaction(self.db) as conn:
            media = await stored_media(conn, digest)
            if media is None or not path.is_file():
                raise missing
            details = {"via": "web", "filename": media.filename}
            await record_access(conn, viewer.user_id, "export", f"media:{digest}", details)

        headers = {
            # The sender's client declared this type; nosniff and the attachment disposition
            # keep the browser from treating the bytes as anything it would run or render.
            "Content-Type": safe_content_type(media.content_type),
            "Content-Disposition": attachment(media.filename or digest),
        }
        return web.FileResponse(path, headers=headers)
