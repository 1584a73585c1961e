"""Backline's config: the user's YAML merged over config.example.yaml, checked, made typed.

`model` holds the typed result, `values` reads single values, `sections` reads each section and
checks across them, `loading` reads the file and merges it over the example.
"""

from .hours import WorkingHours, at_work, next_change
from .loading import config_from_dict, example_config, load_config, merge
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
    Strategy,
    WebConfig,
)
from .values import (
    ALIAS_PREFIX_RE,
    GROUP_ID_RE,
    LOCALPART_RE,
    SERVER_NAME,
    SERVER_NAME_RE,
    USER_ID_RE,
    is_user_id,
    parse_duration,
    parse_size,
)

__all__ = [
    "ALIAS_PREFIX_RE",
    "GENERATE_HINT",
    "GROUP_ID_RE",
    "LOCALPART_RE",
    "LOG_LEVELS",
    "PLACEHOLDER_TOKEN",
    "PRESENCES",
    "ROLES",
    "SERVER_NAME",
    "SERVER_NAME_RE",
    "STRATEGIES",
    "USER_ID_RE",
    "ApiToken",
    "AppserviceConfig",
    "ArchiveConfig",
    "Config",
    "DatabaseConfig",
    "ExpertConfig",
    "GroupConfig",
    "HomeserverConfig",
    "LoggingConfig",
    "Role",
    "RoutingConfig",
    "Strategy",
    "WebConfig",
    "WorkingHours",
    "at_work",
    "config_from_dict",
    "example_config",
    "is_user_id",
    "load_config",
    "merge",
    "next_change",
    "parse_duration",
    "parse_size",
]
