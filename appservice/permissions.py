"""Who may do what: roles from `permissions`, askers from each group's `agents`."""

from __future__ import annotations

from .config import USER_ID_RE, Config, GroupConfig, Role


def role_for(user_id: str, config: Config) -> Role:
    """The user's role: exact user ID, then domain, then "*" (local users only)."""
    parts = _split(user_id, config)
    if parts is None:
        return "none"
    domain, local = parts

    permissions = config.permissions
    if user_id in permissions:
        return permissions[user_id]
    if domain in permissions:
        return permissions[domain]
    # "*" means everyone on our homeserver; another server's users are admitted by name only.
    if local and "*" in permissions:
        return permissions["*"]
    return "none"


def may_ask(user_id: str, group: GroupConfig, config: Config) -> bool:
    """Whether the user may ask this group for help."""
    parts = _split(user_id, config)
    if parts is None or role_for(user_id, config) == "none":
        return False
    domain, local = parts

    agents = group.agents
    return user_id in agents or domain in agents or (local and "*" in agents)


def askable_groups(user_id: str, config: Config) -> list[GroupConfig]:
    """The groups this user may ask, in config order."""
    return [group for group in config.groups if may_ask(user_id, group, config)]


def can_see_stats(role: Role) -> bool:
    """Whether this role may see statistics."""
    return role in ("manager", "admin")


def can_search_archive(role: Role) -> bool:
    """Whether this role may search and export the archive."""
    return role in ("compliance", "admin")


def _split(user_id: str, config: Config) -> tuple[str, bool] | None:
    """The user's domain and whether it is ours; None for malformed IDs and our own users."""
    match = USER_ID_RE.fullmatch(user_id)
    if not match:
        return None

    # The bot and the group users act for Backline; they never ask or hold a role.
    domain = match["domain"]
    local = domain == config.homeserver.domain
    prefix = config.appservice.group_localpart_prefix
    if local and (user_id == config.bot_mxid or match["localpart"].startswith(prefix)):
        return None
    return domain, local
