"""Reading each config section into its dataclass, and the checks that span sections."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mautrix.types import UserID

from .hours import HOURS_EXPECTED, WorkingHours, parse_hours
from .model import (
    GENERATE_HINT,
    LOG_LEVELS,
    PLACEHOLDER_TOKEN,
    PRESENCES,
    ROLES,
    STRATEGIES,
    ApiToken,
    AppserviceConfig,
    ArchiveConfig,
    Config,
    DatabaseConfig,
    ExpertConfig,
    GroupConfig,
    HomeserverConfig,
    LoggingConfig,
    Role,
    RoutingConfig,
    WebConfig,
)
from .values import (
    ALIAS_PREFIX_RE,
    GROUP_ID_RE,
    LOCALPART_RE,
    SERVER_NAME_RE,
    NamedPattern,
    Reader,
    parse_size,
    show,
)

_SECTIONS = (
    "homeserver",
    "appservice",
    "database",
    "permissions",
    "experts",
    "groups",
    "api",
    "archive",
    "web",
    "logging",
)

_HTTP = ("http", "https")
_SERVER_NAME = SERVER_NAME_RE, "a server name like example.org"
_LOCALPART = LOCALPART_RE, "lower-case letters, digits and . _ = / + -"
_ALIAS_PREFIX = ALIAS_PREFIX_RE, "letters, digits and . _ = / + -"
_GROUP_ID = GROUP_ID_RE, "lower-case letters, digits and . _ = -"
_RULE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*"), "a Python callable as module:function"
_DATABASE_SCHEMES = ("sqlite", "sqlite3", "postgres", "postgresql")


def read_config(
    reader: Reader, merged: Mapping[str, Any], path: Path | None, require_tokens: bool
) -> Config:
    """Type every section of the merged config, noting problems in `reader`."""
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
        archive=_archive(reader, merged.get("archive"), path),
        web=_web(reader, merged.get("web")),
        logging=_logging(reader, merged.get("logging")),
    )
    _check_namespaces(reader, config)
    return config


def _homeserver(reader: Reader, value: Any) -> HomeserverConfig:
    section = reader.mapping(value, "homeserver")
    reader.unknown_keys(section, "homeserver", ("address", "domain"))
    return HomeserverConfig(
        address=reader.url(section.get("address"), "homeserver.address", _HTTP),
        domain=reader.string(section.get("domain"), "homeserver.domain", _SERVER_NAME),
    )


def _appservice(reader: Reader, value: Any, require_tokens: bool) -> AppserviceConfig:
    section = reader.mapping(value, "appservice")
    reader.unknown_keys(section, "appservice", AppserviceConfig.__slots__)

    def text(name: str, pattern: NamedPattern | None = None) -> str:
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


def _token(reader: Reader, value: Any, key: str, require: bool) -> str:
    token = value if isinstance(value, str) else ""
    if require and (not token.strip() or token == PLACEHOLDER_TOKEN):
        problem = "is still the placeholder" if token == PLACEHOLDER_TOKEN else "is empty"
        reader.problem(key, problem, f"a generated token: {GENERATE_HINT}")
    return token


def _size(reader: Reader, value: Any, key: str) -> int:
    try:
        size = parse_size(value)
    except ValueError:
        size = 0
    if size < 1024:
        reader.problem(key, f"is {show(value)}", "a size of at least 1KiB, like 8MiB")
    return size


def _database(reader: Reader, value: Any) -> DatabaseConfig:
    section = reader.mapping(value, "database")
    reader.unknown_keys(section, "database", DatabaseConfig.__slots__)
    return DatabaseConfig(
        url=reader.url(section.get("url"), "database.url", _DATABASE_SCHEMES),
        pool_size=reader.integer(section.get("pool_size"), "database.pool_size", 1, 1000),
    )


def _permissions(reader: Reader, value: Any) -> dict[str, Role]:
    section = reader.mapping(value if value is not None else {}, "permissions")
    permissions: dict[str, Role] = {}
    for who, role in section.items():
        key = f"permissions[{who!r}]"
        entry = reader.agent_entry(who, key)
        permissions[entry] = reader.choice(role, key, ROLES)
    return permissions


def _experts(reader: Reader, value: Any) -> dict[UserID, ExpertConfig]:
    section = reader.mapping(value if value is not None else {}, "experts")
    return {
        reader.user_id(user_id, f"experts[{user_id!r}]"): _expert(
            reader, settings, f"experts[{user_id!r}]"
        )
        for user_id, settings in section.items()
    }


def _expert(reader: Reader, value: Any, key: str) -> ExpertConfig:
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
        hours=_hours(reader, section.get("hours"), f"{key}.hours"),
    )


def _hours(reader: Reader, value: Any, key: str) -> tuple[WorkingHours, ...]:
    spans = [value] if isinstance(value, str) else value
    entries = reader.strings(spans, key, reader.string)
    hours = []
    for index, entry in enumerate(entries):
        try:
            hours.append(parse_hours(entry))
        except ValueError:
            reader.problem(f"{key}[{index}]", f"is {show(entry)}", HOURS_EXPECTED)
    return tuple(hours)


def _timezone(reader: Reader, value: Any, key: str) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        reader.problem(key, f"is {show(value)}", "an IANA time zone like Europe/Berlin")
        return None
    return cast(str, value)


def _groups(reader: Reader, value: Any) -> tuple[GroupConfig, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        reader.problem("groups", f"is {show(value)}", "a list of groups")
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


def _group(reader: Reader, value: Any, key: str) -> GroupConfig:
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


def _routing(reader: Reader, value: Any, key: str) -> RoutingConfig:
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
        relax_after=reader.duration(get("relax_after"), f"{key}.relax_after") or 0.0,
        named_fallback=reader.boolean(get("named_fallback"), f"{key}.named_fallback"),
        rule=_rule_name(reader, get("rule"), f"{key}.rule"),
        webhook=(
            None
            if get("webhook") is None
            else reader.url(get("webhook"), f"{key}.webhook", ("https", "http"))
        ),
        rule_timeout=reader.duration(get("rule_timeout"), f"{key}.rule_timeout") or 0.0,
    )

    if routing.strategy == "first_n" and routing.offer_count < routing.needed:
        reader.problem(
            f"{key}.offer_count",
            f"is {routing.offer_count}",
            f"at least needed ({routing.needed})",
        )
    return routing


def _rule_name(reader: Reader, value: Any, key: str) -> str | None:
    if value is None:
        return None
    return reader.string(value, key, _RULE)


def _overflow_name(reader: Reader, value: Any, key: str) -> str | None:
    if value is None:
        return None
    return reader.string(value, key, _GROUP_ID)


def _check_overflow(
    reader: Reader, groups: tuple[GroupConfig, ...], index: int, ids: set[str]
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


def _api_tokens(reader: Reader, value: Any) -> tuple[ApiToken, ...]:
    section = reader.mapping(value, "api")
    reader.unknown_keys(section, "api", ("tokens",))
    entries = section.get("tokens") or []
    if not isinstance(entries, list):
        reader.problem("api.tokens", f"is {show(entries)}", "a list of {name, token}")
        return ()
    return tuple(_api_token(reader, entry, f"api.tokens[{i}]") for i, entry in enumerate(entries))


def _api_token(reader: Reader, value: Any, key: str) -> ApiToken:
    section = reader.mapping(value, key)
    reader.unknown_keys(section, key, ApiToken.__slots__)
    token = section.get("token")
    if not isinstance(token, str) or token == PLACEHOLDER_TOKEN or len(token) < 16:
        problem = "is the placeholder" if token == PLACEHOLDER_TOKEN else "is missing or too short"
        reader.problem(f"{key}.token", problem, "a random token of at least 16 characters")
        token = ""
    return ApiToken(name=reader.string(section.get("name"), f"{key}.name"), token=token)


def _archive(reader: Reader, value: Any, path: Path | None) -> ArchiveConfig:
    section = reader.mapping(value, "archive")
    reader.unknown_keys(section, "archive", ArchiveConfig.__slots__)
    retention = section.get("retention")
    media_path = Path(reader.string(section.get("media_path"), "archive.media_path") or ".")
    if not media_path.is_absolute() and path is not None:
        # Relative to the config file, like the SQLite path a deployment keeps beside it.
        media_path = path.parent / media_path
    return ArchiveConfig(
        retention=None
        if retention == "forever"
        else reader.duration(retention, "archive.retention", optional=True),
        purge_interval=reader.duration(section.get("purge_interval"), "archive.purge_interval")
        or 3600.0,
        media=reader.choice(section.get("media"), "archive.media", ("reference", "store")),
        media_path=media_path,
    )


def _web(reader: Reader, value: Any) -> WebConfig:
    section = reader.mapping(value, "web")
    reader.unknown_keys(section, "web", WebConfig.__slots__)
    secure = section.get("secure_cookies")
    if not isinstance(secure, bool):
        reader.problem("web.secure_cookies", f"is {show(secure)}", "true or false")
        secure = True
    return WebConfig(
        session_lifetime=reader.duration(section.get("session_lifetime"), "web.session_lifetime")
        or 28800.0,
        secure_cookies=secure,
    )


def _logging(reader: Reader, value: Any) -> LoggingConfig:
    section = reader.mapping(value, "logging")
    reader.unknown_keys(section, "logging", LoggingConfig.__slots__)
    level = section.get("level")
    return LoggingConfig(
        level=reader.choice(
            level.upper() if isinstance(level, str) else level, "logging.level", LOG_LEVELS
        ),
        format=reader.choice(section.get("format"), "logging.format", ("text", "json")),
    )


def _check_namespaces(reader: Reader, config: Config) -> None:
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
