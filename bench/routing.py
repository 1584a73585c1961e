"""Routing: how long a broadcast request takes to reach 50 experts, and 200 requests at once.

    .venv/bin/python -m bench.routing [--runs 20] [--agents 200] [--trace] [--engine ...]

A throwaway Synapse (SQLite) and `backline` (its own process, on a fresh database) start
together, with two broadcast groups: `latency` (50 experts) and `load` (20 experts). The experts
are real registered users who set their presence to online and joined their group's roster
room, so Backline sees them available. They do not sync: Synapse is told to keep presence
(`presence.sync_online_timeout`), so no expert's sync wakes on every invite and Synapse's work
per invite is the same for Backline and for the baseline. Everything goes through Matrix:
nothing of `appservice.routing` is imported, so the benchmark outlives rewrites of routing.

Latency. An agent (a real, syncing user) sends a question in its DM with the group user;
Backline opens a session room and invites the 50 experts. The clock starts when the transaction
carrying the message reaches Backline: a forwarding tap between Synapse and Backline notes its
arrival (wall clock, the same clock as Synapse's `origin_server_ts` on this host), so the time
Synapse takes to push the event, which no appservice can save, is left out, while the tap's own
hop counts against Backline. The clock stops at the `origin_server_ts` of the last expert's
invite, read from the room's history. The agent joins the room as soon as its sync shows the
invite, as a person would, and the run ends once it has seen all 50 invites; it then sends
`!close`, waits until every invite is withdrawn and no transaction is in flight, and asks again.

The baseline, in the same run and alternating with it, is a bare script doing the same Synapse
calls with the appservice token as the same group user: the same `createRoom` (alias, name,
topic, agent invited, history visibility, power levels), then 50 invites with a reason at once
(Backline sends them with `asyncio.gather` too). Its clock starts when it sends `createRoom` and
stops the same way; the agent joins its room the same way. Both are also shown from the room's
`m.room.create` event, and Backline end to end from the message's own `origin_server_ts`.
Target: Backline's p50 and p95 at most 1.3x the bare calls. Where the time goes is read from
event timestamps and Backline's INFO log lines (JSON); `--trace` also puts a tap between
Backline and Synapse and lists Backline's calls in the median run (a loopback hop more per
call, so traced runs are a little slower).

Load. `--agents` agents (default 200) each open a DM with the `load` group's user and wait for
its greeting, then all send a question at once. Once Backline's database (read only) shows every
session with all its offers sent, the benchmark checks there that each agent has exactly one
session with one offer per expert, and in each session room's history on Synapse that each
expert got exactly one invite. It prints the time from the first message to the last invite,
sessions per second, and each session's own latency. Warnings and errors in Backline's log are
counted in the end.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import secrets
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from mautrix.types import RoomID, UserID

from appservice.db import connection, open_database
from appservice.db import offers as offers_db
from appservice.db import sessions as sessions_db
from appservice.demo.synapse import SynapseServer
from bench.common import (
    ENGINES,
    HttpTap,
    Stack,
    TapCall,
    fresh_database,
    percentile,
    print_table,
    synapse_and_backline,
)
from tests.integration.matrix_user import MatrixUser

T = TypeVar("T")

DOMAIN = "localhost"
LATENCY_GROUP, LATENCY_EXPERTS = "latency", 50
LOAD_GROUP, LOAD_EXPERTS = "load", 20
TARGET = 1.3
QUESTION = "a customer was charged twice for one order, how do I refund the second charge?"
PASSWORD = secrets.token_urlsafe(16)
# Registering, first syncs and DM setup at once: enough to be quick, few enough for Synapse.
CONCURRENCY = 20
# What Backline's session rooms set, so the bare createRoom costs Synapse the same.
_POWER = {
    "events": {
        "m.room.encryption": 100,
        "m.room.power_levels": 100,
        "m.room.history_visibility": 100,
        "m.room.join_rules": 100,
        "m.room.tombstone": 100,
        "m.room.server_acl": 100,
    },
    "invite": 100,
    "kick": 100,
    "ban": 100,
    "redact": 50,
    "state_default": 50,
    "events_default": 0,
    "users_default": 0,
}


def user_id(localpart: str) -> UserID:
    return UserID(f"@{localpart}:{DOMAIN}")


def experts_of(group: str, count: int) -> list[UserID]:
    return [user_id(f"{group}-expert-{n}") for n in range(count)]


async def bounded(calls: Sequence[Awaitable[T]], limit: int = CONCURRENCY) -> list[T]:
    """Await all, at most `limit` at a time, results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return list(await asyncio.gather(*(one(c) for c in calls)))


