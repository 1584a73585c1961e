"""Reading single values: Matrix ID grammar, durations, sizes, and a reader that notes problems."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from mautrix.types import UserID

from ..errors import ConfigProblem

# Server name and user ID grammar: Matrix spec, appendices, "Server Name" and "User Identifiers"
# (historical localparts allowed, since other servers may still have them).
SERVER_NAME = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?"
SERVER_NAME_RE = re.compile(SERVER_NAME)
USER_ID_RE = re.compile(rf"@(?P<localpart>[\x21-\x39\x3b-\x7e]+):(?P<domain>{SERVER_NAME})")
GROUP_ID_RE = re.compile(r"[a-z0-9._=-]+")
LOCALPART_RE = re.compile(r"[a-z0-9._=/+-]+")
ALIAS_PREFIX_RE = re.compile(r"[A-Za-z0-9._=/+-]+")

_DURATION_RE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d|w)?")
_DURATION_UNITS: dict[str | None, float] = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    None: 1,
}
_SIZE_RE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[kmg]i?b|b)?", re.IGNORECASE)
_SIZE_UNITS: dict[str | None, int] = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9}
_SIZE_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, None: 1}

T = TypeVar("T")
# A regex and the words a problem uses to say what it expects.
NamedPattern = tuple[re.Pattern[str], str]


def parse_duration(text: str | int | float) -> float:
    """Seconds in "60s", "10m", "2h", "365d", "1.5s", "500ms", "2w" or a bare number."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"not a duration: {text!r}")
    if not isinstance(text, str):
        if not math.isfinite(text):
            raise ValueError(f"not a duration: {text!r}")
        return float(text)

    match = _DURATION_RE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    return float(match["number"]) * _DURATION_UNITS[match["unit"]]


def parse_size(text: str | int) -> int:
    """Bytes in "8MiB", "512KiB", "1MB", "100B" or a bare number of bytes."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ValueError(f"not a size: {text!r}")
    if isinstance(text, int):
        return text

    match = _SIZE_RE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a size: {text!r}")
    unit = match["unit"].lower() if match["unit"] else None
    return int(float(match["number"]) * _SIZE_UNITS[unit])


def is_user_id(value: str) -> bool:
    """Whether this is a well-formed Matrix user ID, `@localpart:domain`."""
    return len(value) <= 255 and USER_ID_RE.fullmatch(value) is not None


class Reader:
    """Reads typed values, noting every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[ConfigProblem] = []

    def problem(self, key: str, problem: str, expected: str) -> None:
        """Note one problem."""
        self.problems.append(ConfigProblem(key, problem, expected))

    def unknown_keys(self, section: Mapping[str, Any], key: str, known: Iterable[str]) -> None:
        """Note every key of `section` that Backline does not know."""
        for name in section:
            if name not in known:
                where = f"{key}.{name}" if key else str(name)
                self.problem(where, "is not a known key", "one of " + ", ".join(known))

    def mapping(self, value: Any, key: str) -> Mapping[str, Any]:
        """A mapping, or an empty one after noting the problem."""
        if isinstance(value, Mapping):
            return value
        self.problem(key, f"is {show(value)}", "a mapping")
        return {}

    def string(self, value: Any, key: str, pattern: NamedPattern | None = None) -> str:
        """A non-empty string, matching `pattern` (a regex and its description) when given."""
        expected = pattern[1] if pattern else "non-empty text"
        if not isinstance(value, str) or not value:
            self.problem(key, f"is {show(value)}", expected)
            return ""
        if pattern and not pattern[0].fullmatch(value):
            self.problem(key, f"is {show(value)}", expected)
        return value

    def user_id(self, value: Any, key: str) -> UserID:
        """A well-formed Matrix user ID."""
        if not isinstance(value, str) or not is_user_id(value):
            self.problem(key, f"is {show(value)}", "a user ID like @alice:example.org")
            return UserID("")
        return UserID(value)

    def agent_entry(self, value: Any, key: str) -> str:
        """A user ID, a domain, or "*"."""
        if isinstance(value, str) and (value == "*" or is_user_id(value)):
            return value
        if isinstance(value, str) and SERVER_NAME_RE.fullmatch(value):
            return value
        self.problem(key, f"is {show(value)}", 'a user ID, a domain, or "*"')
        return ""

    def integer(self, value: Any, key: str, low: int, high: int) -> int:
        """An integer from `low` to `high`."""
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(key, f"is {show(value)}", f"a whole number from {low} to {high}")
            return low
        return value

    def duration(self, value: Any, key: str, *, optional: bool = False) -> float | None:
        """A positive duration in seconds; None only when `optional`."""
        expected = "a positive duration like 60s, 10m, 2h or 365d" + (
            " or null" if optional else ""
        )
        if value is None and optional:
            return None
        try:
            seconds = parse_duration(value)
        except ValueError:
            self.problem(key, f"is {show(value)}", expected)
            return None
        if seconds <= 0:
            self.problem(key, f"is {show(value)}", expected)
        return seconds

    def boolean(self, value: Any, key: str) -> bool:
        """true or false."""
        if not isinstance(value, bool):
            self.problem(key, f"is {show(value)}", "true or false")
            return False
        return value

    def choice(self, value: Any, key: str, options: tuple[T, ...]) -> T:
        """One of `options`."""
        if value not in options:
            self.problem(key, f"is {show(value)}", "one of " + ", ".join(map(str, options)))
            return options[0]
        return cast(T, value)

    def strings(self, value: Any, key: str, item: Callable[[Any, str], T]) -> tuple[T, ...]:
        """A list, each entry checked by `item`."""
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            self.problem(key, f"is {show(value)}", "a list")
            return ()
        return tuple(item(entry, f"{key}[{index}]") for index, entry in enumerate(value))

    def url(self, value: Any, key: str, schemes: tuple[str, ...]) -> str:
        """A URL with one of `schemes`."""
        expected = "a URL starting with " + " or ".join(f"{s}:" for s in schemes)
        if not isinstance(value, str) or urlsplit(value).scheme not in schemes:
            self.problem(key, f"is {show(value)}", expected)
            return ""
        if schemes[0].startswith("http") and not urlsplit(value).hostname:
            self.problem(key, f"has no host: {show(value)}", expected)
        return value


def show(value: Any) -> str:
    """How a bad value is quoted in a problem; secrets are never shown."""
    if value is None:
        return "missing"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if isinstance(value, Mapping | list | tuple):
        return f"a {type(value).__name__}"
    return repr(value)
