"""Backline's config: the user's YAML merged over config.example.yaml, checked, made typed."""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mautrix.types import UserID
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from .errors import ConfigError, ConfigProblem

Role = Literal["none", "agent", "manager", "compliance", "admin"]
ROLES: tuple[Role, ...] = ("none", "agent", "manager", "compliance", "admin")
Strategy = Literal["broadcast", "first_n", "serial", "round_robin", "least_busy"]
STRATEGIES: tuple[Strategy, ...] = ("broadcast", "first_n", "serial", "round_robin", "least_busy")
PRESENCES = ("online", "unavailable", "offline")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# The mautrix convention: the example ships this text and `-g` replaces it.
PLACEHOLDER_TOKEN = "This value is generated when generating the registration"  # noqa: S105
GENERATE_HINT = "run `backline -c config.yaml -r registration.yaml -g`"

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

# Keyed by user IDs and domains: merging the example's entries into the user's would grant
# roles (or expert settings) to people the operator never named.
_REPLACED_SECTIONS = frozenset({"permissions", "experts"})

T = TypeVar("T")
_Pattern = tuple[re.Pattern[str], str]


@dataclass(frozen=True, slots=True)
class HomeserverConfig:
    """The homeserver Backline is registered with."""

    address: str
    domain: str


@dataclass(frozen=True, slots=True)
class AppserviceConfig:
    """Backline as the homeserver sees it."""

    address: str
    hostname: str
    port: int
    id: str
    bot_localpart: str
    bot_displayname: str
    group_localpart_prefix: str
    session_alias_prefix: str
    as_token: str
    hs_token: str
    max_body_size: int


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """Where the archive and routing state live."""

    url: str
    pool_size: int


@dataclass(frozen=True, slots=True)
class ExpertConfig:
    """One expert's settings; the defaults apply to experts not listed."""

    skills: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    max_sessions: int = 3
    timezone: str | None = None


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """How a group offers a request to its experts."""

    strategy: Strategy = "broadcast"
    offer_count: int = 3
    needed: int = 1
    offer_timeout: float | None = 60.0
    request_timeout: float = 600.0
    overflow: str | None = None
    interrupt_presence: tuple[str, ...] = ("online",)
    busy_words: tuple[str, ...] = ("busy", "dnd", "do not disturb", "meeting")


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """An expert group, shown to agents as one virtual user."""

    id: str
    displayname: str
    members: tuple[UserID, ...]
    agents: tuple[str, ...]
    routing: RoutingConfig = field(default_factory=RoutingConfig)


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A bearer token for one customer interaction system."""

    name: str
    token: str


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """Log level and output format."""

    level: str
    format: Literal["text", "json"]


@dataclass(frozen=True, slots=True)
class Config:
    """The whole checked config."""

    path: Path | None
    homeserver: HomeserverConfig
    appservice: AppserviceConfig
    database: DatabaseConfig
    permissions: dict[str, Role]
    experts: dict[UserID, ExpertConfig]
    groups: tuple[GroupConfig, ...]
    api_tokens: tuple[ApiToken, ...]
    archive_retention: float | None
    logging: LoggingConfig

    @property
    def bot_mxid(self) -> UserID:
        """The directory bot's user ID."""
        return UserID(f"@{self.appservice.bot_localpart}:{self.homeserver.domain}")

    def group_mxid(self, group_id: str) -> UserID:
        """The virtual user that stands for a group."""
        prefix = self.appservice.group_localpart_prefix
        return UserID(f"@{prefix}{group_id}:{self.homeserver.domain}")

    def group(self, group_id: str) -> GroupConfig | None:
        """The group with this id, if configured."""
        return next((group for group in self.groups if group.id == group_id), None)

    def group_for_mxid(self, user_id: str) -> GroupConfig | None:
        """The configured group whose virtual user this is."""
        match = USER_ID_RE.fullmatch(user_id)
        prefix = self.appservice.group_localpart_prefix
        if not match or match["domain"] != self.homeserver.domain:
            return None
        if not match["localpart"].startswith(prefix):
            return None
        return self.group(match["localpart"][len(prefix) :])

    def expert(self, user_id: str) -> ExpertConfig:
        """This expert's settings, or the defaults."""
        return self.experts.get(UserID(user_id), ExpertConfig())


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


