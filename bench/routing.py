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
import re
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import aiohttp
from mautrix.types import RoomID

from appservice.routing.actions import SESSION_ROOM_POWER
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
from bench.routing_desk import (
    LATENCY_EXPERTS,
    LATENCY_GROUP,
    LOAD_EXPERTS,
    QUESTION,
    SYNAPSE,
    TARGET,
    BacklineLog,
    Caller,
    People,
    TransactionTimes,
    experts_of,
    join_rosters,
    room_marks,
    stack_settings,
    wait_until_available,
)
from bench.routing_load import measure_load


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
            "power_level_content_override": SESSION_ROOM_POWER,
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


# (start, end, what). The question notice and the routing decision both follow the saved
# room and run side by side, so each is timed from there.
_BACKLINE_STEPS = [
    ("message sent", "reached Backline", "Synapse pushes the transaction"),
    ("reached Backline", "session opened", "store, decide, open the session"),
    ("session opened", "created", "commit, answer, outbox starts the room"),
    ("created", "agent invited", "createRoom inside Synapse"),
    ("agent invited", "room saved", "createRoom answered, room saved"),
    ("room saved", "question posted", "question notice posted (beside routing)"),
    ("room saved", "routing decided", "routing decided and committed"),
    ("routing decided", "first invite", "first invite"),
    ("first invite", "last invite", "50 invites at once"),
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
    for start, end, what in _BACKLINE_STEPS:
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
