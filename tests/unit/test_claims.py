"""The claim logic against arbitrary interleavings of joins, declines and timeouts."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from appservice.db.offers import LIVE_STATES, OfferState
from appservice.routing.claims import on_end, on_join

EXPERTS = [f"@e{i}:x" for i in range(6)]


@dataclass
class Session:
    """A session as the store would hold it, moved only through the claim logic."""

    needed: int
    offers: dict[str, OfferState]
    accepted: list[str] = field(default_factory=list)
    claimed_by: tuple[str, ...] = ()
    routed_on: int = 0

    @property
    def routable(self) -> bool:
        return not self.claimed_by

    def apply(self, kind: str, expert: str) -> None:
        if kind == "join":
            outcome = on_join(self.routable, self.needed, self.offers, self.accepted, expert)
        else:
            how: OfferState = "declined" if kind == "decline" else "timed_out"
            outcome = on_end(self.routable, self.offers, expert, how)
        for who, state in outcome.ended.items():
            assert self.offers[who] in LIVE_STATES, "only a live offer can end"
            self.offers[who] = state
            if state == "accepted":
                self.accepted.append(who)
        if outcome.claimed_by:
            assert not self.claimed_by, "a session is claimed once"
            self.claimed_by = outcome.claimed_by
        self.routed_on += outcome.route_on


events = st.lists(
    st.tuples(st.sampled_from(["join", "decline", "timeout"]), st.sampled_from(EXPERTS)),
    max_size=30,
)


@settings(max_examples=500)
@given(
    needed=st.integers(min_value=1, max_value=4),
    offered=st.sets(st.sampled_from(EXPERTS), min_size=1),
    interleaving=events,
)
def test_no_interleaving_lets_more_than_needed_claim(
    needed: int, offered: set[str], interleaving: list[tuple[str, str]]
) -> None:
    session = Session(needed, dict.fromkeys(sorted(offered), "invited"))

    for kind, expert in interleaving:
        session.apply(kind, expert)

    accepted = [e for e, s in session.offers.items() if s == "accepted"]
    assert len(accepted) <= needed
    assert sorted(session.accepted) == sorted(accepted)
    if session.claimed_by:
        assert list(session.claimed_by) == session.accepted
        assert len(session.claimed_by) == needed
        assert not any(s in LIVE_STATES for s in session.offers.values())
    else:
        assert len(accepted) < needed


@given(offered=st.sets(st.sampled_from(EXPERTS), min_size=1), interleaving=events)
def test_an_ended_offer_never_changes_again(
    offered: set[str], interleaving: list[tuple[str, str]]
) -> None:
    session = Session(1, dict.fromkeys(sorted(offered), "invited"))
    ended: dict[str, OfferState] = {}

    for kind, expert in interleaving:
        session.apply(kind, expert)
        for who, state in session.offers.items():
            if state not in LIVE_STATES:
                assert ended.setdefault(who, state) == state


@given(offered=st.sets(st.sampled_from(EXPERTS), min_size=1), interleaving=events)
def test_routing_moves_on_only_while_unclaimed_and_once_per_ended_offer(
    offered: set[str], interleaving: list[tuple[str, str]]
) -> None:
    session = Session(2, dict.fromkeys(sorted(offered), "invited"))

    for kind, expert in interleaving:
        claimed_before = bool(session.claimed_by)
        routed_before = session.routed_on
        session.apply(kind, expert)
        if claimed_before:
            assert session.routed_on == routed_before

    declined_or_timed_out = sum(s in ("declined", "timed_out") for s in session.offers.values())
    assert session.routed_on <= declined_or_timed_out


def test_a_join_without_a_live_offer_claims_nothing() -> None:
    offers: dict[str, OfferState] = {"@a:x": "timed_out", "@b:x": "invited"}

    assert on_join(True, 1, offers, [], "@a:x").ended == {}
    assert on_join(True, 1, offers, [], "@stranger:x").ended == {}
    assert on_join(False, 1, offers, [], "@b:x").ended == {}


def test_the_needed_join_claims_and_withdraws_the_rest() -> None:
    offers: dict[str, OfferState] = {"@a:x": "accepted", "@b:x": "invited", "@c:x": "pending"}

    outcome = on_join(True, 2, offers, ["@a:x"], "@b:x")

    assert outcome.claimed_by == ("@a:x", "@b:x")
    assert outcome.ended == {"@b:x": "accepted", "@c:x": "withdrawn"}