class Caller:
    """Client-server API calls with one token: a user's, or the appservice's as a group user."""

    def __init__(
        self, http: aiohttp.ClientSession, base: str, token: str, as_user: str | None = None
    ) -> None:
        self.http = http
        self.base = base + "/_matrix/client/v3"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.params = {"user_id": as_user} if as_user else {}

    async def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        async with self.http.request(
            method,
            self.base + path,
            json=body,
            params={**self.params, **(query or {})},
            headers=self.headers,
        ) as response:
            answer: dict[str, Any] = await response.json()
            if response.status != 200:
                raise RuntimeError(f"{method} {path}: {response.status} {answer}")
            return answer

    async def room_events(self, room_id: str) -> list[dict[str, Any]]:
        """The room's events, oldest first (the benchmark's rooms hold a few dozen)."""
        answer = await self.call(
            "GET", f"/rooms/{quote(room_id)}/messages", query={"dir": "f", "limit": "1000"}
        )
        return list(answer["chunk"])

    async def send(self, room_id: str, text: str) -> str:
        path = f"/rooms/{quote(room_id)}/send/m.room.message/{secrets.token_hex(8)}"
        return str((await self.call("PUT", path, {"msgtype": "m.text", "body": text}))["event_id"])


# region what the homeserver and Backline recorded


def invites_in(events: list[dict[str, Any]], experts: set[UserID]) -> list[dict[str, Any]]:
    """The invite events of these experts, in the room's order."""
    return [
        e
        for e in events
        if e["type"] == "m.room.member"
        and e.get("state_key") in experts
        and e["content"].get("membership") == "invite"
    ]


def room_marks(
    events: list[dict[str, Any]], experts: set[UserID], agent: UserID, group_user: UserID
) -> dict[str, float]:
    """Timestamps (ms) of a session room's steps, from its events; checks the invites."""
    invites = invites_in(events, experts)
    doubled = [who for who, n in Counter(e["state_key"] for e in invites).items() if n > 1]
    if len(invites) != len(experts) or doubled:
        raise RuntimeError(f"{len(invites)} invites for {len(experts)} experts; doubled {doubled}")
    marks = {"created": next(e for e in events if e["type"] == "m.room.create")}
    marks["agent invited"] = next(
        e for e in events if e["type"] == "m.room.member" and e.get("state_key") == agent
    )
    questions = [e for e in events if e["type"] == "m.room.message" and e["sender"] == group_user]
    if questions:
        marks["question posted"] = questions[0]
    marks["first invite"], marks["last invite"] = invites[0], invites[-1]
    return {name: float(e["origin_server_ts"]) for name, e in marks.items()}


class TransactionTimes:
    """When the transaction carrying an event reached Backline, and when it was answered."""

    def __init__(self, tap: HttpTap) -> None:
        self.tap = tap
        self._seen = 0
        self._calls: dict[str, TapCall] = {}

    def of(self, event_id: str) -> TapCall | None:
        for call in self.tap.calls[self._seen :]:
            if call.method == "PUT" and "/transactions/" in call.path:
                for event in json.loads(call.body).get("events", []):
                    self._calls.setdefault(event["event_id"], call)
        self._seen = len(self.tap.calls)
        return self._calls.get(event_id)

    async def quiet(self, idle: float = 0.3) -> None:
        """Wait until no transaction is in flight and none came for `idle` seconds."""
        while True:
            calls = self.tap.calls
            if (
                all(c.ended for c in calls)
                and time.time() - max((c.ended for c in calls), default=0) >= idle
            ):
                return
            await asyncio.sleep(0.05)


