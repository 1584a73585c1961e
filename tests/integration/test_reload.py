"""A running Backline taking a changed config: members, groups and permissions, no restart."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mautrix.types import UserID

from tests.integration.conftest import (
    BacklineFactory,
    join_roster,
    service_config,
    start_service,
    unique_group_id,
)
from tests.integration.matrix_user import MatrixUserFactory, SynapseWithAppservice
from tests.integration.test_session_flow import ask, ask_while_busy, session_of

pytestmark = pytest.mark.integration


async def test_a_member_added_by_a_reload_is_offered_the_request_that_waited(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, busy, newcomer = await asyncio.gather(
        matrix_user("agent"), matrix_user("busy"), matrix_user("newcomer")
    )
    group = unique_group_id("reload")
    backline = await start_backline(
        [{"id": group, "displayname": "Late desk", "members": [busy.user_id]}]
    )
    _, room, _ = await ask_while_busy(agent, busy, backline, group, "Is anyone on the late desk?")

    members = (UserID(busy.user_id), UserID(newcomer.user_id))
    grown = dataclasses.replace(backline.config.groups[0], members=members)
    await backline.app.reload(dataclasses.replace(backline.config, groups=(grown,)))
    await join_roster(newcomer, backline, group)

    offer = await newcomer.wait_for_invite(timeout=15, predicate=lambda i: i.room_id == room)
    assert offer.reason is not None and "Is anyone on the late desk?" in offer.reason
    assert (await session_of(backline, room)).state == "offering"


async def test_a_request_waiting_for_a_group_removed_by_a_reload_ends_and_says_why(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, busy = await asyncio.gather(matrix_user("agent"), matrix_user("busy"))
    group, other = unique_group_id("removed"), unique_group_id("stays")
    backline = await start_backline(
        [
            {"id": group, "displayname": "Old desk", "members": [busy.user_id]},
            {"id": other, "members": [busy.user_id]},
        ]
    )
    dm, room, _ = await ask_while_busy(agent, busy, backline, group, "Is the old desk there?")

    kept = tuple(g for g in backline.config.groups if g.id == other)
    await backline.app.reload(dataclasses.replace(backline.config, groups=kept))

    _, told = await agent.wait_for_message(dm, predicate=lambda body, _: "closed" in body)
    assert f"the group {group} has been removed from Backline" in told
    assert (await session_of(backline, room)).state == "expired"


async def test_an_agent_refused_before_a_reload_may_ask_after_it(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    agent, expert = await asyncio.gather(matrix_user("agent"), matrix_user("expert"))
    group = unique_group_id("opened")
    backline = await start_backline(
        [{"id": group, "members": [expert.user_id], "agents": ["@nobody:localhost"]}]
    )
    await join_roster(expert, backline, group)
    refused = await agent.create_dm(backline.group_user(group))
    await agent.wait_for_membership(refused, backline.group_user(group), "leave")

    opened = dataclasses.replace(backline.config.groups[0], agents=(agent.user_id,))
    await backline.app.reload(dataclasses.replace(backline.config, groups=(opened,)))
    await ask(agent, backline, group, "May I ask now?")

    room = (await agent.wait_for_invite()).room_id
    offer = await expert.wait_for_invite(predicate=lambda i: i.room_id == room)
    assert offer.reason is not None and "May I ask now?" in offer.reason


def _service_config(synapse: SynapseWithAppservice, tmp_path: Path, groups: list[Any]) -> str:
    database_url = f"sqlite:{tmp_path / 'backline.db'}"
    api = {"tokens": [{"name": "crm", "token": "reload-test-crm-token"}]}
    return json.dumps(service_config(synapse, database_url, groups, api=api))


async def _group_ids(http: aiohttp.ClientSession, url: str) -> list[str] | None:
    """The groups the API lists for an agent, or None while Backline is not answering."""
    headers = {"Authorization": "Bearer reload-test-crm-token"}
    try:
        async with http.get(
            f"{url}/api/v1/groups", params={"agent": "@someone:localhost"}, headers=headers
        ) as response:
            if response.status != 200:
                return None
            return [group["group"] for group in (await response.json())["groups"]]
    except aiohttp.ClientConnectionError:
        return None


async def _wait_for_groups(http: aiohttp.ClientSession, url: str, expected: list[str]) -> None:
    for _ in range(150):
        if await _group_ids(http, url) == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"groups are {await _group_ids(http, url)}, not {expected}")


async def test_sighup_rereads_the_file_and_a_broken_file_changes_nothing(
    synapse: SynapseWithAppservice, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(_service_config(synapse, tmp_path, [{"id": "hup-first", "members": []}]))
    process = await start_service(config, stderr=asyncio.subprocess.PIPE)
    try:
        async with aiohttp.ClientSession() as http:
            await _wait_for_groups(http, synapse.appservice_url, ["hup-first"])

            groups = [{"id": "hup-first", "members": []}, {"id": "hup-second", "members": []}]
            config.write_text(_service_config(synapse, tmp_path, groups))
            process.send_signal(signal.SIGHUP)
            await _wait_for_groups(http, synapse.appservice_url, ["hup-first", "hup-second"])

            config.write_text("groups: [{id: 'Not An Id!'}]")
            process.send_signal(signal.SIGHUP)
            await asyncio.sleep(1)
            still = await _group_ids(http, synapse.appservice_url)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)

    log = stderr.decode()
    assert still == ["hup-first", "hup-second"], log
    assert "Config reloaded" in log
    assert "Config not reloaded; the running one stays" in log
    assert process.returncode == 0, log
