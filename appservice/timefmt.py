"""Timestamps as people and JSON read them: milliseconds since the epoch, shown in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_utc(ms: int | None) -> str | None:
    """Milliseconds since the epoch as ISO 8601 UTC, e.g. `2026-01-31T10:00:00.000Z`."""
    if ms is None:
        return None
    moment = EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
