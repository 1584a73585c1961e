"""The routing benchmark's people and records: who plays the agent and the experts, how they
call Synapse, and what Synapse and Backline recorded of each run."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
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

from appservice.demo.synapse import SynapseServer
from bench.common import (
    HttpTap,
    Stack,
    TapCall,
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
