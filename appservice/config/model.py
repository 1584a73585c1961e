"""The typed config: frozen dataclasses, the roles and strategies, and the token placeholder."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from mautrix.types import UserID

from .hours import WorkingHours
from .values import USER_ID_RE

Role = Literal["none", "agent", "manager", "compliance", "admin"]
ROLES: tuple[Role, ...] = ("none", "agent", "manager", "compliance", "admin")
Strategy = Literal["broadcast", "first_n", "serial", "round_robin", "least_busy"]
STRATEGIES: tuple[Strategy, ...] = ("broadcast", "first_n", "serial", "round_robin", "least_busy")
PRESENCES = ("online", "unavailable", "offline")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# The mautrix convention: the example ships this text and `-g` replaces it.
PLACEHOLDER_TOKEN = "This value is generated when generating the registration"  # noqa: S105
GENERATE_HINT = "run `backline -c config.yaml -r registration.yaml -g`"

# Who may ask whom, who the experts are, and how groups route: a running Backline takes these
# from a reloaded file (SIGHUP). The rest (addresses, tokens, database, ...) waits for a restart.
RELOADABLE = ("permissions", "experts", "groups", "api_tokens")


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
    hours: tuple[WorkingHours, ...] = ()


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
    # How long a step with preferences (lang:, skill:) waits before asking more widely.
    relax_after: float = 120.0
    # A request naming an expert falls back to the group after `offer_timeout`.
    named_fallback: bool = True
    # A business rule that filters and orders candidates: `module:function`, or a URL.
    rule: str | None = None
    webhook: str | None = None
    rule_timeout: float = 2.0


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
class ArchiveConfig:
    """How long the archive keeps sessions, and whether it keeps files too."""

    retention: float | None  # seconds; None keeps everything
    purge_interval: float  # seconds between retention runs
    media: Literal["reference", "store"]
    media_path: Path


@dataclass(frozen=True, slots=True)
class WebConfig:
    """The archive web page's sign-in sessions."""

    session_lifetime: float  # seconds
    secure_cookies: bool


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
    archive: ArchiveConfig
    web: WebConfig
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

    def is_own_user(self, user_id: str) -> bool:
        """Whether Backline acts as this user: the directory bot or a configured group user."""
        return user_id == self.bot_mxid or self.group_for_mxid(user_id) is not None

    def expert(self, user_id: str) -> ExpertConfig:
        """This expert's settings, or the defaults."""
        return self.experts.get(UserID(user_id), ExpertConfig())

    def adopt(self, new: Config) -> list[str]:
        """Take the RELOADABLE sections of `new`; returns the other sections that differ.

        Every part of Backline holds this one object and reads it when it acts, so the new
        sections apply from the next decision on. The object stays frozen to everyone else.
        """
        for name in RELOADABLE:
            object.__setattr__(self, name, getattr(new, name))
        return [
            f.name
            for f in fields(self)
            if f.name not in RELOADABLE and getattr(self, f.name) != getattr(new, f.name)
        ]
