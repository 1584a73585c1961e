"""Shared fixtures."""

from __future__ import annotations

import itertools
import json
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appservice.demo.synapse import free_port
from tests.integration.matrix_user import MatrixUser, MatrixUserFactory, SynapseWithAppservice

# region Synapse and Matrix users (integration tests)

_user_numbers = itertools.count(1)


def _write_registration(synapse: SynapseWithAppservice, path: Path) -> None:
    """Backline's appservice registration for the tests (JSON is YAML to Synapse)."""
    server = re.escape(synapse.server_name)
    registration = {
        "id": "backline",
        "url": synapse.appservice_url,
        "as_token": synapse.as_token,
        "hs_token": synapse.hs_token,
        "sender_localpart": "backline",
        "rate_limited": False,
        "receive_ephemeral": True,
        "de.sorunome.msc2409.push_ephemeral": True,
        "namespaces": {
            "users": [
                {"exclusive": True, "regex": f"@backline:{server}"},
                {"exclusive": True, "regex": f"@group-.*:{server}"},
            ],
            "aliases": [{"exclusive": True, "regex": f"#backline-session-.*:{server}"}],
            "rooms": [],
        },
    }
    path.write_text(json.dumps(registration, indent=2))


@pytest.fixture(scope="session")
async def synapse(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[SynapseWithAppservice]:
    """A Synapse for the whole session, with Backline registered at `appservice_url`."""
    data_dir = tmp_path_factory.mktemp("synapse")
    registration = data_dir / "backline-registration.yaml"
    port = free_port()
    appservice_port = free_port()
    while appservice_port == port:
        appservice_port = free_port()
    server = SynapseWithAppservice(
        data_dir=data_dir,
        port=port,
        registration_files=[registration],
        appservice_port=appservice_port,
        as_token=secrets.token_urlsafe(32),
        hs_token=secrets.token_urlsafe(32),
    )
    _write_registration(server, registration)

    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def matrix_user(synapse: SynapseWithAppservice) -> AsyncIterator[MatrixUserFactory]:
    """Make syncing users with unique localparts (`alice` becomes `alice-7`); stop them after."""
    users: list[MatrixUser] = []

    async def make(localpart: str) -> MatrixUser:
        user = await MatrixUser.create(synapse, f"{localpart}-{next(_user_numbers)}")
        users.append(user)
        return user

    yield make
    for user in users:
        await user.stop()


# endregion
