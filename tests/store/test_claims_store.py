"""The claim logic through the store: random interleavings of joins, declines and timeouts.

Each event is applied as Backline applies it, in a transaction of its own, with the offers read
back from the store; what the store holds afterwards is checked, on both engines.
"""

from __future__ import annotations

import random

from mautrix.util.async_db import Database

from appservice.config import Config, config_from_dict
from appservice.db import offers, outbox, sessions, transaction
from appservice.db.offers import LIVE_STATES
from appservice.routing import moves
from appservice.routing.opening import CustomerQuery, open_session
from appservice.routing.preferences import Request

EXPERTS = [f"@expert{i}:example.org" for i in range(5)]
INTERLEAVINGS = 40


def desk_config() -> Config:
    return config_from_dict(
        {
            "homeserver": {"address": "http://127.0.0.1:8008", "domain": "example.org"},
            "appservice": {"as_token": "a" * 32, "hs_token": "h" * 32},
            "groups": [{"id": "billing", "members": EXPERTS}],
        }
    )


async def offered_session(db: Database, config: Config, needed: int, experts: list[str]) -> int:
    group = config.group("billing")
    assert group is not None
    async with transaction(db) as conn:
        session_id = await open_session(
            conn, config, group, "@agent:example.org", Request("Refund?"), query=CustomerQuery()
        )
        await sessions.set_room(conn, session_id, f"!room{session_id}:example.org")
        await conn.execute("UPDATE session SET needed=$1 WHERE id=$2", needed, session_id)
        for expert in experts:
            await offers.add_offer(conn, session_id, expert)
            await offers.mark_invited(conn, session_id, expert)
        await sessions.set_state(conn, session_id, "offering")
    return session_id


async def apply(db: Database, config: Config, session_id: int, kind: str, expert: str) -> None:
    """One event, as the transaction handler or the clock takes it."""
    async with transaction(db) as conn:
        session = await sessions.get_session(conn, session_id)
        offer = await offers.get_offer(conn, session_id, expert)
        assert session is not None
        if offer is None:
            return
        if kind == "join":
            await moves.accept(conn, config, session, expert)
        else:
            how = "declined" if kind == "decline" else "timed_out"
            await moves.end_offer(conn, config, session, offer, how, kind)


async def test_random_interleavings_never_let_more_than_needed_claim(db: Database) -> None:
    config = desk_config()
    rng = random.Random(20261203)

    for round_number in range(INTERLEAVINGS):
        needed = rng.randint(1, 3)
        offered = rng.sample(EXPERTS, rng.randint(1, len(EXPERTS)))
        events = [
            (rng.choice(["join", "decline", "timeout"]), rng.choice(EXPERTS))
            for _ in range(rng.randint(1, 12))
        ]
        session_id = await offered_session(db, config, needed, offered)
        ended: dict[str, str] = {}

        for kind, expert in events:
            await apply(db, config, session_id, kind, expert)
            async with transaction(db) as conn:
                states = {o.expert: o.state for o in await offers.session_offers(conn, session_id)}
            for who, state in states.items():
                if state not in LIVE_STATES:
                    assert ended.setdefault(who, state) == state, (round_number, events)

        async with transaction(db) as conn:
            session = await sessions.get_session(conn, session_id)
            final = await offers.session_offers(conn, session_id)
            kicks = [
                a for a in await outbox.pending(conn, f"session:{session_id}") if a.kind == "kick"
            ]
        assert session is not None
        accepted = [o.expert for o in final if o.state == "accepted"]
        context = (round_number, needed, offered, events)
        assert len(accepted) <= needed, context
        assert (session.state == "claimed") == (len(accepted) == needed), context
        if session.state == "claimed":
            assert not [o for o in final if o.state in LIVE_STATES], context
        # Every withdrawn or timed-out invite is taken back in the room, exactly once.
        taken_back = sorted(o.expert for o in final if o.state in ("withdrawn", "timed_out"))
        assert sorted(k.payload["target"] for k in kicks) == taken_back, context
