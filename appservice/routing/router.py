"""Routing: offering a session to the experts its current step allows, by the group's strategy.

A route pass reads who may be interrupted, lets the group's business rule filter and order
them (outside the state lock, since it may call out), then under the lock records the offers
with their deadlines and sends the invites after the commit. Passes are idempotent: an
expert is never offered the same session twice, and the strategy tops up to its limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mautrix.errors import MatrixRequestError
from mautrix.types import RoomID, UserID
from mautrix.util.async_db import Connection, Database

from ..config import Config, GroupConfig
from ..db import connection, now_ms, offers, outbox, sessions, transaction
from ..db import groups as groups_db
from ..db import presence as presence_db
from ..db.decisions import record_decision
from ..db.sessions import Session
from ..matrix.client import MatrixClient
from . import moves, texts
from .availability import group_members, situation_of
from .candidates import choose_experts
from .opening import session_lane
from .rules import Candidate, Ranking, RuleRunner
from .steps import Preferences, step_pool
from .strategies import how_many_to_offer, order_candidates

log = logging.getLogger("backline.routing")


@dataclass(slots=True)
class Consideration:
    """Who the current step could offer the session to now, in order, and who not and why."""

    group: GroupConfig
    ordered: list[str]
    skipped: dict[str, str]
    exhausted: bool
    pool_empty: bool
    live: list[str]
    count: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def to_offer(self) -> list[str]:
        return self.ordered if self.count is None else self.ordered[: self.count]


class Router:
    """Offers sessions to experts; one instance per running Backline."""

    def __init__(
        self,
        config: Config,
        db: Database,
        matrix: MatrixClient,
        state_lock: asyncio.Lock,
        rules: RuleRunner,
        on_deadlines: Callable[[], None],
    ) -> None:
        self.config = config
        self.db = db
        self.matrix = matrix
        self.state_lock = state_lock
        self.rules = rules
        self.on_deadlines = on_deadlines

    async def route(self, session_id: int) -> None:
        """Offer the session to whoever its current step and strategy allow now."""
        session = await self._load(session_id)
        if session is None or not session.is_routable or session.room_id is None:
            return
        await self.refresh_unknown_presence(session)
        ranking = await self._rank(session)

        async with self.state_lock, transaction(self.db) as conn:
            session = await sessions.get_session(conn, session_id)
            if session is None or not session.is_routable:
                return
            step = moves.current_step(self.config, session)
            if self.config.group(step.group_id) is None:
                # Removed by a reload: nobody is left who could be asked.
                await moves.expire(conn, self.config, session, texts.group_removed(step.group_id))
                return
            if session.routing_group is None:
                await moves.enter_step(conn, self.config, session, 0, None)
            considered = await self._consider(conn, session, ranking)
            if considered is None:
                return
            sent = await self._decide(conn, session, considered)
        self.on_deadlines()
        await self._send_offers(session, considered.group, sent)

    async def _load(self, session_id: int) -> Session | None:
        async with connection(self.db) as conn:
            return await sessions.get_session(conn, session_id)

    async def _consider(
        self, conn: Connection, session: Session, ranking: Ranking | None
    ) -> Consideration | None:
        """Apply the step, availability, strategy and rule to the group's members."""
        step = moves.current_step(self.config, session)
        group = self.config.group(step.group_id)
        if group is None:  # removed by a reload; route() ends the request
            return None
        members = await group_members(conn, self.config, group)
        situation = await situation_of(conn, self.config, members)
        preferences = Preferences.from_stored(session.preferences)
        pool, left_out = step_pool(step, members, situation.profiles, preferences)

        existing = await offers.session_offers(conn, session.id)
        offered = {offer.expert for offer in existing}
        choice = choose_experts(group, pool, situation, offered, session.agent)
        ordered = order_candidates(
            group.routing,
            members,
            choice.offer,
            last_offered=await groups_db.last_offered(conn, group.id),
            loads=situation.loads,
            last_claims=await sessions.last_claims(conn, choice.offer),
        )
        notes: list[str] = []
        if ranking is not None and ranking.order is not None:
            dropped = [e for e in ordered if e not in ranking.order]
            ordered = [e for e in ranking.order if e in ordered]
            left_out |= dict.fromkeys(dropped, "left out by the business rule")
        if ranking is not None:
            notes = ranking.notes

        live = [o.expert for o in existing if o.is_live]
        accepted = sum(o.state == "accepted" for o in existing)
        count = how_many_to_offer(group.routing, session.needed, accepted, len(live))
        exhausted = not live and all(e in offered or e == session.agent for e in pool)
        skipped = {**left_out, **choice.skipped}
        return Consideration(group, ordered, skipped, exhausted, not pool, live, count, notes)

    async def _rank(self, session: Session) -> Ranking | None:
        """Ask the business rule of the group being asked, if it has one."""
        group = self.config.group(session.asked_group)
        if group is None or not self.rules.has_rules(group):
            return None
        async with connection(self.db) as conn:
            considered = await self._consider(conn, session, None)
            if considered is None or not considered.ordered:
                return None
            candidates = await self._candidates(conn, considered.ordered)
        request = {
            "session_id": session.id,
            "group": session.group_id,
            "agent": session.agent,
            "question": session.question,
            "preferences": session.preferences,
            "query": {
                "channel": session.channel,
                "reference": session.reference,
                "customer": session.customer,
            },
            "step": session.step,
        }
        return await self.rules.rank(group, request, candidates)

    async def _candidates(self, conn: Connection, experts: Sequence[str]) -> list[Candidate]:
        situation = await situation_of(conn, self.config, experts)
        result = []
        for expert in experts:
            profile = situation.profiles[expert]
            presence = situation.presence.get(expert)
            result.append(
                Candidate(
                    user_id=expert,
                    open_sessions=situation.loads.get(expert, 0),
                    max_sessions=profile.max_sessions,
                    languages=list(profile.languages),
                    skills=list(profile.skills),
                    presence=presence.presence if presence else None,
                    status_msg=presence.status_msg if presence else None,
                )
            )
        return result

    async def _decide(
        self, conn: Connection, session: Session, considered: Consideration
    ) -> list[str]:
        """Record the offers (or the wait, or the next step); returns who to invite now."""
        group = considered.group
        to_offer = considered.to_offer
        timeout = group.routing.offer_timeout
        expires_at = (
            now_ms() + int(timeout * 1000)
            if timeout is not None and group.routing.strategy != "broadcast"
            else None
        )
        for expert in to_offer:
            await offers.add_offer(
                conn, session.id, expert, routing_group=group.id, expires_at=expires_at
            )
        if to_offer and group.routing.strategy == "round_robin":
            await groups_db.set_last_offered(conn, group.id, to_offer[-1])
        await self._record(conn, session, considered)

        if to_offer or considered.live:
            # The first offers may come from a later pass, when the first step had nobody.
            if session.state == "opening" and to_offer:
                room = session.room_reference(self.config.homeserver.domain)
                await self._tell_dm(conn, session, texts.offered(len(to_offer), group, room))
            await sessions.set_state(
                conn, session.id, "offering", only_from=("opening", "waiting")
            )
        elif considered.exhausted:
            why = texts.nobody_left(
                moves.current_step(self.config, session),
                group,
                Preferences.from_stored(session.preferences),
                considered.pool_empty,
            )
            await moves.step_on(conn, self.config, session, why)
        elif await sessions.set_state(
            conn, session.id, "waiting", only_from=("opening", "offering")
        ):
            room = session.room_reference(self.config.homeserver.domain)
            await self._tell_dm(conn, session, texts.waiting(group, room))
        unsent = await offers.session_offers(conn, session.id)
        return [o.expert for o in unsent if o.state == "pending"]

    async def _record(self, conn: Connection, session: Session, considered: Consideration) -> None:
        to_offer = considered.to_offer
        summary = (
            f"step {session.step + 1} ({considered.group.id}): offered to {len(to_offer)},"
            f" skipped {len(considered.skipped)}"
        )
        details: dict[str, Any] = {
            "step": session.step,
            "group": considered.group.id,
            "strategy": considered.group.routing.strategy,
            "offered": to_offer,
            "not_yet": considered.ordered[len(to_offer) :],
            "skipped": considered.skipped,
        }
        if considered.notes:
            details["rule"] = considered.notes
        await record_decision(conn, session.id, summary, details)
        log.info(
            "Routing decision: %s",
            summary,
            extra={"session": session.id, "offered": to_offer, "skipped": considered.skipped},
        )

    async def _tell_dm(self, conn: Connection, session: Session, text: str) -> None:
        if session.dm_room_id:
            speaker = session.dm_user or self.config.group_mxid(session.group_id)
            await outbox.enqueue(
                conn,
                session_lane(session.id),
                "notice",
                room_id=session.dm_room_id,
                user_id=speaker,
                text=text,
            )

    async def _send_offers(self, session: Session, group: GroupConfig, experts: list[str]) -> None:
        """Invite experts at once; an invite the homeserver refuses ends that offer as failed."""
        if not experts:
            return
        intent = self.matrix.group_intent(session.group_id)
        reason = texts.invite_reason(group, session.agent, session.question)
        results = await asyncio.gather(
            *(
                intent.invite_user(RoomID(session.room_id or ""), UserID(e), reason=reason)
                for e in experts
            ),
            return_exceptions=True,
        )
        async with self.state_lock, transaction(self.db) as conn:
            failed = False
            for expert, result in zip(experts, results, strict=True):
                if isinstance(result, MatrixRequestError):
                    log.warning(
                        "Invite of %s failed: %s", expert, result, extra={"session": session.id}
                    )
                    failed |= await offers.end_offer(
                        conn, session.id, expert, "failed", str(result)
                    )
                elif isinstance(result, BaseException):
                    raise result
                else:
                    await offers.mark_invited(conn, session.id, expert)
            if failed:
                await outbox.enqueue(
                    conn, session_lane(session.id), "route", session_id=session.id
                )

    # Presence

    async def refresh_unknown_presence(self, session: Session) -> None:
        """Read presence from the homeserver for members Backline has heard nothing of."""
        group = self.config.group(session.asked_group)
        if group is None:
            return
        async with connection(self.db) as conn:
            members = await group_members(conn, self.config, group)
            known = await presence_db.presence_of(conn, members)
        unknown = [m for m in members if m not in known]
        if unknown:
            await self.read_presence(group, unknown)

    async def read_presence(self, group: GroupConfig, users: Sequence[str]) -> None:
        """Ask the homeserver for these users' presence and store the answers."""
        answers = await asyncio.gather(
            *(self.matrix.read_presence(group.id, user) for user in users), return_exceptions=True
        )
        async with self.state_lock, transaction(self.db) as conn:
            for user, answer in zip(users, answers, strict=True):
                if isinstance(answer, tuple):
                    await presence_db.save_presence(conn, user, answer[0], answer[1])
                elif isinstance(answer, BaseException):
                    log.warning("Could not read presence of %s: %s", user, answer)
