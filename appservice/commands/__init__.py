"""The archive commands of `backline`: search, export, verify and legal holds.

They need only the config and the database, never the homeserver, so a compliance officer can
run them on any machine that holds the config. Each access is written to the archive's access
log under the actor `cli:<operating system user>`.
"""

from __future__ import annotations

import getpass
import os
import re
from datetime import UTC, datetime, timedelta

from ..config import parse_duration
from ..errors import BacklineError

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class CommandFailed(BacklineError):
    """A command could not do what was asked (unknown session, unknown hold, unwritable file)."""


def cli_actor() -> str:
    """Who the access log names for a command run from this terminal."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):
        # Containers often run as a user ID without a name.
        name = f"uid-{os.getuid()}"
    return f"cli:{name}"


def parse_time(text: str, *, end: bool = False, now: datetime | None = None) -> int:
    """Milliseconds since the epoch for a date, a date and time (UTC unless stated), or an age.

    `2024-05-01`, `2024-05-01T14:30`, `2024-05-01 14:30+02:00`, or `7d`, `12h` (that long
    ago). With `end`, a bare date means the end of that day, so `--until 2024-05-31` includes
    the 31st.
    """
    text = text.strip()
    if _DATE.fullmatch(text):
        day = datetime.fromisoformat(text).replace(tzinfo=UTC)
        return _ms(day + timedelta(days=1) if end else day)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        return _ms(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    try:
        age = parse_duration(text)
    except ValueError:
        raise ValueError(
            f"not a date, time or age: {text!r} (try 2024-05-01, 2024-05-01T14:30 or 7d)"
        ) from None
    return _ms((now or datetime.now(UTC)) - timedelta(seconds=age))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def format_columns(rows: list[list[str]]) -> str:
    """Rows as aligned columns; the last column, free text, is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines) + "\n"
