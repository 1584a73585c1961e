"""Loading, merging and checking the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appservice.config import (
    PLACEHOLDER_TOKEN,
    ExpertConfig,
    config_from_dict,
    load_config,
    parse_duration,
    parse_size,
)
from appservice.errors import ConfigError

TOKENS = {"as_token": "a" * 43, "hs_token": "h" * 43}
EXAMPLE = Path(__file__).parents[2] / "config.example.yaml"


def with_tokens(**sections: Any) -> dict[str, Any]:
    """A user config with real-looking tokens plus the given sections."""
    appservice = {**TOKENS, **sections.pop("appservice", {})}
    return {"appservice": appservice, **sections}


def problem_keys(error: ConfigError) -> set[str]:
    return {problem.key for problem in error.problems}


def test_example_loads_once_tokens_are_set(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace(PLACEHOLDER_TOKEN, "x" * 43, 1)
    path = tmp_path / "config.yaml"
    path.write_text(text.replace(PLACEHOLDER_TOKEN, "y" * 43))

    config = load_config(path)

    assert config.path == path
    assert config.bot_mxid == "@backline:localhost"
    assert [group.id for group in config.groups] == ["billing", "escalations"]
    assert config.group_mxid("billing") == "@group-billing:localhost"
    assert config.group_for_mxid("@group-billing:localhost") is config.groups[0]
    assert config.groups[0].routing.offer_timeout == 60
    assert config.groups[0].routing.request_timeout == 600
    assert config.appservice.max_body_size == 8 * 1024 * 1024
    assert config.archive.retention == 365 * 86400


def test_many_problems_are_reported_together_with_their_keys() -> None:
    data = with_tokens(
        appservice={"port": 70000, "address": "ftp://example.org"},
        database={"url": "mysql://db", "pool_size": 0},
        permissions={"*": "boss", "not an id!": "agent"},
        groups=[
            {"id": "billing", "routing": {"needed": 0, "strategy": "random"}},
            {"id": "Billing Team", "routing": {"offer_timeout": "soon"}},
        ],
        experts={"@alice:localhost": {"timezone": "Mars/Olympus"}},
        surprise=True,
    )

    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)

    assert problem_keys(caught.value) == {
        "appservice.port",
        "appservice.address",
        "database.url",
        "database.pool_size",
        "permissions['*']",
        "permissions['not an id!']",
        "groups[0].routing.needed",
        "groups[0].routing.strategy",
        "groups[1].id",
        "groups[1].routing.offer_timeout",
        "experts['@alice:localhost'].timezone",
        "surprise",
    }
    assert "groups[1].routing.offer_timeout" in str(caught.value)


def test_placeholder_tokens_are_refused_with_the_generate_hint() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({})

    assert problem_keys(caught.value) == {"appservice.as_token", "appservice.hs_token"}
    assert "-r registration.yaml -g" in str(caught.value)


def test_placeholder_tokens_are_accepted_without_require_tokens() -> None:
    config = config_from_dict({}, require_tokens=False)

    assert config.appservice.as_token == PLACEHOLDER_TOKEN


def test_empty_token_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"appservice": {**TOKENS, "hs_token": ""}})

    assert problem_keys(caught.value) == {"appservice.hs_token"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60s", 60), ("10m", 600), ("2h", 7200), ("365d", 365 * 86400), ("1.5s", 1.5), (90, 90)],
)
def test_durations_parse(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("junk", ["", "soon", "10 parsecs", "1.2.3s", "-5s", True, None])
def test_duration_junk_is_rejected(junk: Any) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(junk)


@pytest.mark.parametrize(
    ("text", "size"),
    [("8MiB", 8 * 2**20), ("512KiB", 512 * 1024), ("1MB", 10**6), (4096, 4096), ("100", 100)],
)
def test_sizes_parse(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("junk", ["", "big", "8 MiBs", "MiB", 1.5, False])
def test_size_junk_is_rejected(junk: Any) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(junk)


def test_user_file_is_merged_over_the_example() -> None:
    config = config_from_dict(with_tokens(appservice={"port": 8080}))

    assert config.appservice.port == 8080
    assert config.appservice.hostname == "127.0.0.1"
    assert config.appservice.bot_displayname == "Backline"
    assert config.database.pool_size == 10


def test_user_lists_and_permissions_replace_the_example() -> None:
    data = with_tokens(
        permissions={"example.org": "agent"},
        experts={},
        groups=[{"id": "it", "members": ["@dana:example.org"]}],
    )

    config = config_from_dict(data)

    assert config.permissions == {"example.org": "agent"}
    assert [group.id for group in config.groups] == ["it"]
    assert config.groups[0].agents == ("*",)
    assert config.expert("@alice:localhost") == ExpertConfig()


def test_overflow_to_unknown_group_is_refused() -> None:
    data = with_tokens(groups=[{"id": "billing", "routing": {"overflow": "nowhere"}}])

    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)

    assert problem_keys(caught.value) == {"groups[0].routing.overflow"}


def test_overflow_loop_is_refused() -> None:
    data = with_tokens(
        groups=[
            {"id": "a", "routing": {"overflow": "b"}},
            {"id": "b", "routing": {"overflow": "a"}},
        ]
    )

    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)

    assert problem_keys(caught.value) == {
        "groups[0].routing.overflow",
        "groups[1].routing.overflow",
    }


def test_duplicate_group_ids_are_refused() -> None:
    data = with_tokens(groups=[{"id": "billing"}, {"id": "billing"}])

    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)

    assert problem_keys(caught.value) == {"groups[1].id"}


@pytest.mark.parametrize("bad", ["alice", "@alice", "alice:localhost", "@:localhost", "@a b:x"])
def test_bad_user_ids_are_refused(bad: str) -> None:
    data = with_tokens(groups=[{"id": "billing", "members": ["@ok:localhost", bad]}])

    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)

    assert problem_keys(caught.value) == {"groups[0].members[1]"}


def test_short_or_placeholder_api_tokens_are_refused() -> None:
    tokens = [{"name": "crm", "token": "short"}, {"name": "pbx", "token": PLACEHOLDER_TOKEN}]

    with pytest.raises(ConfigError) as caught:
        config_from_dict(with_tokens(api={"tokens": tokens}))

    assert problem_keys(caught.value) == {"api.tokens[0].token", "api.tokens[1].token"}


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "missing.yaml")
