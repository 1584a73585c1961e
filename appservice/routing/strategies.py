"""The order in which a group's candidates are asked, and how many are asked at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..config import RoutingConfig


def order_candidates(
    routing: RoutingConfig,
    members: Sequence[str],
    candidates: Sequence[str],
    *,
    last_offered: str | None,
    loads: Mapping[str, int],
    last_claims: Mapping[str, int],
) -> list[str]:
    """Candidates in the order the strategy asks them.

    round_robin starts after whoever of the group was offered a request last; least_busy puts
    the fewest open sessions first, then whoever has waited longest since taking one.
    """
    if routing.strategy == "round_robin" and last_offered is not None and last_offered in members:
        start = list(members).index(last_offered) + 1
        rotation = [*members[start:], *members[:start]]
        position = {member: index for index, member in enumerate(rotation)}
        return sorted(candidates, key=lambda expert: position.get(expert, len(position)))
    if routing.strategy == "least_busy":
        return sorted(candidates, key=lambda e: (loads.get(e, 0), last_claims.get(e, 0)))
    return list(candidates)


def how_many_to_offer(routing: RoutingConfig, needed: int, accepted: int, live: int) -> int | None:
    """How many new offers to make now, given the live ones; None: every candidate."""
    missing = max(needed - accepted, 0)
    if routing.strategy == "broadcast":
        return None if missing else 0
    if routing.strategy == "first_n":
        return max(max(routing.offer_count, missing) - live, 0) if missing else 0
    # serial, round_robin, least_busy: as many at a time as acceptances are still needed.
    return max(missing - live, 0)
