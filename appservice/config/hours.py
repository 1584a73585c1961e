"""Working hours: `Mon-Fri 09:00-17:00` read from the config, checked in the expert's zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(
    r"^\s*(?P<first>[a-z]{3})(?:\s*-\s*(?P<last>[a-z]{3}))?\s+"
    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$",
    re.IGNORECASE,
)
HOURS_EXPECTED = 'working hours like "Mon-Fri 09:00-17:00" or "Sat 10:00-14:00"'


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """One span of working time on some weekdays; `end` may pass midnight (22:00-06:00)."""

    days: frozenset[int]  # 0 is Monday
    start: int  # minutes after midnight
    end: int
    text: str

    def contains(self, moment: datetime) -> bool:
        """Whether this local time falls in the span."""
        minute = moment.hour * 60 + moment.minute
        if self.start < self.end:
            return moment.weekday() in self.days and self.start <= minute < self.end
        # Past midnight: the late part belongs to the day it started on.
        yesterday = (moment.weekday() - 1) % 7
        return (moment.weekday() in self.days and minute >= self.start) or (
            yesterday in self.days and minute < self.end
        )


def _minutes(text: str) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise ValueError(text)
    return hours * 60 + minutes


def parse_hours(text: str) -> WorkingHours:
    """One span; raises ValueError with nothing to add when it is not one."""
    match = _SPAN.match(text)
    if not match:
        raise ValueError(text)
    first = DAYS.index(match["first"].lower()) if match["first"].lower() in DAYS else -1
    last_name = (match["last"] or match["first"]).lower()
    last = DAYS.index(last_name) if last_name in DAYS else -1
    if first < 0 or last < 0:
        raise ValueError(text)
    start, end = _minutes(match["start"]), _minutes(match["end"])
    if start == end:
        raise ValueError(text)
    days = frozenset((first + offset) % 7 for offset in range((last - first) % 7 + 1))
    return WorkingHours(days, start, end, text.strip())


def at_work(hours: tuple[WorkingHours, ...], zone: str | None, moment: datetime) -> bool:
    """Whether someone with these hours works at `moment` (aware); no hours means always."""
    if not hours:
        return True
    local = moment.astimezone(ZoneInfo(zone or "UTC"))
    return any(span.contains(local) for span in hours)


def next_change(
    hours: tuple[WorkingHours, ...], zone: str | None, moment: datetime
) -> datetime | None:
    """The next time `at_work` changes, within eight days; None without hours."""
    if not hours:
        return None
    tz = ZoneInfo(zone or "UTC")
    local = moment.astimezone(tz)
    working = at_work(hours, zone, moment)
    # Spans begin and end only at their start and end minutes, so those are the candidates.
    candidates = sorted(
        datetime.combine(local.date() + timedelta(days=day), time(), tz)
        + timedelta(minutes=minute)
        for day in range(-1, 9)
        for span in hours
        for minute in (span.start, span.end)
    )
    for candidate in candidates:
        if candidate > moment and at_work(hours, zone, candidate) != working:
            return candidate
    return None
