"""The moves of a session inside a store transaction: claim, withdraw, step on, expire.

Each move changes rows and queues the homeserver calls that show it (kicks, notices) in the
session's outbox lane, so the calls run in order after the transaction commits.
"""

from __future__ import annotations

import logging

from mautrix.util.async_db import Connection

from ..config import Config
from ..db import now_ms, offers, outbox, sessions
from ..db.decisions import record_decision
from ..db.offers import Offer, OfferState
from ..db.sessions import ROUTABLE_STATES, Session
from . import texts
from .claims import Outcome, on_end, on_join
from .opening import session_lane
from .steps import Preferences, Step, plan_steps

log = logging.getLogger("backline.routing")


def steps_of(config: Config, session: Session) -> list[Step]:
    """The session's routing steps; a group gone from the config leaves only the first."""
    group = config.group(session.group_id)
    if group is None:
        return [Step(session.group_id, "group", None)]
    return plan_steps(config, group, Preferences.from_stored(session.preferences))


def current_step(config: Config, session: Session) -> Step:
    """The step the session is in; the last one if the config now has fewer steps."""
    steps = steps_of(config, session)
    return steps[min(session.step, len(steps) - 1)]


async def notify(
    conn: Connection, config: Config, session: Session, text: str, *, dm: bool = True
) -> None:
    """Tell the session room, and the agent's DM when there is one."""
    lane = session_lane(session.id)
    group_user = config.group_mxid(session.group_id)
    if session.room_id:
        await outbox.enqueue(
            conn, lane, "notice", room_id=session.room_id, user_id=group_user, text=text
        )
    if dm and session.dm_room_id:
        speaker = session.dm_user or group_user
        await outbox.enqueue(
            conn, lane, "notice", room_id=session.dm_room_id, user_id=speaker, text=text
        )


async def kick(conn: Connection, config: Config, session: Session, expert: str, why: str) -> None:
    """Queue the withdrawal of an expert's invite (or presence) from the session room."""
    await outbox.enqueue(
        conn,
        session_lane(session.id),
        "kick",
        room_id=session.room_id,
        user_id=config.group_mxid(session.group_id),
        target=expert,
        reason=why,
    )


async def withdraw_live_offers(
    conn: Connection, config: Config, session: Session, reason: str
) -> list[str]:
    """End every live offer of a session and queue the kicks that withdraw the invites."""
    withdrawn = []
    for offer in await offers.session_offers(conn, session.id):
        if await offers.end_offer(conn, session.id, offer.expert, "withdrawn", reason):
            withdrawn.append(offer.expert)
            await kick(conn, config, session, offer.expert, reason)
    return withdrawn


async def _snapshot(conn: Connection, session: Session) -> tuple[dict[str, OfferState], list[str]]:
    all_offers = await offers.session_offers(conn, session.id)
    states = {offer.expert: offer.state for offer in all_offers}
    accepted = sorted(
        (o for o in all_offers if o.state == "accepted"), key=lambda o: o.ended_at or 0
    )
    return states, [offer.expert for offer in accepted]


async def accept(conn: Connection, config: Config, session: Session, expert: str) -> Outcome:
    """An offered expert joined; the `needed`-th acceptance claims the session."""
    states, accepted = await _snapshot(conn, session)
    outcome = on_join(session.is_routable, session.needed, states, accepted, expert)
    if not outcome.ended:
        return outcome
    await offers.end_offer(conn, session.id, expert, "accepted", "joined")
    log.info("Offer accepted", extra={"session": session.id, "expert": expert})
    if not outcome.claimed_by:
        progress = texts.progress(expert, len(accepted) + 1, session.needed)
        await notify(conn, config, session, progress, dm=False)
        # first_n keeps `offer_count` offers out: an acceptance frees a place for another.
        await outbox.enqueue(conn, session_lane(session.id), "route", session_id=session.id)
        return outcome

    await sessions.set_state(conn, session.id, "claimed", only_from=ROUTABLE_STATES)
    reason = texts.withdrawn(" and ".join(outcome.claimed_by))
    for other in outcome.withdrawn:
        await offers.end_offer(conn, session.id, other, "withdrawn", reason)
        await kick(conn, config, session, other, reason)
    await record_decision(
        conn,
        session.id,
        f"claimed by {', '.join(outcome.claimed_by)}",
        {"claimed_by": list(outcome.claimed_by), "withdrawn": outcome.withdrawn},
    )
    await notify(conn, config, session, texts.claimed(list(outcome.claimed_by)))
    log.info("Session claimed", extra={"session": session.id, "claimed_by": outcome.claimed_by})
    return outcome