class BacklineLog:
    """Backline's JSON log lines: routing steps by session, and its warnings and errors."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[dict[str, Any]]:
        result = []
        for line in self.path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                result.append(json.loads(line))
        return result

    def marks(self, room_id: str) -> dict[str, float]:
        """Wall-clock ms of the INFO lines of the session whose room this is."""
        lines = self.lines()
        session = next(
            (e["session"] for e in lines if e.get("room_id") == room_id and "session" in e), None
        )
        names = {
            "Session opened": "session opened",
            "Session room ready": "room saved",
            "Routing decision": "routing decided",
        }
        marks = {}
        for entry in lines:
            if entry.get("session") == session and entry["message"].split(":")[0] in names:
                stamp = datetime.fromisoformat(entry["time"]).timestamp()
                marks[names[entry["message"].split(":")[0]]] = stamp * 1000
        return marks

    def problems(self) -> Counter[str]:
        """Warnings and worse, by level, message, and the action or exception they name."""
        return Counter(
            " ".join(
                str(part)
                for part in (e["level"], e["message"], e.get("action", ""), e.get("exception", ""))
                if part
            )[:160]
            for e in self.lines()
            if e.get("level") in ("WARNING", "ERROR", "CRITICAL")
        )


# endregion
# region the people


@dataclass
class People:
    """Everyone the benchmark plays: the agent as a syncing client, experts and callers plain.

    Experts do not sync: Synapse keeps them online (see `SYNAPSE`), so the homeserver's work
    per invite is the same for Backline and the bare script, without 50 syncs woken each time.
    """

    experts: dict[UserID, str] = field(default_factory=dict)
    agent: MatrixUser | None = None
    callers: list[tuple[UserID, str]] = field(default_factory=list)

    async def register(self, synapse: SynapseServer, callers: int) -> None:
        localparts = [u.split(":")[0][1:] for u in self.all_experts()]
        self.experts = dict(
            await bounded([synapse.register_user(lp, PASSWORD) for lp in localparts])
        )
        self.agent = await MatrixUser.create(synapse, "agent", PASSWORD)
        self.callers = await bounded(
            [synapse.register_user(f"caller-{n}", PASSWORD) for n in range(callers)]
        )

    @staticmethod
    def all_experts() -> list[UserID]:
        return experts_of(LATENCY_GROUP, LATENCY_EXPERTS) + experts_of(LOAD_GROUP, LOAD_EXPERTS)

    async def stop(self) -> None:
        if self.agent is not None:
            await self.agent.stop()


# Presence set once stays online: no expert syncs during the benchmark.
SYNAPSE = {
    "presence": {"enabled": True, "sync_online_timeout": 86_400_000, "idle_timeout": 172_800_000}
}


def stack_settings() -> dict[str, Any]:
    """Backline's groups, and INFO logs as JSON lines so the benchmark can read them."""
    return {
        "groups": [
            {
                "id": group,
                "displayname": f"{group.capitalize()} experts",
                "members": experts_of(group, count),
                "routing": {"strategy": "broadcast"},
            }
            for group, count in ((LATENCY_GROUP, LATENCY_EXPERTS), (LOAD_GROUP, LOAD_EXPERTS))
        ],
        "logging": {"level": "INFO", "format": "json"},
    }


async def join_rosters(stack: Stack, people: People, http: aiohttp.ClientSession) -> None:
    """Each expert goes online and accepts their group's roster invite, as an expert does once."""

    async def join(expert: UserID, token: str) -> None:
        caller = Caller(http, stack.synapse.url, token)
        group_user = stack.config.group_mxid(expert.split("-")[0][1:])
        await caller.call("PUT", f"/presence/{quote(expert)}/status", {"presence": "online"})
        since: dict[str, str] = {}
        async with asyncio.timeout(300):
            while True:
                answer = await caller.call("GET", "/sync", query={"timeout": "30000", **since})
                since = {"since": answer["next_batch"]}
                for room_id, room in answer.get("rooms", {}).get("invite", {}).items():
                    if any(e["sender"] == group_user for e in room["invite_state"]["events"]):
                        await caller.call("POST", f"/join/{quote(room_id)}", {})
                        return

    await bounded([join(expert, token) for expert, token in people.experts.items()])


async def wait_until_available(agent: MatrixUser, dm: RoomID) -> None:
    """Ask `!groups` until Backline counts every expert of both groups as available."""
    wanted = {LATENCY_GROUP: LATENCY_EXPERTS, LOAD_GROUP: LOAD_EXPERTS}
    for _ in range(60):
        await agent.send_text(dm, "!groups")
        _, text = await agent.wait_for_message(dm, predicate=lambda b, _: "Groups you" in b)
        counts = {
            g: int(m.group(1)) if (m := re.search(rf"group-{g}:\S+: (\d+) available", text)) else 0
            for g in wanted
        }
        if counts == wanted:
            return
        await asyncio.sleep(1)
    raise TimeoutError(f"Backline sees {counts} experts available, not {wanted}")


# endregion
# region latency


@dataclass
class Latency:
    """Marks (wall-clock ms) of each run: Backline's and the bare script's."""

    backline: list[dict[str, float]] = field(default_factory=list)
    bare: list[dict[str, float]] = field(default_factory=list)
    calls: list[list[TapCall]] = field(default_factory=list)


