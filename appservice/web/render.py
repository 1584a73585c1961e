"""HTML for people: the archive pages and the standalone transcript export, from templates.

Autoescaping is on for every template, so any text from the archive (message bodies, names,
reasons) is shown as text. The only markup that reaches a page unescaped is marked `|safe`
in a template, each with a comment saying why it is safe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

if TYPE_CHECKING:
    from ..archive.transcript import Entry, Transcript

T = TypeVar("T")

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
STYLESHEET = STATIC_DIR / "backline.css"
# This many room-settings lines in a row (a new room has about eight) fold into one line.
FOLD_AT = 3


def format_time(ms: int | None) -> str:
    """A millisecond timestamp as people read it, always in UTC."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_clock(ms: int | None) -> str:
    """Only the time of day (UTC), for lines under a date divider."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S")


def format_day(ms: int | None) -> str:
    """Only the date (UTC), for the divider between days of a transcript."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%A, %Y-%m-%d")


def format_iso(ms: int | None) -> str:
    """A machine-readable timestamp for `<time datetime=...>`."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def format_size(size: int | None) -> str:
    """A file size in the unit people expect."""
    if size is None:
        return "size unknown"
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


@cache
def environment() -> Environment:
    """The one template environment; built on first use."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        # Every template is HTML, whatever its name; nothing is rendered unescaped by default.
        autoescape=select_autoescape(default=True, default_for_string=True),
        # A missing key is a bug in a template or its caller, not something to show as "".
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        time=format_time, clock=format_clock, day=format_day, iso=format_iso, size=format_size
    )
    return env


def render_page(template: str, **context: Any) -> str:
    """One archive page (a template from `templates/`)."""
    return environment().get_template(template).render(**context)


def html_response(template: str, status: int = 200, **context: Any) -> web.Response:
    """A page as an HTTP answer."""
    text = render_page(template, **context)
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def redirect(location: str) -> web.Response:
    """303 See Other: after a form, the browser fetches `location` with GET."""
    return web.Response(status=303, headers={"Location": location})


class PageError(Exception):
    """A problem to show to the person as an error page, with the status it is answered with."""

    def __init__(self, status: int, heading: str, message: str, **context: Any) -> None:
        super().__init__(message)
        self.status = status
        self.heading = heading
        self.message = message
        self.context = context


PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def shows_errors(handler: PageHandler) -> PageHandler:
    """Answer a handler's `PageError` with the error page instead of the API's JSON."""

    @wraps(handler)
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except PageError as e:
            return html_response(
                "error.html", e.status, heading=e.heading, message=e.message, **e.context
            )

    return handle


def sender_sides(session: dict[str, Any]) -> dict[str, str]:
    """Which side of the chat each person's messages sit on: the agent's, or an expert's.

    Anyone else (the group user posting the question and notices) gets the neutral
    "service" style.
    """
    sides = {str(offer["expert"]): "expert" for offer in session.get("offers") or []}
    sides.update({str(user): "expert" for user in session.get("claimed_by") or []})
    sides[str(session["agent"])] = "agent"
    return sides


@dataclass(frozen=True, slots=True)
class FoldedSettings:
    """Consecutive room-settings lines, shown as one line that opens to list them."""

    entries: list[Entry]
    kind: str = "folded"

    @property
    def sent_at(self) -> int:
        return self.entries[0].sent_at


def fold_settings(entries: list[Entry]) -> list[Entry | FoldedSettings]:
    """The transcript's lines, with runs of room-settings changes folded together."""
    shown: list[Entry | FoldedSettings] = []
    run: list[Entry] = []
    for entry in [*entries, None]:
        if entry is not None and entry.kind == "state":
            run.append(entry)
            continue
        shown += [FoldedSettings(run)] if len(run) >= FOLD_AT else run
        run = []
        if entry is not None:
            shown.append(entry)
    return shown


def transcript_context(transcript: Transcript) -> dict[str, Any]:
    """What the transcript templates need from a loaded transcript."""
    # An entry's `redacted_by` is the redaction event; people want to know who sent it.
    redactors = {
        str(event["event_id"]): str(event["sender"])
        for event in transcript.events
        if event.get("type") == "m.room.redaction"
    }
    return {
        "session": transcript.session,
        "entries": fold_settings(transcript.entries),
        "sides": sender_sides(transcript.session),
        "redactors": redactors,
    }


def render_export_html(
    transcript: Transcript, progress: Callable[[int, int], None] = lambda done, total: None
) -> str:
    """A transcript as one standalone HTML file: inline CSS, no scripts, no outside requests.

    `progress` hears how many of the chat's entries are rendered, of how many, as it goes.
    """
    context = transcript_context(transcript)
    context["entries"] = _reporting(context["entries"], progress)
    return render_page(
        "export.html",
        **context,
        stylesheet=STYLESHEET.read_text(encoding="utf-8"),
        exported_at=format_time(int(datetime.now(UTC).timestamp() * 1000)),
    )


def _reporting(items: list[T], progress: Callable[[int, int], None]) -> Iterator[T]:
    """The items, reporting each one the template is done with."""
    for done, item in enumerate(items, start=1):
        yield item
        progress(done, len(items))
