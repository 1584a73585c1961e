"""Backline running against the test Synapse, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest
from mautrix.types import UserID
from mautrix.util.async_db import Database

from appservice.app import Backline
from appservice.config import Config, config_from_dict
from tests.databases import ENGINES, fresh_database
from tests.integration.matrix_user import MatrixUser, SynapseWithAppservice

_group_numbers = itertools.count(1)


@dataclass
class RunningBackline:
    """A started Backline and what tests need to reach it."""

    app: Backline
    config: Config
    url: str

    @property
    def db(self) -> Database:
        assert self.app.db is not None, "Backline is not started"
        return self.app.db

    def group_user(self, group_id: str) -> UserID:
        return self.config.group_mxid(group_id)


class BacklineFactory(Protocol):
    async def __call__(
        self,
        groups: list[dict[str, Any]],
        *,
        experts: dict[str, Any] | None = None,
        permissions: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> RunningBackline: ...


@pytest.fixture(params=ENGINES)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database on each engine in turn."""
    async with fresh_database(request.param, tmp_path) as url:
        yield url


def service_config(
    synapse: SynapseWithAppservice, database_url: str, groups: list[Any], **sections: Any
) -> dict[str, Any]:
    """A config for Backline beside the test Synapse; `sections` replace top-level keys."""
    return {
        "homeserver": {"address": synapse.url, "domain": synapse.server_name},
        "appservice": {
            "address": synapse.appservice_url,
            "hostname": "127.0.0.1",
            "port": synapse.appservice_port,
            "as_token": synapse.as_token,
            "hs_token": synapse.hs_token,
        },
        "database": {"url": database_url},
        "permissions": {"*": "agent"},
        "experts": {},
        "groups": groups,
        **sections,
    }


async def start_service(config: Path, *, stderr: int | None) -> asyncio.subprocess.Process:
    """`python -m appservice` on a config file, as an operator runs it (registration beside)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appservice",
        "-c",
        str(config),
        "-r",
        str(config.parent / "registration.yaml"),
        stderr=stderr,
    )


@pytest.fixture
async def start_backline(
    synapse: SynapseWithAppservice, database_url: str, tmp_path: Path
) -> AsyncIterator[BacklineFactory]:
    """Start Backline with the given groups; stopped after the test."""
    running: list[Backline] = []

    async def start(
        groups: list[dict[str, Any]],
        *,
        experts: dict[str, Any] | None = None,
        permissions: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> RunningBackline:
        """Start Backline; `extra` sections (e.g. archive, web) are merged into the config."""
        sections = {
            "permissions": permissions or {"*": "none", synapse.server_name: "agent"},
            "experts": experts or {},
            **(extra or {}),
            # Stored files go to the test's own folder, never the working directory.
            "archive": {
                "media_path": str(tmp_path / "archive-media"),
                **(extra or {}).get("archive", {}),
            },
        }
        config = config_from_dict(service_config(synapse, database_url, groups, **sections))
        app = Backline(config)
        running.append(app)
        await app.start()
        async with asyncio.timeout(30):
            await app.ready.wait()
        return RunningBackline(app, config, synapse.appservice_url)

    yield start
    for app in running:
        await app.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client for calling Backline's routes."""
    async with aiohttp.ClientSession() as session:
        yield session


def unique_group_id(name: str) -> str:
    """Group IDs differ per test: the homeserver keeps group users and rooms across tests."""
    return f"{name}{next(_group_numbers)}"


async def join_roster(expert: MatrixUser, backline: RunningBackline, group_id: str) -> None:
    """Accept the roster invite of a group, as an expert does once."""
    group_user = backline.group_user(group_id)
    invite = await expert.wait_for_invite(predicate=lambda i: i.sender == group_user)
    await expert.join(invite.room_id)