class LatencyRuns:
    """One agent asking the `latency` group again and again, and the bare script beside it.

    In both, the agent joins the new room as soon as its sync shows the invite, as a person
    would, and the run ends when the agent has seen every expert's invite in that room.
    """

    def __init__(
        self,
        stack: Stack,
        people: People,
        http: aiohttp.ClientSession,
        times: TransactionTimes,
        outgoing: HttpTap | None,
    ) -> None:
        assert people.agent is not None
        self.stack = stack
        self.agent = people.agent
        self.experts = set(experts_of(LATENCY_GROUP, LATENCY_EXPERTS))
        self.group_user = stack.config.group_mxid(LATENCY_GROUP)
        self.as_group = Caller(
            http, stack.synapse.url, stack.config.appservice.as_token, self.group_user
        )
        self.as_agent = Caller(http, stack.synapse.url, self.agent.client.api.token)
        self.times = times
        self.outgoing = outgoing
        self.log = BacklineLog(stack.work / "backline.log")
        self.dm = RoomID("")

    async def open_dm(self) -> None:
        self.dm = await self.agent.create_dm(self.group_user)
        await self.agent.wait_for_membership(self.dm, self.group_user, "join", timeout=30)
        await self.agent.wait_for_message(self.dm, timeout=30)

    async def through_backline(self, number: int) -> tuple[dict[str, float], list[TapCall]]:
        joining = asyncio.create_task(self._join_when_invited(f"Run {number}:"))
        event_id = await self.agent.send_text(self.dm, f"Run {number}: {QUESTION}")
        room = await joining
        marks = await self._marks(self.as_agent, room)

        message = await self.as_agent.call("GET", f"/rooms/{quote(self.dm)}/event/{event_id}")
        marks["message sent"] = float(message["origin_server_ts"])
        put = self.times.of(event_id)
        if put is None:
            raise RuntimeError(f"no transaction carried {event_id}")
        marks["reached Backline"], marks["answered"] = put.started * 1000, put.ended * 1000
        marks.update(self.log.marks(room))
        calls = self._calls_between(put.started, marks["last invite"] / 1000)

        await self.agent.send_text(room, "!close")
        await self._withdrawn(room)
        # Closed before anyone took it: the request is cancelled and its offers withdrawn.
        await self.agent.wait_for_message(
            room, timeout=30, predicate=lambda b, _: "cancelled this request" in b
        )
        await self.times.quiet()
        return marks, calls

    async def bare(self, number: int) -> dict[str, float]:
        title = f"Bare {number}: {QUESTION}"
        body = {
            "room_alias_name": f"{self.stack.config.appservice.session_alias_prefix}bare{number}",
            "preset": "private_chat",
            "name": f"Latency experts: {title}",
            "topic": f"Session bare-{number} for {self.agent.user_id}. Send !close to end it.",
            "invite": [self.agent.user_id],
            "initial_state": [
                {
                    "type": "m.room.history_visibility",
                    "state_key": "",
                    "content": {"history_visibility": "shared"},
                }
            ],
            "power_level_content_override": _POWER,
        }
        reason = f"Latency experts: {self.agent.user_id} asks: {title}"
        joining = asyncio.create_task(self._join_when_invited(f"Bare {number}:"))
        started = time.time() * 1000
        room = RoomID((await self.as_group.call("POST", "/createRoom", body))["room_id"])
        invite = f"/rooms/{quote(room)}/invite"
        await asyncio.gather(
            *(
                self.as_group.call("POST", invite, {"user_id": e, "reason": reason})
                for e in self.experts
            )
        )
        await joining
        marks = await self._marks(self.as_group, room)
        marks["call sent"] = started

        kick = f"/rooms/{quote(room)}/kick"
        await asyncio.gather(
            *(
                self.as_group.call("POST", kick, {"user_id": e, "reason": "bench"})
                for e in self.experts
            )
        )
        await self._withdrawn(room)
        await self.times.quiet()
        return marks

    async def _join_when_invited(self, marker: str) -> RoomID:
        """Join the room named with `marker` once invited; return once every offer is seen."""
        invite = await self.agent.wait_for_invite(
            timeout=60, predicate=lambda i: f": {marker}" in (i.room_name or "")
        )
        await self.agent.join(invite.room_id)
        await asyncio.gather(
            *(
                self.agent.wait_for_membership(invite.room_id, e, "invite", timeout=120)
                for e in self.experts
            )
        )
        return invite.room_id

    async def _marks(self, caller: Caller, room: RoomID) -> dict[str, float]:
        events = await caller.room_events(room)
        return room_marks(events, self.experts, self.agent.user_id, self.group_user)

    async def _withdrawn(self, room: RoomID) -> None:
        await asyncio.gather(
            *(self.agent.wait_for_membership(room, e, "leave", timeout=120) for e in self.experts)
        )

    def _calls_between(self, start: float, end: float) -> list[TapCall]:
        if self.outgoing is None:
            return []
        return [c for c in self.outgoing.calls if start <= c.started <= end + 0.001]


