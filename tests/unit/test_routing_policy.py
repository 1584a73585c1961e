"""Routing policy as pure logic: steps, strategies' order and counts, working hours."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from appservice.config import Config, ExpertConfig, RoutingConfig, config_from_dict
from appservice.config.hours import at_work, next_change, parse_hours
from appservice.routing.steps import Preferences, Step, plan_steps, step_pool
from appservice.routing.strategies import how_many_to_offer, order_candidates

MEMBERS = ["@a:x", "@b:x", "@c:x", "@d:x"]


def routing(**changes: object) -> RoutingConfig:
    return replace(RoutingConfig(), **changes)  # type: ignore[arg-type]


def config(groups: list[dict[str, object]]) -> Config:
    return config_from_dict(
        {
            "homeserver": {"address": "http://127.0.0.1:8008", "domain": "x"},
            "appservice": {"as_token": "a" * 32, "hs_token": "h" * 32},
            "groups": groups,
        }
    )


def test_steps_go_from_named_expert_to_preferences_to_group_to_each_overflow() -> None:
    cfg = config(
        [
            {"id": "billing", "routing": {"overflow": "leads", "offer_timeout": "30s"}},
            {"id": "leads", "routing": {"overflow": "heads", "request_timeout": "5m"}},
            {"id": "heads", "routing": {"request_timeout": "1h"}},
        ]
    )
    billing = cfg.group("billing")
    assert billing is not None

    steps = plan_steps(cfg, billing, Preferences(("@a:x",), ("de",), ()))

    assert steps == [
        Step("billing", "named", 30.0),
        Step("billing", "preferred", 120.0),
        Step("billing", "group", 600.0),
        Step("leads", "group", 300.0),
        Step("heads", "group", 3600.0),
    ]


def test_a_named_expert_without_fallback_is_the_only_step() -> None:
    cfg = config([{"id": "billing", "routing": {"named_fallback": False}}])
    billing = cfg.group("billing")
    assert billing is not None

    steps = plan_steps(cfg, billing, Preferences(("@a:x",)))

    assert steps == [Step("billing", "named", 600.0)]


def test_the_preferred_step_keeps_experts_with_every_language_and_skill() -> None:
    profiles = {
        "@a:x": ExpertConfig(skills=("refunds",), languages=("de", "en")),
        "@b:x": ExpertConfig(skills=("refunds",), languages=("en",)),
        "@c:x": ExpertConfig(languages=("de",)),
    }

    pool, left_out = step_pool(
        Step("g", "preferred", 60),
        ["@a:x", "@b:x", "@c:x"],
        profiles,
        Preferences((), ("de",), ("refunds",)),
    )

    assert pool == ["@a:x"]
    assert left_out == {
        "@b:x": "preference mismatch (no lang:de)",
        "@c:x": "preference mismatch (no skill:refunds)",
    }


def test_round_robin_starts_after_whoever_was_offered_last() -> None:
    ordered = order_candidates(
        routing(strategy="round_robin"),
        MEMBERS,
        ["@a:x", "@b:x", "@d:x"],
        last_offered="@b:x",
        loads={},
        last_claims={},
    )

    assert ordered == ["@d:x", "@a:x", "@b:x"]


def test_least_busy_puts_fewest_sessions_first_then_longest_idle() -> None:
    ordered = order_candidates(
        routing(strategy="least_busy"),
        MEMBERS,
        MEMBERS,
        last_offered=None,
        loads={"@a:x": 2, "@b:x": 1, "@c:x": 1},
        last_claims={"@b:x": 2_000, "@c:x": 1_000, "@d:x": 5_000},
    )

    assert ordered == ["@d:x", "@c:x", "@b:x", "@a:x"]


@pytest.mark.parametrize(
    ("strategy", "needed", "accepted", "live", "expected"),
    [
        ("broadcast", 1, 0, 3, None),
        ("broadcast", 2, 2, 0, 0),
        ("first_n", 1, 0, 1, 2),
        ("first_n", 1, 0, 3, 0),
        ("serial", 1, 0, 0, 1),
        ("serial", 1, 0, 1, 0),
        ("round_robin", 3, 1, 1, 1),
        ("least_busy", 2, 0, 0, 2),
    ],
)
def test_how_many_offers_each_strategy_keeps_out(
    strategy: str, needed: int, accepted: int, live: int, expected: int | None
) -> None:
    policy = routing(strategy=strategy, offer_count=3)

    assert how_many_to_offer(policy, needed, accepted, live) == expected


def test_working_hours_are_read_in_the_experts_time_zone() -> None:
    hours = (parse_hours("Mon-Fri 09:00-17:00"),)
    thursday_8_utc = datetime(2026, 12, 3, 8, 30, tzinfo=UTC)  # 09:30 in Berlin

    assert at_work(hours, "Europe/Berlin", thursday_8_utc)
    assert not at_work(hours, "America/New_York", thursday_8_utc)
    assert next_change(hours, "America/New_York", thursday_8_utc) == datetime(
        2026, 12, 3, 14, 0, tzinfo=UTC
    )


def test_night_shifts_pass_midnight_and_weekday_ranges_wrap() -> None:
    night = (parse_hours("Fri-Sun 22:00-06:00"),)

    assert at_work(night, None, datetime(2026, 12, 5, 3, 0, tzinfo=UTC))  # Saturday 03:00
    assert at_work(night, None, datetime(2026, 12, 7, 5, 59, tzinfo=UTC))  # Monday, Sunday's
    assert not at_work(night, None, datetime(2026, 12, 8, 3, 0, tzinfo=UTC))  # Tuesday 03:00


@pytest.mark.parametrize("text", ["Mon-Fri", "Mon 9-17", "Xyz 09:00-10:00", "Mon 09:00-09:00"])
def test_malformed_hours_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(text)):
        parse_hours(text)
