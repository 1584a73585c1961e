"""What the benchmarks share: fresh databases, a Synapse with Backline behind it, tables."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from appservice.config import Config, config_from_dict
from appservice.demo.synapse import SynapseServer, free_port
from appservice.registration import registration_dict
from tests.databases import ENGINES, fresh_database

__all__ = ["ENGINES", "fresh_database"]


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (0.95 for p95)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


async def timed(run: Callable[[], Awaitable[int]], runs: int) -> tuple[list[float], int]:
    """Milliseconds per run, after one warm-up run; and what the warm-up run returned."""
    found = await run()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await run()
        samples.append((time.perf_counter() - started) * 1000)
    return samples, found


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Columns aligned on the widest cell, numbers right-aligned."""
    cells = [[str(c) for c in header], *([_cell(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for number, row in enumerate(cells):
        print(
            "  ".join(
                cell.rjust(width) if _is_number(cell) else cell.ljust(width)
                for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )
        if number == 0:
            print("  ".join("-" * width for width in widths))
    sys.stdout.flush()


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _is_number(cell: str) -> bool:
    return cell.replace(",", "").replace(".", "").replace("x", "").isdigit()


@dataclass
class Stack:
    """A throwaway Synapse, and Backline running as its own process, registered to it."""

    synapse: SynapseServer
    config: Config
    work: Path

    @property
    def backline_url(self) -> str:
        return f"http://127.0.0.1:{self.config.appservice.port}"


def stack_config(
    database_url: str, synapse_port: int, backline_port: int, roles: dict[str, str]
) -> dict[str, Any]:
    """Backline's config for a benchmark: loopback only, one empty group, quiet logs."""
    return {
        "homeserver": {"address": f"http://127.0.0.1:{synapse_port}", "domain": "localhost"},
        "appservice": {
            "address": f"http://127.0.0.1:{backline_port}",
            "hostname": "127.0.0.1",
            "port": backline_port,
            "as_token": secrets.token_urlsafe(32),
            "hs_token": secrets.token_urlsafe(32),
        },
        "database": {"url": database_url},
        "permissions": {"*": "none", "localhost": "agent", **roles},
        "experts": {},
        "groups": [{"id": "bench", "displayname": "Bench", "members": []}],
        "logging": {"level": "WARNING"},
    }


@asynccontextmanager
async def synapse_and_backline(
    database_url: str,
    roles: dict[str, str] | None = None,
    *,
    config: dict[str, Any] | None = None,
    synapse_config: dict[str, Any] | None = None,
    before_backline: Callable[[SynapseServer], Awaitable[None]] | None = None,
    incoming: HttpTap | None = None,
    outgoing: HttpTap | None = None,
) -> AsyncIterator[Stack]:
    """Start Synapse and `backline` on `database_url`, both on 127.0.0.1; stop both after.

    `roles` adds entries to `permissions`, e.g. a compliance officer for the archive API.
    `config` replaces top-level sections of Backline's config (groups, experts, logging, ...),
    `synapse_config` top-level keys of homeserver.yaml. `before_backline` runs once Synapse is
    up, before Backline starts: e.g. to register the experts Backline will invite.
    `incoming` goes between Synapse and Backline (transactions), `outgoing` between Backline
    and Synapse (every call Backline makes); each costs a loopback hop per request.

    Backline runs in a process of its own, as in production, so the benchmark's own work
    never shares its event loop.
    """
    with tempfile.TemporaryDirectory(prefix="backline-bench-") as name:
        work = Path(name)
        synapse_port, backline_port = _two_ports()
        data = stack_config(database_url, synapse_port, backline_port, roles or {})
        data.update(config or {})
        async with contextlib.AsyncExitStack() as taps:
            if incoming is not None:
                await incoming.start(data["appservice"]["address"])
                taps.push_async_callback(incoming.stop)
                data["appservice"]["address"] = incoming.url
            if outgoing is not None:
                await outgoing.start(data["homeserver"]["address"])
                taps.push_async_callback(outgoing.stop)
                data["homeserver"]["address"] = outgoing.url
            stack_settings = config_from_dict(data)
            (work / "config.yaml").write_text(json.dumps(data))
            (work / "registration.yaml").write_text(json.dumps(registration_dict(stack_settings)))

            synapse = SynapseServer(
                data_dir=work / "synapse",
                port=synapse_port,
                registration_files=[work / "registration.yaml"],
                extra_config=synapse_config or {},
            )
            await synapse.start()
            try:
                if before_backline is not None:
                    await before_backline(synapse)
                async with _backline_process(work, stack_settings):
                    yield Stack(synapse, stack_settings, work)
            finally:
                await synapse.stop()


def _two_ports() -> tuple[int, int]:
    first, second = free_port(), free_port()
    while second == first:
        second = free_port()
    return first, second


@asynccontextmanager
async def _backline_process(work: Path, config: Config) -> AsyncIterator[None]:
    log_path = work / "backline.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "appservice", "-c", "config.yaml", "-r", "registration.yaml"),
            cwd=work,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await _wait_until_healthy(f"http://127.0.0.1:{config.appservice.port}/health", process)
            yield
        except BaseException:
            print(log_path.read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                async with asyncio.timeout(30):
                    await process.wait()


async def _wait_until_healthy(url: str, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(60), aiohttp.ClientSession() as session:
        while process.returncode is None:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"backline exited with code {process.returncode}")


@dataclass
class TapCall:
    """One request that went through an `HttpTap`; times are wall-clock seconds."""

    method: str
    path: str
    started: float
    body: bytes = b""
    ended: float = 0.0
    status: int = 0


@dataclass
class HttpTap:
    """A forwarding proxy on 127.0.0.1 that notes when each request came and went.

    Wall-clock times, so they compare with the homeserver's `origin_server_ts` on this host.
    """

    calls: list[TapCall] = field(default_factory=list)
    port: int = 0
    _target: str = ""
    _runner: web.AppRunner | None = None
    _http: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, target: str) -> None:
        """Listen on a free port and forward everything to `target` (a base URL)."""
        self._target = target.rstrip("/")
        # No connection limit: the tap must not queue what the caller sends at once.
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=None)
        self._http = aiohttp.ClientSession(connector=connector, timeout=timeout)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None, "the tap is not started"
        call = TapCall(request.method, request.path_qs, time.time())
        call.body = await request.read()
        self.calls.append(call)
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED_HEADERS}
        try:
            async with self._http.request(
                request.method, self._target + request.path_qs, data=call.body, headers=headers
            ) as answer:
                body = await answer.read()
                call.status = answer.status
                content_type = answer.headers.get("Content-Type", "application/json")
        except aiohttp.ClientError as e:
            call.status, body, content_type = 502, str(e).encode(), "text/plain"
        call.ended = time.time()
        return web.Response(status=call.status, body=body, headers={"Content-Type": content_type})


_FORWARDED_HEADERS = {"authorization", "content-type", "accept"}
