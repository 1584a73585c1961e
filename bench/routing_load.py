"""The routing benchmark's load test: many requests at once, checked for lost or doubled offers."""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from urllib.parse import quote

import aiohttp
from mautrix.types import UserID

from appservice.db import connection, open_database
from appservice.db import offers as offers_db
from appservice.db import sessions as sessions_db
from bench.common import (
    Stack,
    percentile,
)
from bench.routing_desk import (
    LOAD_EXPERTS,
    LOAD_GROUP,
    Caller,
    People,
    TransactionTimes,
    bounded,
    experts_of,
    invites_in,
)


async def measure_load(
    stack: Stack, people: People, http: aiohttp.ClientSession, times: TransactionTimes, url: str
) -> list[object]:
    """Every caller asks the `load` group at once; checks and times the offers."""
    group_user = stack.config.group_mxid(LOAD_GROUP)
    callers = [Caller(http, stack.synapse.url, token) for _, token in people.callers]
    dms = await bounded([_open_dm(c, group_user) for c in callers])
    await times.quiet(1.0)

    texts = [f"Load {n}: the invoice shows the wrong address" for n in range(len(callers))]
    event_ids = await asyncio.gather(
        *(c.send(dm, t) for c, dm, t in zip(callers, dms, texts, strict=True))
    )
    sessions = await _wait_until_offered(url, len(callers))
    await times.quiet(1.0)

    experts = set(experts_of(LOAD_GROUP, LOAD_EXPERTS))
    as_group = Caller(http, stack.synapse.url, stack.config.appservice.as_token, group_user)
    rooms = [s.room_id or "" for s in sessions]
    histories = await bounded([as_group.room_events(r) for r in rooms])
    invites = [invites_in(h, experts) for h in histories]
    per_expert = [Counter(e["state_key"] for e in i) for i in invites]
    messages = await bounded(
        [
            c.call("GET", f"/rooms/{quote(dm)}/event/{e}")
            for c, dm, e in zip(callers, dms, event_ids, strict=True)
        ]
    )
    sent = {m["sender"]: float(m["origin_server_ts"]) for m in messages}
    last = {
        s.agent: max(float(e["origin_server_ts"]) for e in i)
        for s, i in zip(sessions, invites, strict=True)
        if i
    }
    each = [last[agent] - sent[agent] for agent in last]
    total = (max(last.values()) - min(sent.values())) / 1000
    return [
        len(callers),
        len(sessions),
        sum(len(i) for i in invites),
        sum(1 for c in per_expert for n in c.values() if n > 1),
        sum(1 for c in per_expert for e in experts if c[e] == 0),
        total,
        len(sessions) / total,
        statistics.median(each),
        percentile(each, 0.95),
    ]


async def _open_dm(caller: Caller, group_user: UserID) -> str:
    """A DM with the group user, returned once Backline has joined and greeted."""
    body = {"preset": "private_chat", "is_direct": True, "invite": [group_user]}
    dm = str((await caller.call("POST", "/createRoom", body))["room_id"])
    for _ in range(600):
        events = await caller.room_events(dm)
        if any(e["type"] == "m.room.message" and e["sender"] == group_user for e in events):
            return dm
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{group_user} did not greet in {dm}")


async def _wait_until_offered(url: str, expected: int) -> list[sessions_db.Session]:
    """Poll the database (read only) until `expected` load sessions have every offer sent."""
    db = await open_database(url)
    try:
        for _ in range(1800):
            async with connection(db) as conn:
                sessions = [
                    s
                    for s in await sessions_db.sessions_in_states(conn, _ALL_STATES)
                    if s.group_id == LOAD_GROUP
                ]
                offers = [await offers_db.session_offers(conn, s.id) for s in sessions]
            sent = sum(
                1
                for o in offers
                if len(o) == LOAD_EXPERTS and all(x.state == "invited" for x in o)
            )
            if len(sessions) >= expected and sent == len(sessions):
                _check_store(sessions, offers, expected)
                return sessions
            await asyncio.sleep(1)
        raise TimeoutError(f"{sent} of {expected} sessions have all their offers sent")
    finally:
        await db.stop()


def _check_store(
    sessions: list[sessions_db.Session], offers: list[list[offers_db.Offer]], expected: int
) -> None:
    """One session per agent, one offer per expert and session, as the database says."""
    per_agent = Counter(s.agent for s in sessions)
    if len(per_agent) != expected or max(per_agent.values()) != 1:
        raise RuntimeError(f"{len(sessions)} sessions for {len(per_agent)} agents")
    for session, session_offers in zip(sessions, offers, strict=True):
        if len({o.expert for o in session_offers}) != LOAD_EXPERTS:
            raise RuntimeError(f"session {session.id}: offers {session_offers}")


_ALL_STATES = ("opening", "offering", "waiting", "claimed", "closed", "expired", "cancelled")
