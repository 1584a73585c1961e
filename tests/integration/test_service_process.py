"""`backline -c config.yaml -r registration.yaml` as an operator runs it: a real process."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.integration.conftest import service_config, start_service
from tests.integration.matrix_user import SynapseWithAppservice

pytestmark = pytest.mark.integration


async def test_the_service_starts_answers_health_and_stops_on_sigterm(
    synapse: SynapseWithAppservice, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    database_url = f"sqlite:{tmp_path / 'backline.db'}"
    groups = [{"id": "process", "members": []}]
    config.write_text(json.dumps(service_config(synapse, database_url, groups)))
    process = await start_service(config, stderr=asyncio.subprocess.PIPE)

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
