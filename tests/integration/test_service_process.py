"""`backline -c config.yaml -r registration.yaml` as an operator runs it: a real process."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.integration.matrix_user import SynapseWithAppservice

pytestmark = pytest.mark.integration


async def test_the_service_starts_answers_health_and_stops_on_sigterm(
    synapse: SynapseWithAppservice, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "homeserver": {"address": synapse.url, "domain": synapse.server_name},
                "appservice": {
                    "address": synapse.appservice_url,
                    "hostname": "127.0.0.1",
                    "port": synapse.appservice_port,
                    "as_token": synapse.as_token,
                    "hs_token": synapse.hs_token,
                },
                "database": {"url": f"sqlite:{tmp_path / 'backline.db'}"},
                "permissions": {"*": "agent"},
                "experts": {},
                "groups": [{"id": "process", "members": []}],
            }
        )
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appservice",
        "-c",
        str(config),
        "-r",
        str(tmp_path / "registration.yaml"),
        stderr=asyncio.subprocess.PIPE,
    )

    status = None
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            try:
                async with http.get(f"{synapse.appservice_url}/health") as response:
                    status = response.status
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)

    assert status == 200, stderr.decode()
    assert process.returncode == 0, stderr.decode()
    assert "Backline stopped" in stderr.decode()
