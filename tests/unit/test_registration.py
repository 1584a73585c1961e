"""Generating registration.yaml and storing its tokens in the config."""

from __future__ import annotations

import re
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from appservice.config import PLACEHOLDER_TOKEN, config_from_dict, load_config
from appservice.registration import generate_registration, registration_dict

EXAMPLE = Path(__file__).parents[2] / "config.example.yaml"


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    shutil.copy(EXAMPLE, path)
    return path


def generate(config_path: Path) -> dict[str, Any]:
    registration_path = config_path.parent / "registration.yaml"
    generate_registration(config_path, registration_path)
    loaded: dict[str, Any] = YAML(typ="safe", pure=True).load(registration_path)
    return loaded


def regexes(registration: dict[str, Any], kind: str) -> list[str]:
    return [entry["regex"] for entry in registration["namespaces"][kind]]


def claims(patterns: list[str], name: str) -> bool:
    return any(re.fullmatch(pattern, name) for pattern in patterns)


def test_registration_has_fresh_distinct_tokens(config_path: Path) -> None:
    registration = generate(config_path)

    assert registration["as_token"] != registration["hs_token"]
    assert PLACEHOLDER_TOKEN not in (registration["as_token"], registration["hs_token"])
    assert len(registration["as_token"]) >= 32


def test_registration_describes_the_appservice(config_path: Path) -> None:
    registration = generate(config_path)

    assert registration["id"] == "backline"
    assert registration["url"] == "http://127.0.0.1:29333"
    assert registration["sender_localpart"] == "backline"
    assert registration["rate_limited"] is False
    assert registration["receive_ephemeral"] is True
    assert registration["de.sorunome.msc2409.push_ephemeral"] is True
    assert registration["namespaces"]["rooms"] == []
    assert all(entry["exclusive"] for entry in registration["namespaces"]["users"])


@pytest.mark.parametrize(
    "user_id", ["@backline:localhost", "@group-billing:localhost", "@group-x.y:localhost"]
)
def test_user_namespace_claims_the_bot_and_group_users(config_path: Path, user_id: str) -> None:
    assert claims(regexes(generate(config_path), "users"), user_id)


@pytest.mark.parametrize(
    "user_id",
    ["@alice:localhost", "@backline2:localhost", "@backline:other.org", "@group-billing:other"],
)
def test_user_namespace_leaves_other_users_alone(config_path: Path, user_id: str) -> None:
    assert not claims(regexes(generate(config_path), "users"), user_id)


def test_alias_namespace_claims_session_aliases_only(config_path: Path) -> None:
    patterns = regexes(generate(config_path), "aliases")

    assert claims(patterns, "#backline-session-42:localhost")
    assert not claims(patterns, "#general:localhost")
    assert not claims(patterns, "#backline-session-42:other.org")


def test_config_then_holds_the_same_tokens(config_path: Path) -> None:
    registration = generate(config_path)

    config = load_config(config_path)

    assert config.appservice.as_token == registration["as_token"]
    assert config.appservice.hs_token == registration["hs_token"]


def test_config_comments_survive(config_path: Path) -> None:
    config_path.write_text("# my own note\n" + config_path.read_text())
    before = config_path.read_text().splitlines()

    generate(config_path)

    after = config_path.read_text().splitlines()
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert after[0] == "# my own note"
    assert [old.split(":")[0].strip() for old, _ in changed] == ["as_token", "hs_token"]


def test_config_without_appservice_section_gets_one(tmp_path: Path) -> None:
    config_path = tmp_path / "config.yaml"
    config_path.write_text("# minimal\nhomeserver:\n    domain: localhost\n")

    registration = generate(config_path)

    assert load_config(config_path).appservice.hs_token == registration["hs_token"]


def test_files_are_private(config_path: Path) -> None:
    generate(config_path)

    for path in (config_path, config_path.parent / "registration.yaml"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_running_twice_gives_new_tokens(config_path: Path) -> None:
    first = generate(config_path)

    second = generate(config_path)

    assert first["as_token"] != second["as_token"]
    assert first["hs_token"] != second["hs_token"]


def test_example_registration_matches_the_example_config() -> None:
    example = YAML(typ="safe", pure=True).load(EXAMPLE.parent / "registration.yaml")

    config = config_from_dict({}, require_tokens=False)

    assert example == registration_dict(config)