async def end_offer(
    conn: Connection, config: Config, session: Session, offer: Offer, how: OfferState, why: str
) -> Outcome:
    """A live offer was declined or timed out: it ends and routing moves on to the next."""
    states, _ = await _snapshot(conn, session)
    outcome = on_end(session.is_routable, states, offer.expert, how)
    if not outcome.ended:
        return outcome
    await offers.end_offer(conn, session.id, offer.expert, how, why)
    if how == "timed_out":
        await kick(conn, config, session, offer.expert, why)
    await record_decision(
        conn, session.id, f"{offer.expert} {how.replace('_', ' ')}", {"expert": offer.expert}
    )
    if outcome.route_on:
        await outbox.enqueue(conn, session_lane(session.id), "route", session_id=session.id)
    log.info("Offer ended", extra={"session": session.id, "expert": offer.expert, "how": how})
    return outcome


async def enter_step(
    conn: Connection, config: Config, session: Session, number: int, why: str | None
) -> None:
    """Start step `number` of the session's routing; `why` says why the last one ended."""
    steps = steps_of(config, session)
    step = steps[min(number, len(steps) - 1)]
    deadline = now_ms() + int(step.timeout * 1000) if step.timeout is not None else None
    await sessions.set_step(conn, session.id, step.group_id, number, deadline)
    session.routing_group, session.step, session.step_deadline = step.group_id, number, deadline
    if why is None:
        return
    group = config.group(step.group_id)
    description = texts.step_description(step, group, Preferences.from_stored(session.preferences))
    await record_decision(
        conn, session.id, f"step {number + 1}: {description}", {"step": number, "why": why}
    )
    await notify(conn, config, session, texts.step_taken(why, description), dm=False)
    await outbox.enqueue(conn, session_lane(session.id), "route", session_id=session.id)
    log.info("Routing step taken", extra={"session": session.id, "step": number})


async def step_on(conn: Connection, config: Config, session: Session, why: str) -> None:
    """The current step is over: take the next one, or give up when there is none."""
    if session.step + 1 < len(steps_of(config, session)):
        await enter_step(conn, config, session, session.step + 1, why)
    else:
        await expire(conn, config, session, why)


async def expire(conn: Connection, config: Config, session: Session, why: str) -> None:
    """Nobody could take the request: withdraw what is left and tell the agent plainly."""
    if not await sessions.set_state(conn, session.id, "expired", only_from=ROUTABLE_STATES):
        return
    await withdraw_live_offers(conn, config, session, texts.withdrawn_expired())
    await record_decision(conn, session.id, "expired", {"why": why})
    group = config.group(session.group_id)
    await notify(conn, config, session, texts.expired(group, why))
    log.info("Session expired", extra={"session": session.id})


async def cancel(conn: Connection, config: Config, session: Session, by: str) -> bool:
    """The agent withdrew a request nobody has taken yet; False if it was already taken."""
    if not await sessions.set_state(conn, session.id, "cancelled", only_from=ROUTABLE_STATES):
        return False
    await withdraw_live_offers(conn, config, session, texts.withdrawn_cancelled(by))
    await record_decision(conn, session.id, f"cancelled by {by}", {"cancelled_by": by})
    await notify(conn, config, session, texts.cancelled(by))
    log.info("Session cancelled", extra={"session": session.id})
    return True
