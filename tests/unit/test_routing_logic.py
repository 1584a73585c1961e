"""Pure routing logic: reading requests and choosing who may be interrupted."""

from __future__ import annotations

from mautrix.types import UserID

from appservice.config import ExpertConfig, GroupConfig, RoutingConfig
from appservice.db.presence import Presence
from appservice.routing.candidates import Situation, busy_word_in, choose_experts
from appservice.routing.preferences import parse_request

ROUTING = RoutingConfig(
    strategy="broadcast",
    offer_count=3,
    needed=1,
    offer_timeout=60,
    request_timeout=600,
    overflow=None,
    interrupt_presence=("online",),
    busy_words=("busy", "dnd", "do not disturb", "meeting"),
)


def group(*members: str) -> GroupConfig:
    users = tuple(UserID(m) for m in members)
    return GroupConfig(
        id="billing", displayname="Billing", members=users, agents=("*",), routing=ROUTING
    )


def online(user: str, status: str | None = None) -> Presence:
    return Presence(user, "online", status, 0)


def test_preferences_are_taken_out_of_the_question() -> None:
    request = parse_request("lang:DE Refund a double charge skill:refunds @alice:example.org")

    assert request.question == "Refund a double charge"
    assert request.languages == ("de",)
    assert request.skills == ("refunds",)
    assert request.experts == ("@alice:example.org",)


def test_mention_pills_count_as_named_experts_once() -> None:
    request = parse_request("Bob, please look @bob:x.org", ("@bob:x.org",))

    assert request.experts == ("@bob:x.org",)
    assert request.question == "Bob, please look"


def test_words_that_only_look_like_preferences_stay_in_the_question() -> None:
    request = parse_request("What does slang:xyz or email@x mean?")

    assert request.question == "What does slang:xyz or email@x mean?"
    assert request.languages == ()


def test_busy_words_match_whole_words_in_any_case() -> None:
    assert busy_word_in("In a MEETING until 3", ROUTING.busy_words) == "meeting"
    assert busy_word_in("Do Not Disturb", ROUTING.busy_words) == "do not disturb"
    assert busy_word_in("business hours", ROUTING.busy_words) is None
    assert busy_word_in(None, ROUTING.busy_words) is None


def test_each_skipped_expert_gets_a_reason() -> None:
    members = ["@on:x", "@off:x", "@busy:x", "@full:x", "@unknown:x", "@agent:x", "@asked:x"]
    presence = {
        "@on:x": online("@on:x"),
        "@off:x": Presence("@off:x", "unavailable", None, 0),
        "@busy:x": online("@busy:x", "dnd"),
        "@full:x": online("@full:x"),
        "@agent:x": online("@agent:x"),
        "@asked:x": online("@asked:x"),
    }
    profiles = {m: ExpertConfig((), (), max_sessions=2, timezone=None) for m in members}
    situation = Situation(profiles, presence, {"@full:x": 2})

    choice = choose_experts(group(*members), members, situation, {"@asked:x"}, "@agent:x")

    assert choice.offer == ("@on:x",)
    assert choice.skipped == {
        "@off:x": "presence is unavailable",
        "@busy:x": "status says 'dnd'",
        "@full:x": "at capacity (2 of 2 sessions)",
        "@unknown:x": "presence unknown (not in the roster room?)",
        "@agent:x": "is the agent asking",
    }
