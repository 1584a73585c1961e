"""Starting the whole demo (Synapse, accounts, Backline, experts) and stopping all of it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from mautrix.types import RoomID, UserID

from ..app import Backline
from ..config import Config
from ..db import connection
from ..db import groups as groups_db
from .accounts import DEMO_GROUPS, DemoAccount, demo_accounts, expert_localparts
from .datadir import DemoError, prepare_data_dir, registration_path, write_config_and_registration
from .experts import DemoExperts
from .synapse import SynapseServer

log = logging.getLogger("backline.demo")

DEFAULT_SYNAPSE_PORT = 8008
DEFAULT_APPSERVICE_PORT = 29333
_READY_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """Where the demo keeps its files, which ports it takes, and whether experts are simulated."""

    data_dir: Path
    synapse_port: int = DEFAULT_SYNAPSE_PORT
    appservice_port: int = DEFAULT_APPSERVICE_PORT
    simulate_experts: bool = False
    server_name: str = "localhost"


@dataclass
class RunningDemo:
    """Everything the demo started; `stop()` ends all of it."""

    options: DemoOptions
    config: Config
    accounts: tuple[DemoAccount, ...]
    synapse: SynapseServer
    backline: Backline
    experts: DemoExperts
    _stack: contextlib.AsyncExitStack

    @property
    def appservice_url(self) -> str:
        """Where Backline listens (the appservice API and /health)."""
        return self.config.appservice.address

    async def stop(self) -> None:
        """Stop experts, Backline and Synapse, newest first; each stops even if another fails."""
        await self._stack.aclose()


async def start_demo(options: DemoOptions) -> RunningDemo:
    """Check the ports, write the files, and start everything; on failure stop what started."""
    check_ports_free(options)
    prepare_data_dir(options.data_dir)
    config = write_config_and_registration(
        options.data_dir, options.server_name, options.synapse_port, options.appservice_port
    )
    accounts = demo_accounts()

    # Each part registers its stop as it starts; leaving the block early stops them, newest first.
    async with contextlib.AsyncExitStack() as stack:
        synapse = _synapse(options)
        stack.push_async_callback(synapse.stop)
        await synapse.start()
        tokens = await _register_accounts(synapse, accounts)

        backline = Backline(config)
        stack.push_async_callback(backline.stop)
        await backline.start()
        await _wait_until_ready(backline)

        experts = DemoExperts(synapse.url, {e: tokens[e] for e in _expert_ids(options)})
        stack.push_async_callback(experts.stop)
        await experts.join_rosters(await _rosters_of_experts(backline, options.server_name))
        if options.simulate_experts:
            experts.keep_online()

        log.info("Demo ready", extra={"simulate_experts": options.simulate_experts})
        demo = RunningDemo(options, config, accounts, synapse, backline, experts, stack.pop_all())
    return demo


def check_ports_free(options: DemoOptions) -> None:
    """Fail plainly if Synapse's or Backline's port is taken, before anything is written."""
    if options.synapse_port == options.appservice_port:
        raise DemoError(
            f"Synapse and Backline cannot share port {options.synapse_port}",
            "pass different --port and --appservice-port",
        )
    _check_port_free(options.synapse_port, "Synapse", "--port")
    _check_port_free(options.appservice_port, "Backline", "--appservice-port")


def _check_port_free(port: int, who: str, option: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As Synapse and aiohttp do, so a port left in TIME_WAIT by an earlier run counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as e:
            raise DemoError(
                f"port {port} on 127.0.0.1 is taken ({e.strerror}), so {who} cannot listen there",
                f"stop what listens there (an earlier demo?), or pass another {option}",
            ) from e


def _synapse(options: DemoOptions) -> SynapseServer:
    url = f"http://127.0.0.1:{options.synapse_port}"
    return SynapseServer(
        # Absolute: Synapse runs inside its directory and would re-resolve a relative path.
        data_dir=(options.data_dir / "synapse").resolve(),
        port=options.synapse_port,
        server_name=options.server_name,
        registration_files=[registration_path(options.data_dir).resolve()],
        # Synapse would otherwise tell clients https://<server_name>/, which does not exist.
        extra_config={"public_baseurl": f"{url}/"},
    )


async def _wait_until_ready(backline: Backline) -> None:
    """Wait until Backline has registered its users and made the roster rooms."""
    try:
        async with asyncio.timeout(_READY_TIMEOUT):
            await backline.ready.wait()
    except TimeoutError:
        raise DemoError(
            f"Backline was not ready after {_READY_TIMEOUT:.0f} s", "see its log above"
        ) from None


async def _register_accounts(
    synapse: SynapseServer, accounts: tuple[DemoAccount, ...]
) -> dict[UserID, str]:
    """Create every demo user; return their access tokens."""
    results = await asyncio.gather(
        *(
            synapse.register_user(a.localpart, a.password, displayname=a.displayname)
            for a in accounts
        )
    )
    return dict(results)


def _expert_ids(options: DemoOptions) -> list[UserID]:
    return [UserID(f"@{name}:{options.server_name}") for name in expert_localparts()]


async def _rosters_of_experts(backline: Backline, server_name: str) -> dict[UserID, list[RoomID]]:
    """Each expert's roster rooms, as Backline made them while starting."""
    db = backline.db
    if db is None:
        raise DemoError("Backline has no database open; it was not started")
    rosters: dict[UserID, list[RoomID]] = {}
    async with connection(db) as conn:
        for group in DEMO_GROUPS:
            room_id = await groups_db.roster_room(conn, group.id)
            if room_id is None:
                raise DemoError(f"Backline made no roster room for the group {group.id}")
            for member in group.members:
                user_id = UserID(f"@{member}:{server_name}")
                rosters.setdefault(user_id, []).append(RoomID(room_id))
    return rosters