def load_config(path: Path, *, require_tokens: bool = True) -> Config:
    """Read, merge over the example, check and type the config file at `path`."""
    try:
        data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    except OSError as error:
        problem = ConfigProblem("(file)", f"cannot be read: {error.strerror}", "a readable file")
        raise ConfigError([problem], str(path)) from error
    except YAMLError as error:
        problem = ConfigProblem("(file)", f"is not valid YAML: {error}", "a YAML mapping")
        raise ConfigError([problem], str(path)) from error

    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        problem = ConfigProblem("(file)", "is not a mapping", "keys like `homeserver:` at the top")
        raise ConfigError([problem], str(path))
    return config_from_dict(data, path=path, require_tokens=require_tokens)


def config_from_dict(
    data: Mapping[str, Any], *, path: Path | None = None, require_tokens: bool = True
) -> Config:
    """Check and type the user's config mapping, merged over the example."""
    merged = merge(example_config(), data)
    reader = _Reader()

    reader.unknown_keys(merged, "", _SECTIONS)
    homeserver = _homeserver(reader, merged.get("homeserver"))
    appservice = _appservice(reader, merged.get("appservice"), require_tokens)
    config = Config(
        path=path,
        homeserver=homeserver,
        appservice=appservice,
        database=_database(reader, merged.get("database")),
        permissions=_permissions(reader, merged.get("permissions")),
        experts=_experts(reader, merged.get("experts")),
        groups=_groups(reader, merged.get("groups")),
        api_tokens=_api_tokens(reader, merged.get("api")),
        archive_retention=_archive_retention(reader, merged.get("archive")),
        logging=_logging(reader, merged.get("logging")),
    )
    _check_namespaces(reader, config)

    if reader.problems:
        error = ConfigError(reader.problems, str(path) if path else "")
        if any(p.key in _TOKEN_KEYS for p in reader.problems):
            error.hint = GENERATE_HINT
        raise error
    return config


