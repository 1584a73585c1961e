"""Archived text as plain text, for chat replies and terminals."""

from __future__ import annotations

import html
import re
import unicodedata
from datetime import UTC, datetime

# Bidirectional overrides and isolates can make text show in another order than it is stored
# (CVE-2021-42574, "Trojan Source"); archived text is shown without them.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_SPACES = re.compile(r"\s+")
_MARKS = re.compile(r"(</?mark>)")


def printable(text: str) -> str:
    """One line without control or reordering characters.

    Message bodies come from anyone in a room: an escape sequence in one must not drive the
    reader's terminal, and a line break must not fake a row of a table.
    """
    return _one_line(text).strip()


def plain_snippet(snippet_html: str, start: str = "**", end: str = "**") -> str:
    """A search snippet (escaped HTML with `<mark>` around matches) as plain text.

    Matches are wrapped in `start` and `end`: `**` for chat, ANSI bold for a terminal, or
    nothing. Only the markup the search itself adds is read; everything else was escaped.
    """
    parts = []
    for part in _MARKS.split(snippet_html):
        if part == "<mark>":
            parts.append(start)
        elif part == "</mark>":
            parts.append(end)
        else:
            parts.append(_one_line(html.unescape(part)))
    return "".join(parts).strip()


def _one_line(text: str) -> str:
    cleaned = "".join(
        " " if unicodedata.category(ch) == "Cc" else ch for ch in text if ch not in _BIDI_CONTROLS
    )
    return _SPACES.sub(" ", cleaned)


def format_time(ms: int | None) -> str:
    """A timestamp for people: UTC, to the minute."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
