"""Roles from `permissions`, askers from each group's `agents`."""

from __future__ import annotations

from typing import Any

import pytest

from appservice.config import Config, config_from_dict
from appservice.permissions import (
    askable_groups,
    can_search_archive,
    can_see_stats,
    may_ask,
    role_for,
)

TOKENS = {"as_token": "a" * 43, "hs_token": "h" * 43}


def make_config(permissions: dict[str, str], groups: list[dict[str, Any]] | None = None) -> Config:
    data: dict[str, Any] = {"appservice": TOKENS, "permissions": permissions}
    if groups is not None:
        data["groups"] = groups
    return config_from_dict(data)


def test_user_id_beats_domain_beats_star() -> None:
    config = make_config({"*": "agent", "localhost": "manager", "@carol:localhost": "compliance"})

    assert role_for("@carol:localhost", config) == "compliance"
    assert role_for("@dave:localhost", config) == "manager"


def test_star_applies_to_local_users_without_a_domain_entry() -> None:
    config = make_config({"*": "agent", "@carol:localhost": "admin"})

    assert role_for("@dave:localhost", config) == "agent"


def test_remote_user_is_refused_unless_listed() -> None:
    config = make_config({"*": "agent", "partner.org": "agent", "@eve:other.org": "manager"})

    assert role_for("@mallory:evil.org", config) == "none"
    assert role_for("@pat:partner.org", config) == "agent"
    assert role_for("@eve:other.org", config) == "manager"


@pytest.mark.parametrize("bad", ["", "alice", "@alice", "alice:localhost", "@a b:localhost"])
def test_malformed_user_id_has_no_role(bad: str) -> None:
    assert role_for(bad, make_config({"*": "admin"})) == "none"


def test_backline_own_users_have_no_role() -> None:
    config = make_config({"*": "admin"})

    assert role_for("@backline:localhost", config) == "none"
    assert role_for("@group-billing:localhost", config) == "none"


def test_may_ask_honours_group_agents() -> None:
    groups = [
        {"id": "billing", "agents": ["@ann:localhost"]},
        {"id": "sales", "agents": ["partner.org"]},
        {"id": "it", "agents": ["*"]},
    ]
    config = make_config({"*": "agent", "partner.org": "agent"}, groups)
    billing, sales, it = config.groups

    assert may_ask("@ann:localhost", billing, config)
    assert not may_ask("@bob:localhost", billing, config)
    assert may_ask("@pat:partner.org", sales, config)
    assert not may_ask("@pat:partner.org", it, config)
    assert [g.id for g in askable_groups("@ann:localhost", config)] == ["billing", "it"]


def test_may_ask_needs_a_role() -> None:
    config = make_config({"*": "none"}, [{"id": "it", "agents": ["*"]}])

    assert not may_ask("@ann:localhost", config.groups[0], config)
    assert askable_groups("@ann:localhost", config) == []


def test_stats_and_archive_rights_follow_the_role() -> None:
    assert [can_see_stats(r) for r in ("agent", "manager", "compliance", "admin")] == [
        False,
        True,
        False,
        True,
    ]
    assert [can_search_archive(r) for r in ("agent", "manager", "compliance", "admin")] == [
        False,
        False,
        True,
        True,
    ]
