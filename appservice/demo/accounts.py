"""The demo's people and groups: who exists, what they may do, and their fresh passwords."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from mautrix.types import UserID

# No look-alikes (0/o, 1/l/i), so a password copied by eye from the terminal works.
_UNAMBIGUOUS_CHARACTERS = "abcdefghjkmnpqrstuvwxyz23456789"
_PASSWORD_GROUPS = 3
_PASSWORD_GROUP_LENGTH = 4


@dataclass(frozen=True, slots=True)
class DemoAccount:
    """One demo user: its localpart, what it is for, and its password for this run."""

    localpart: str
    displayname: str
    role: str
    password: str

    def user_id(self, server_name: str) -> UserID:
        """The full Matrix user ID on the demo homeserver."""
        return UserID(f"@{self.localpart}:{server_name}")


@dataclass(frozen=True, slots=True)
class DemoGroup:
    """One demo expert group and its members (by localpart)."""

    id: str
    displayname: str
    members: tuple[str, ...]


DEMO_GROUPS = (
    DemoGroup("billing", "Billing experts", ("alice", "bob")),
    DemoGroup("tech", "Technical support", ("bob", "carol")),
)

# Localpart, display name, and the role as a newcomer should read it.
_PEOPLE = (
    ("agent", "Agent", "agent: asks the expert groups"),
    ("alice", "Alice", "expert: Billing experts"),
    ("bob", "Bob", "expert: Billing experts, Technical support"),
    ("carol", "Carol", "expert: Technical support"),
    ("manager", "Manager", "manager: statistics (not available yet)"),
    ("compliance", "Compliance", "compliance officer: archive search and export"),
)

# Skills and languages give `lang:` and `skill:` words in a question something to refer to.
_EXPERT_PROFILES: dict[str, dict[str, Any]] = {
    "alice": {
        "skills": ["refunds", "invoices"],
        "languages": ["en", "de"],
        "max_sessions": 2,
        "timezone": "Europe/Berlin",
    },
    "bob": {"skills": ["invoices", "networking"], "languages": ["en", "fr"]},
    "carol": {"skills": ["networking", "login"], "languages": ["en", "es"]},
}


def new_password() -> str:
    """A random password like `k7pq-x3ma-9trw`, easy to type from the printout."""
    groups = (
        "".join(secrets.choice(_UNAMBIGUOUS_CHARACTERS) for _ in range(_PASSWORD_GROUP_LENGTH))
        for _ in range(_PASSWORD_GROUPS)
    )
    return "-".join(groups)


def demo_accounts() -> tuple[DemoAccount, ...]:
    """Every demo user, each with a new random password."""
    return tuple(
        DemoAccount(localpart, displayname, role, new_password())
        for localpart, displayname, role in _PEOPLE
    )


def expert_localparts() -> tuple[str, ...]:
    """The experts, in the order they are listed."""
    members = (member for group in DEMO_GROUPS for member in group.members)
    return tuple(dict.fromkeys(members))


def backline_sections(server_name: str) -> dict[str, Any]:
    """The `permissions`, `experts` and `groups` sections of the demo config."""

    def user(localpart: str) -> str:
        return f"@{localpart}:{server_name}"

    return {
        "permissions": {
            "*": "none",
            server_name: "agent",
            user("manager"): "manager",
            user("compliance"): "compliance",
        },
        "experts": {user(name): profile for name, profile in _EXPERT_PROFILES.items()},
        "groups": [
            {
                "id": group.id,
                "displayname": group.displayname,
                "members": [user(member) for member in group.members],
                "agents": [server_name],
                "routing": {"strategy": "broadcast", "overflow": None},
            }
            for group in DEMO_GROUPS
        ],
    }