async def measure_latency(runs: LatencyRuns, count: int) -> Latency:
    """A warm-up pair, then `count` pairs, alternating which goes first."""
    await runs.through_backline(0)
    await runs.bare(0)
    result = Latency()
    for number in range(1, count + 1):
        if number % 2:
            result.bare.append(await runs.bare(number))
        marks, calls = await runs.through_backline(number)
        result.backline.append(marks)
        result.calls.append(calls)
        if not number % 2:
            result.bare.append(await runs.bare(number))
    return result


def span(marks: Sequence[dict[str, float]], start: str, end: str = "last invite") -> list[float]:
    return [m[end] - m[start] for m in marks if start in m and end in m]


def latency_rows(engine: str, latency: Latency) -> list[list[object]]:
    """Backline against the bare calls, from the moment each starts and from the create event."""
    rows = []
    for what, ours, bare in (
        ("reached Backline / call sent -> last invite", "reached Backline", "call sent"),
        ("m.room.create -> last invite", "created", "created"),
    ):
        b, r = span(latency.backline, ours), span(latency.bare, bare)
        ratio50 = statistics.median(b) / statistics.median(r)
        ratio95 = percentile(b, 0.95) / percentile(r, 0.95)
        ok = "ok" if max(ratio50, ratio95) <= TARGET else "MISSED"
        rows.append(
            [
                engine,
                what,
                statistics.median(b),
                percentile(b, 0.95),
                statistics.median(r),
                percentile(r, 0.95),
                f"{ratio50:.2f}x",
                f"{ratio95:.2f}x",
                ok,
            ]
        )
    e2e = span(latency.backline, "message sent")
    rows.append(
        [
            engine,
            "message sent -> last invite (Backline only)",
            statistics.median(e2e),
            percentile(e2e, 0.95),
            *[""] * 5,
        ]
    )
    return rows


_BACKLINE_STEPS = [
    ("message sent", "Synapse pushes the transaction"),
    ("reached Backline", "store, decide, open the session"),
    ("session opened", "commit, answer, outbox starts the room"),
    ("created", "createRoom inside Synapse"),
    ("agent invited", "createRoom answered, room saved"),
    ("room saved", "question notice posted"),
    ("question posted", "routing decided and committed"),
    ("routing decided", "first invite"),
    ("first invite", "50 invites at once"),
    ("last invite", ""),
]
# Spans both have: (Backline's start, the bare script's start, end, what).
_COMPARED = [
    ("reached Backline", "call sent", "created", "until m.room.create"),
    ("created", "created", "agent invited", "createRoom inside Synapse"),
    ("agent invited", "agent invited", "first invite", "createRoom answered -> first invite"),
    ("first invite", "first invite", "last invite", "50 invites at once"),
]


def breakdown_rows(engine: str, latency: Latency) -> list[list[object]]:
    """Median of each of Backline's steps, then of the spans the bare script has too."""
    rows: list[list[object]] = []
    for (start, what), (end, _) in itertools.pairwise(_BACKLINE_STEPS):
        ours = span(latency.backline, start, end)
        rows.append([engine, what, statistics.median(ours) if ours else "-", ""])
    for ours_start, bare_start, end, what in _COMPARED:
        ours, bare = span(latency.backline, ours_start, end), span(latency.bare, bare_start, end)
        rows.append([engine, f"= {what}", statistics.median(ours), statistics.median(bare)])
    return rows