def merge(
    base: Mapping[str, Any], override: Mapping[str, Any], top: bool = True
) -> dict[str, Any]:
    """Deep-merge `override` into a copy of `base`; lists (and user-keyed sections) replace."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        replace = top and key in _REPLACED_SECTIONS
        old = merged.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping) and not replace:
            merged[key] = merge(old, value, top=False)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def example_config() -> dict[str, Any]:
    """The parsed example config (a fresh copy each call)."""
    return copy.deepcopy(_example_config())


@functools.cache
def _example_config() -> dict[str, Any]:
    package = Path(__file__).parent
    for candidate in (package / "config.example.yaml", package.parent / "config.example.yaml"):
        if candidate.is_file():
            loaded = YAML(typ="safe", pure=True).load(candidate.read_text(encoding="utf-8"))
            return cast(dict[str, Any], loaded)
    raise FileNotFoundError(f"config.example.yaml is neither in {package} nor in {package.parent}")


_SECTIONS = (
    "homeserver",
    "appservice",
    "database",
    "permissions",
    "experts",
    "groups",
    "api",
    "archive",
    "logging",
)
_TOKEN_KEYS = ("appservice.as_token", "appservice.hs_token")


class _Reader:
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
        self.problem(key, f"is {_show(value)}", "a mapping")
        return {}

    def string(self, value: Any, key: str, pattern: _Pattern | None = None) -> str:
        """A non-empty string, matching `pattern` (a regex and its description) when given."""
        expected = pattern[1] if pattern else "non-empty text"
        if not isinstance(value, str) or not value:
            self.problem(key, f"is {_show(value)}", expected)
            return ""
        if pattern and not pattern[0].fullmatch(value):
            self.problem(key, f"is {_show(value)}", expected)
        return value

    def user_id(self, value: Any, key: str) -> UserID:
        """A well-formed Matrix user ID."""
        if not isinstance(value, str) or not is_user_id(value):
            self.problem(key, f"is {_show(value)}", "a user ID like @alice:example.org")
            return UserID("")
        return UserID(value)

    def agent_entry(self, value: Any, key: str) -> str:
        """A user ID, a domain, or "*"."""
        if isinstance(value, str) and (value == "*" or is_user_id(value)):
            return value
        if isinstance(value, str) and SERVER_NAME_RE.fullmatch(value):
            return value
        self.problem(key, f"is {_show(value)}", 'a user ID, a domain, or "*"')
        return ""

    def integer(self, value: Any, key: str, low: int, high: int) -> int:
        """An integer from `low` to `high`."""
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(key, f"is {_show(value)}", f"a whole number from {low} to {high}")
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
            self.problem(key, f"is {_show(value)}", expected)
            return None
        if seconds <= 0:
            self.problem(key, f"is {_show(value)}", expected)
        return seconds

    def choice(self, value: Any, key: str, options: tuple[T, ...]) -> T:
        """One of `options`."""
        if value not in options:
            self.problem(key, f"is {_show(value)}", "one of " + ", ".join(map(str, options)))
            return options[0]
        return cast(T, value)

    def strings(self, value: Any, key: str, item: Callable[[Any, str], T]) -> tuple[T, ...]:
        """A list, each entry checked by `item`."""
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            self.problem(key, f"is {_show(value)}", "a list")
            return ()
        return tuple(item(entry, f"{key}[{index}]") for index, entry in enumerate(value))

    def url(self, value: Any, key: str, schemes: tuple[str, ...]) -> str:
        """A URL with one of `schemes`."""
        expected = "a URL starting with " + " or ".join(f"{s}:" for s in schemes)
        if not isinstance(value, str) or urlsplit(value).scheme not in schemes:
            self.problem(key, f"is {_show(value)}", expected)
            return ""
        if schemes[0].startswith("http") and not urlsplit(value).hostname:
            self.problem(key, f"has no host: {_show(value)}", expected)
        return value


def _show(value: Any) -> str:
    """How a bad value is quoted in a problem; secrets are never shown."""
    if value is None:
        return "missing"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if isinstance(value, Mapping | list | tuple):
        return f"a {type(value).__name__}"
    return repr(value)


def _homeserver(reader: _Reader, value: Any) -> HomeserverConfig:
    section = reader.mapping(value, "homeserver")
    reader.unknown_keys(section, "homeserver", ("address", "domain"))
    return HomeserverConfig(
        address=reader.url(section.get("address"), "homeserver.address", _HTTP),
        domain=reader.string(section.get("domain"), "homeserver.domain", _SERVER_NAME),
    )


def _appservice(reader: _Reader, value: Any, require_tokens: bool) -> AppserviceConfig:
    section = reader.mapping(value, "appservice")
    reader.unknown_keys(section, "appservice", AppserviceConfig.__slots__)

    def text(name: str, pattern: _Pattern | None = None) -> str:
        return reader.string(section.get(name), f"appservice.{name}", pattern)

    return AppserviceConfig(
        address=reader.url(section.get("address"), "appservice.address", _HTTP),
        hostname=text("hostname"),
        port=reader.integer(section.get("port"), "appservice.port", 1, 65535),
        id=text("id"),
        bot_localpart=text("bot_localpart", _LOCALPART),
        bot_displayname=text("bot_displayname"),
        group_localpart_prefix=text("group_localpart_prefix", _LOCALPART),
        session_alias_prefix=text("session_alias_prefix", _ALIAS_PREFIX),
        as_token=_token(reader, section.get("as_token"), "appservice.as_token", require_tokens),
        hs_token=_token(reader, section.get("hs_token"), "appservice.hs_token", require_tokens),
        max_body_size=_size(reader, section.get("max_body_size"), "appservice.max_body_size"),
    )


def _token(reader: _Reader, value: Any, key: str, require: bool) -> str:
    token = value if isinstance(value, str) else ""
    if require and (not token.strip() or token == PLACEHOLDER_TOKEN):
        problem = "is still the placeholder" if token == PLACEHOLDER_TOKEN else "is empty"
        reader.problem(key, problem, f"a generated token: {GENERATE_HINT}")
    return token


def _size(reader: _Reader, value: Any, key: str) -> int:
    try:
        size = parse_size(value)
    except ValueError:
        size = 0
    if size < 1024:
        reader.problem(key, f"is {_show(value)}", "a size of at least 1KiB, like 8MiB")
    return size


def _database(reader: _Reader, value: Any) -> DatabaseConfig:
    section = reader.mapping(value, "database")
    reader.unknown_keys(section, "database", DatabaseConfig.__slots__)
    return DatabaseConfig(
        url=reader.url(section.get("url"), "database.url", _DATABASE_SCHEMES),
        pool_size=reader.integer(section.get("pool_size"), "database.pool_size", 1, 1000),
    )


def _permissions(reader: _Reader, value: Any) -> dict[str, Role]:
    section = reader.mapping(value if value is not None else {}, "permissions")
    permissions: dict[str, Role] = {}
    for who, role in section.items():
        key = f"permissions[{who!r}]"
        entry = reader.agent_entry(who, key)
        permissions[entry] = reader.choice(role, key, ROLES)
    return permissions


def _experts(reader: _Reader, value: Any) -> dict[UserID, ExpertConfig]:
    section = reader.mapping(value if value is not None else {}, "experts")
    return {
        reader.user_id(user_id, f"experts[{user_id!r}]"): _expert(
            reader, settings, f"experts[{user_id!r}]"
        )
        for user_id, settings in section.items()
    }


def _expert(reader: _Reader, value: Any, key: str) -> ExpertConfig:
    section = reader.mapping(value if value is not None else {}, key)
    reader.unknown_keys(section, key, ExpertConfig.__slots__)
    default = ExpertConfig()
    return ExpertConfig(
        skills=reader.strings(section.get("skills"), f"{key}.skills", reader.string),
        languages=reader.strings(section.get("languages"), f"{key}.languages", reader.string),
        max_sessions=reader.integer(
            section.get("max_sessions", default.max_sessions), f"{key}.max_sessions", 1, 1000
        ),
        timezone=_timezone(reader, section.get("timezone"), f"{key}.timezone"),
    )


def _timezone(reader: _Reader, value: Any, key: str) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        reader.problem(key, f"is {_show(value)}", "an IANA time zone like Europe/Berlin")
        return None
    return cast(str, value)


def _groups(reader: _Reader, value: Any) -> tuple[GroupConfig, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        reader.problem("groups", f"is {_show(value)}", "a list of groups")
        return ()
    groups = tuple(_group(reader, entry, f"groups[{i}]") for i, entry in enumerate(value))

    seen: set[str] = set()
    for index, group in enumerate(groups):
        if group.id and group.id in seen:
            reader.problem(f"groups[{index}].id", f"repeats {group.id!r}", "a unique group id")
        seen.add(group.id)
    for index in range(len(groups)):
        _check_overflow(reader, groups, index, seen)
    return groups


def _group(reader: _Reader, value: Any, key: str) -> GroupConfig:
    section = reader.mapping(value, key)
    reader.unknown_keys(section, key, GroupConfig.__slots__)
    group_id = reader.string(section.get("id"), f"{key}.id", _GROUP_ID)
    members = reader.strings(section.get("members"), f"{key}.members", reader.user_id)
    if len(set(members)) != len(members):
        reader.problem(f"{key}.members", "lists someone twice", "each expert once")
    return GroupConfig(
        id=group_id,
        displayname=reader.string(section.get("displayname", group_id), f"{key}.displayname"),
        members=members,
        agents=reader.strings(section.get("agents", ["*"]), f"{key}.agents", reader.agent_entry),
        routing=_routing(reader, section.get("routing"), f"{key}.routing"),
    )


def _routing(reader: _Reader, value: Any, key: str) -> RoutingConfig:
    section = reader.mapping(value if value is not None else {}, key)
    reader.unknown_keys(section, key, RoutingConfig.__slots__)
    default = RoutingConfig()

    def get(name: str) -> Any:
        return section.get(name, getattr(default, name))

    routing = RoutingConfig(
        strategy=reader.choice(get("strategy"), f"{key}.strategy", STRATEGIES),
        offer_count=reader.integer(get("offer_count"), f"{key}.offer_count", 1, 1000),
        needed=reader.integer(get("needed"), f"{key}.needed", 1, 1000),
        offer_timeout=reader.duration(get("offer_timeout"), f"{key}.offer_timeout", optional=True),
        request_timeout=reader.duration(get("request_timeout"), f"{key}.request_timeout") or 0.0,
        overflow=_overflow_name(reader, get("overflow"), f"{key}.overflow"),
        interrupt_presence=reader.strings(
            get("interrupt_presence"),
            f"{key}.interrupt_presence",
            lambda v, k: reader.choice(v, k, PRESENCES),
        ),
        busy_words=tuple(
            w.lower()
            for w in reader.strings(get("busy_words"), f"{key}.busy_words", reader.string)
        ),
    )

    if routing.strategy == "first_n" and routing.offer_count < routing.needed:
        reader.problem(
            f"{key}.offer_count",
            f"is {routing.offer_count}",
            f"at least needed ({routing.needed})",
        )
    return routing


def _overflow_name(reader: _Reader, value: Any, key: str) -> str | None:
    if value is None:
        return None
    return reader.string(value, key, _GROUP_ID)


def _check_overflow(
    reader: _Reader, groups: tuple[GroupConfig, ...], index: int, ids: set[str]
) -> None:
    group = groups[index]
    key = f"groups[{index}].routing.overflow"
    overflow = group.routing.overflow
    if not overflow:
        return
    if overflow == group.id or overflow not in ids:
        reader.problem(key, f"is {overflow!r}", "the id of another configured group")
        return

    # Follow the chain: a request must not bounce between groups forever.
    by_id = {g.id: g for g in groups}
    seen = {group.id}
    while overflow is not None and overflow in by_id:
        if overflow in seen:
            reader.problem(key, f"leads back to {overflow!r}", "an overflow chain without a loop")
            return
        seen.add(overflow)
        overflow = by_id[overflow].routing.overflow


def _api_tokens(reader: _Reader, value: Any) -> tuple[ApiToken, ...]:
    section = reader.mapping(value, "api")
    reader.unknown_keys(section, "api", ("tokens",))
    entries = section.get("tokens") or []
    if not isinstance(entries, list):
        reader.problem("api.tokens", f"is {_show(entries)}", "a list of {name, token}")
        return ()
    return tuple(_api_token(reader, entry, f"api.tokens[{i}]") for i, entry in enumerate(entries))


def _api_token(reader: _Reader, value: Any, key: str) -> ApiToken:
    section = reader.mapping(value, key)
    reader.unknown_keys(section, key, ApiToken.__slots__)
    token = section.get("token")
    if not isinstance(token, str) or token == PLACEHOLDER_TOKEN or len(token) < 16:
        problem = "is the placeholder" if token == PLACEHOLDER_TOKEN else "is missing or too short"
        reader.problem(f"{key}.token", problem, "a random token of at least 16 characters")
        token = ""
    return ApiToken(name=reader.string(section.get("name"), f"{key}.name"), token=token)


def _archive_retention(reader: _Reader, value: Any) -> float | None:
    section = reader.mapping(value, "archive")
    reader.unknown_keys(section, "archive", ("retention",))
    retention = section.get("retention")
    if retention == "forever":
        return None
    return reader.duration(retention, "archive.retention", optional=True)


def _logging(reader: _Reader, value: Any) -> LoggingConfig:
    section = reader.mapping(value, "logging")
    reader.unknown_keys(section, "logging", LoggingConfig.__slots__)
    level = section.get("level")
    return LoggingConfig(
        level=reader.choice(
            level.upper() if isinstance(level, str) else level, "logging.level", LOG_LEVELS
        ),
        format=reader.choice(section.get("format"), "logging.format", ("text", "json")),
    )


def _check_namespaces(reader: _Reader, config: Config) -> None:
    """The bot must not fall inside the group namespace, nor share an ID with the registration."""
    bot = config.appservice.bot_localpart
    prefix = config.appservice.group_localpart_prefix
    if prefix and bot.startswith(prefix):
        reader.problem(
            "appservice.bot_localpart", f"{bot!r} starts with the group prefix", "another name"
        )
    tokens = config.appservice.as_token, config.appservice.hs_token
    if tokens[0] and tokens[0] == tokens[1] and tokens[0] != PLACEHOLDER_TOKEN:
        reader.problem("appservice.hs_token", "equals as_token", f"two tokens: {GENERATE_HINT}")
    names = [token.name for token in config.api_tokens]
    for index, name in enumerate(names):
        if name and name in names[:index]:
            reader.problem(f"api.tokens[{index}].name", f"repeats {name!r}", "a unique name")


_HTTP = ("http", "https")
_SERVER_NAME = SERVER_NAME_RE, "a server name like example.org"
_LOCALPART = LOCALPART_RE, "lower-case letters, digits and . _ = / + -"
_ALIAS_PREFIX = ALIAS_PREFIX_RE, "letters, digits and . _ = / + -"
_GROUP_ID = GROUP_ID_RE, "lower-case letters, digits and . _ = -"
_DATABASE_SCHEMES = ("sqlite", "sqlite3", "postgres", "postgresql")
