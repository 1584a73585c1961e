"""The request API: which groups an agent may ask, opening a request, and following it.

Customer interaction systems (CRM, ticketing, PBX) call with one of `api.tokens` and name the
agent they act for; an agent calls with their own Matrix access token and acts for themself.
A request opened here is a session like one opened from a DM, only without the DM: the agent
is invited into the session room.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from mautrix.util.async_db import Connection, Database

from ..config import USER_ID_RE, Config, GroupConfig
from ..db import connection, transaction
from ..db.decisions import Decision, session_decisions
from ..db.offers import Offer, session_offers
from ..db.request_keys import find_request_key, remember_request_key
from ..db.sessions import Session, get_session
from ..permissions import askable_groups, can_see_stats, may_ask
from ..routing.availability import available_experts
from ..routing.opening import open_session
from ..timefmt import iso_utc
from .api_archive import invalid, path_id, read_json_object, text_param
from .auth import Identity, TokenAuthenticator
from .errors import APIError
from .request_body import NewRequest, acting_agent, idempotency_key, parse_new_request

log = logging.getLogger("backline.web.requests")

# POST waits this long for the session room, so that most callers get its ID at once.
ROOM_WAIT_SECONDS = 5.0
ROOM_POLL_SECONDS = 0.1
# Answers carry questions and customer references: never kept by browsers or proxies.
PRIVATE_HEADERS = {"Cache-Control": "no-store"}

WakeOutbox = Callable[[], None]


def request_state(session: Session, offers: list[Offer]) -> str:
    """The state callers see: `opening` is internal, shown by whether offers exist yet."""
    if session.state == "opening":
        return "offering" if offers else "waiting"
    return session.state


def offer_json(offer: Offer) -> dict[str, Any]:
    """One offer, with ISO times."""
    return {
        "expert": offer.expert,
        "state": offer.state,
        "offered_at": iso_utc(offer.offered_at),
        "ended_at": iso_utc(offer.ended_at),
        "reason": offer.reason,
    }


def decision_json(decision: Decision) -> dict[str, Any]:
    """One routing decision, with an ISO time."""
    return {
        "at": iso_utc(decision.decided_at),
        "summary": decision.summary,
        "details": decision.details,
    }


def request_json(
    session: Session, offers: list[Offer], decisions: list[Decision]
) -> dict[str, Any]:
    """Everything a caller following a request may want to know about it."""
    return {
        "request_id": session.id,
        "state": request_state(session, offers),
        "group": session.group_id,
        "agent": session.agent,
        "room_id": session.room_id,
        "question": session.question,
        "preferences": session.preferences,
        "created_at": iso_utc(session.created_at),
        "claimed_at": iso_utc(session.claimed_at),
        "closed_at": iso_utc(session.closed_at),
        "offers": [offer_json(offer) for offer in offers],
        "claimed_by": [offer.expert for offer in offers if offer.state == "accepted"],
        "decisions": [decision_json(decision) for decision in decisions],
        "query": {
            "channel": session.channel,
            "reference": session.reference,
            "customer": session.customer,
        },
    }


@dataclass(frozen=True, slots=True)
class Availability:
    """How many experts a group has, and how many of them could be interrupted now."""

    available: int
    members: int


async def availability(
    conn: Connection, config: Config, group: GroupConfig, agent: str
) -> Availability:
    """The group's availability for this agent: the only place this API asks routing.

    Members are counted from routing's own answer (offered or skipped, with a reason), so the
    count agrees with however routing defines membership.
    """
    choice = await available_experts(conn, config, group, agent=agent)
    return Availability(len(choice.offer), len(choice.offer) + len(choice.skipped))


class RequestsAPI:
    """Routes under /api/v1 for customer interaction systems and agents."""

    def __init__(
        self,
        config: Config,
        db: Database,
        auth: TokenAuthenticator,
        state_lock: asyncio.Lock,
        wake_outbox: WakeOutbox,
        user_exists: Callable[[str], Awaitable[bool]],
    ) -> None:
        self.config = config
        self.db = db
        self.auth = auth
        self.state_lock = state_lock
        self.wake_outbox = wake_outbox
        self.user_exists = user_exists

    def add_routes(self, app: web.Application) -> None:
        """Register the routes."""
        app.router.add_get("/api/v1/groups", self.get_groups)
        app.router.add_post("/api/v1/requests", self.post_request)
        app.router.add_get("/api/v1/requests/{id}", self.get_request)

    async def get_groups(self, request: web.Request) -> web.Response:
        """GET /api/v1/groups?agent=: the groups the agent may ask, with availability."""
        identity = await self.auth.identify(request, allow_api_tokens=True)
        named = text_param(request, "agent")
        if named is not None and not USER_ID_RE.fullmatch(named):
            raise invalid("agent", "a Matrix user ID such as @alice:example.org")
        agent = acting_agent(identity, named)

        listed = []
        async with connection(self.db) as conn:
            for group in askable_groups(agent, self.config):
                counts = await availability(conn, self.config, group, agent)
                listed.append(
                    {
                        "group": group.id,
                        "displayname": group.displayname,
                        "user_id": self.config.group_mxid(group.id),
                        "available": counts.available,
                        "members": counts.members,
                    }
                )
        return web.json_response({"agent": agent, "groups": listed}, headers=PRIVATE_HEADERS)

    async def post_request(self, request: web.Request) -> web.Response:
        """POST /api/v1/requests: open a session for an agent, once per Idempotency-Key."""
        identity = await self.auth.identify(request, allow_api_tokens=True)
        key = idempotency_key(request)
        new = parse_new_request(await read_json_object(request))
        agent = acting_agent(identity, new.agent)
        group = self.config.group(new.group)
        if group is None:
            raise APIError(404, "M_NOT_FOUND", f"no such group: {new.group}")
        if not may_ask(agent, group, self.config):
            raise APIError(
                403,
                "M_FORBIDDEN",
                f"{agent} may not ask {group.displayname}. Ask your administrator for access.",
            )
        if not await self.user_exists(agent):
            # Inviting a user who does not exist succeeds silently: the request would be lost.
            raise APIError(404, "M_NOT_FOUND", f"{agent} is not a user of this homeserver")

        async with self.state_lock, transaction(self.db) as conn:
            session_id, replayed = await self._open_once(conn, identity, key, new, agent, group)
        if not replayed:
            # The session room is made by the outbox; wake it so that happens at once.
            self.wake_outbox()
            log.info(
                "Request opened over HTTP",
                extra={
                    "session": session_id,
                    "group": group.id,
                    "agent": agent,
                    "caller": identity.user_id,
                },
            )

        session, offers = await self._wait_for_room(session_id)
        body = {
            "request_id": session_id,
            "room_id": session.room_id,
            "state": request_state(session, offers),
        }
        headers = PRIVATE_HEADERS | ({"Idempotent-Replayed": "true"} if replayed else {})
        return web.json_response(body, status=201, headers=headers)

    async def _open_once(
        self,
        conn: Connection,
        identity: Identity,
        key: str | None,
        new: NewRequest,
        agent: str,
        group: GroupConfig,
    ) -> tuple[int, bool]:
        """Open the session, or find the one this key opened before; True if found."""
        fingerprint = new.fingerprint(agent)
        if key is not None:
            known = await find_request_key(conn, identity.user_id, key)
            if known is not None:
                if known.fingerprint != fingerprint:
                    raise APIError(
                        422,
                        "M_INVALID_PARAM",
                        "Idempotency-Key was already used for a different request",
                    )
                return known.session_id, True

        session_id = await open_session(
            conn, self.config, group, agent, new.request, query=new.query
        )
        if key is not None:
            await remember_request_key(conn, identity.user_id, key, fingerprint, session_id)
        return session_id, False

    async def _wait_for_room(self, session_id: int) -> tuple[Session, list[Offer]]:
        """The session once its room exists, or as it is after ROOM_WAIT_SECONDS.

        Polling: the room is made by the outbox, which signals nothing this request could await.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ROOM_WAIT_SECONDS
        while True:
            async with connection(self.db) as conn:
                session = await get_session(conn, session_id)
                offers = await session_offers(conn, session_id)
            if session is None:
                # Only retention deletes sessions, long after they closed.
                raise APIError(404, "M_NOT_FOUND", "no such request")
            if session.room_id is not None or loop.time() >= deadline:
                return session, offers
            await asyncio.sleep(ROOM_POLL_SECONDS)

    async def get_request(self, request: web.Request) -> web.Response:
        """GET /api/v1/requests/{id}: state, offers, who claimed it, timings, decisions."""
        identity = await self.auth.identify(request, allow_api_tokens=True)
        session_id = path_id(request, "request")

        async with connection(self.db) as conn:
            session = await get_session(conn, session_id)
            if session is None:
                raise APIError(404, "M_NOT_FOUND", "no such request")
            if not self._may_follow(identity, session):
                raise APIError(
                    403, "M_FORBIDDEN", "You may not see this request: it is another agent's."
                )
            offers = await session_offers(conn, session_id)
            decisions = await session_decisions(conn, session_id)

        return web.json_response(request_json(session, offers, decisions), headers=PRIVATE_HEADERS)

    def _may_follow(self, identity: Identity, session: Session) -> bool:
        """Services, the session's own agent, and managers may follow a request."""
        return (
            identity.service or identity.user_id == session.agent or can_see_stats(identity.role)
        )