def print_trace(latency: Latency) -> None:
    """Backline's calls to Synapse in the median run, grouped by kind, offsets from arrival."""
    totals = span(latency.backline, "reached Backline")
    median_run = sorted(range(len(totals)), key=lambda i: totals[i])[len(totals) // 2]
    start = latency.backline[median_run]["reached Backline"] / 1000
    groups: dict[str, list[TapCall]] = {}
    for call in latency.calls[median_run]:
        path = re.sub(r"(%21|%40|!|@)[^/?]+", "{id}", call.path.split("?")[0])
        path = path.removeprefix("/_matrix/client/v3")
        groups.setdefault(f"{call.method} {path}", []).append(call)
    rows = [
        [
            kind,
            len(calls),
            (calls[0].started - start) * 1000,
            (max(c.ended for c in calls) - start) * 1000,
            statistics.median((c.ended - c.started) * 1000 for c in calls),
        ]
        for kind, calls in sorted(groups.items(), key=lambda item: item[1][0].started)
    ]
    print_table(
        f"Backline's calls to Synapse in the median run ({totals[median_run]:.0f} ms;"
        " ms from the transaction's arrival)",
        ["call", "count", "first sent", "last answered", "p50 duration"],
        rows,
    )


# endregion
# region load


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


# endregion


async def _measure(
    engine: str,
    stack: Stack,
    people: People,
    http: aiohttp.ClientSession,
    incoming: HttpTap,
    outgoing: HttpTap | None,
    runs: int,
    agents: int,
    url: str,
) -> tuple[Latency, list[object] | None]:
    print(f"{engine}: experts join their rosters ...", flush=True)
    await join_rosters(stack, people, http)
    times = TransactionTimes(incoming)
    latency_runs = LatencyRuns(stack, people, http, times, outgoing)
    await latency_runs.open_dm()
    assert people.agent is not None
    await wait_until_available(people.agent, latency_runs.dm)
    print(f"{engine}: {runs} latency runs ...", flush=True)
    latency = await measure_latency(latency_runs, runs)
    if outgoing is not None:
        print_trace(latency)
    if not agents:
        return latency, None
    print(f"{engine}: {agents} requests at once ...", flush=True)
    return latency, [engine, *await measure_load(stack, people, http, times, url)]


async def bench_engine(
    engine: str, runs: int, agents: int, trace: bool
) -> tuple[list[list[object]], list[list[object]], list[object] | None, Counter[str]]:
    people = People()
    incoming = HttpTap()
    outgoing = HttpTap() if trace else None
    try:
        with tempfile.TemporaryDirectory(prefix="backline-bench-") as work:
            async with (
                fresh_database(engine, Path(work)) as url,
                synapse_and_backline(
                    url,
                    config=stack_settings(),
                    synapse_config=SYNAPSE,
                    before_backline=lambda synapse: people.register(synapse, agents),
                    incoming=incoming,
                    outgoing=outgoing,
                ) as stack,
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
            ):
                latency, load = await _measure(
                    engine, stack, people, http, incoming, outgoing, runs, agents, url
                )
                problems = BacklineLog(stack.work / "backline.log").problems()
                # Before Synapse stops, so no sync fails on the way out.
                await people.stop()
    finally:
        await people.stop()
    return latency_rows(engine, latency), breakdown_rows(engine, latency), load, problems


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--agents", type=int, default=200, help="0 skips the load test")
    parser.add_argument("--trace", action="store_true", help="list Backline's calls to Synapse")
    parser.add_argument("--engine", choices=ENGINES, action="append")
    args = parser.parse_args()

    latency_rows_all, breakdown_all, load_rows, problems_all = [], [], [], []
    for engine in args.engine or ENGINES:
        latency, breakdown, load, problems = await bench_engine(
            engine, args.runs, args.agents, args.trace
        )
        latency_rows_all += latency
        breakdown_all += breakdown
        if load is not None:
            load_rows.append(load)
        problems_all += [[engine, n, what] for what, n in problems.most_common()]

    print_table(
        f"Routing latency, broadcast to {LATENCY_EXPERTS} experts, {args.runs} runs (ms)",
        [
            "engine",
            "from -> to",
            "Backline p50",
            "p95",
            "bare p50",
            "p95",
            "ratio p50",
            "p95",
            f"<= {TARGET}x",
        ],
        latency_rows_all,
    )
    print_table(
        "Where the time goes (median of each step, ms)",
        ["engine", "step", "Backline", "bare"],
        breakdown_all,
    )
    if load_rows:
        print_table(
            f"Load: requests at once to a {LOAD_EXPERTS}-expert broadcast group",
            [
                "engine",
                "requests",
                "sessions",
                "invites",
                "doubled",
                "missing",
                "first msg -> last invite s",
                "sessions/s",
                "per session p50 ms",
                "p95",
            ],
            load_rows,
        )
    print_table(
        "Warnings and errors in Backline's log",
        ["engine", "count", "message"],
        problems_all or [["-", 0, "none"]],
    )


if __name__ == "__main__":
    asyncio.run(main())
