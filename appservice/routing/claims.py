"""What a join, a decline or a timeout does to a session's offers, whatever order they come in.

Pure logic over one session's offers, so that it can be checked against arbitrary
interleavings; the store applies the outcome in the transaction that saw the event, under the
state lock, so the events of one session are taken strictly one after another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..db.offers import LIVE_STATES, OfferState


@dataclass(frozen=True, slots=True)
class Outcome:
    """The offers an event ends (and how), whether it completes the claim, and what next."""

    ended: dict[str, OfferState] = field(default_factory=dict)
    # Set when this event completes the claim: everyone who accepted, in acceptance order.
    claimed_by: tuple[str, ...] = ()
    # An offer ended without completing a claim: offer the session to the next expert.
    route_on: bool = False

    @property
    def withdrawn(self) -> list[str]:
        return [expert for expert, state in self.ended.items() if state == "withdrawn"]


NOTHING = Outcome()


def on_join(
    routable: bool, needed: int, offers: Mapping[str, OfferState], accepted: list[str], expert: str
) -> Outcome:
    """An offered expert joined: accepted, and with `needed` acceptances the session is claimed.

    `accepted` lists earlier acceptances in order. A join of someone whose offer already ended
    (declined, timed out, withdrawn) claims nothing.
    """
    if not routable or offers.get(expert) not in LIVE_STATES:
        return NOTHING
    takers = [*accepted, expert]
    ended: dict[str, OfferState] = {expert: "accepted"}
    if len(takers) < needed:
        return Outcome(ended)
    for other, state in offers.items():
        if other != expert and state in LIVE_STATES:
            ended[other] = "withdrawn"
    return Outcome(ended, tuple(takers))


def on_end(
    routable: bool, offers: Mapping[str, OfferState], expert: str, how: OfferState
) -> Outcome:
    """A live offer was declined or timed out: it ends, and routing moves on."""
    if offers.get(expert) not in LIVE_STATES:
        return NOTHING
    return Outcome({expert: how}, route_on=routable)
