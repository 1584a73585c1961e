"""A throwaway Synapse on SQLite, for `make demo` and the integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
from mautrix.types import UserID

log = logging.getLogger("backline.demo.synapse")

# Every limiter Synapse 1.163 reads (synapse/config/ratelimiting.py), raised out of the way:
# the defaults (e.g. rc_invites.per_user 0.003/s, burst 5) break tests and demos alike.
_NO_LIMIT = {"per_second": 1000, "burst_count": 1000}
_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _NO_LIMIT,
    "rc_registration": _NO_LIMIT,
    "rc_registration_token_validity": _NO_LIMIT,
    "rc_login": {"address": _NO_LIMIT, "account": _NO_LIMIT, "failed_attempts": _NO_LIMIT},
    "rc_admin_redaction": _NO_LIMIT,
    "rc_joins": {"local": _NO_LIMIT, "remote": _NO_LIMIT},
    "rc_joins_per_room": _NO_LIMIT,
    "rc_key_requests": _NO_LIMIT,
    "rc_3pid_validation": _NO_LIMIT,
    "rc_invites": {"per_room": _NO_LIMIT, "per_user": _NO_LIMIT, "per_issuer": _NO_LIMIT},
    "rc_third_party_invite": _NO_LIMIT,
    "rc_media_create": _NO_LIMIT,
    "rc_presence": {"per_user": _NO_LIMIT},
    "rc_delayed_event_mgmt": _NO_LIMIT,
    "rc_room_creation": _NO_LIMIT,
    "rc_reports": _NO_LIMIT,
    "rc_user_directory": _NO_LIMIT,
    "rc_profile": _NO_LIMIT,
}

_STOP_GRACE = 10.0
_LOG_TAIL_LINES = 40


class SynapseError(RuntimeError):
    """Synapse did not start, or refused an admin request."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class SynapseServer:
    """One Synapse process with its config, database, keys and log in `data_dir`.

    `extra_config` replaces top-level keys of the generated homeserver.yaml, e.g. to lengthen
    `presence.sync_online_timeout`.
    """

    data_dir: Path
    port: int
    server_name: str = "localhost"
    registration_files: list[Path] = field(default_factory=list)
    registration_secret: str = field(default_factory=_secret)
    extra_config: dict[str, Any] = field(default_factory=dict)
    _process: asyncio.subprocess.Process | None = field(default=None, init=False, repr=False)
    _log_file: IO[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # Synapse runs with data_dir as its working directory: relative paths would resolve twice.
        self.data_dir = self.data_dir.resolve()

    @property
    def url(self) -> str:
        """Base URL of the client-server API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where Synapse's own log and its stdout/stderr go."""
        return self.data_dir / "synapse.log"

    def write_config(self) -> Path:
        """Write homeserver.yaml and its log config into `data_dir`; return the config path."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_config = self.data_dir / "log_config.yaml"
        config_path = self.data_dir / "homeserver.yaml"

        # JSON is YAML, so no YAML writer is needed.
        log_config.write_text(json.dumps(self._log_config(), indent=2))
        config_path.write_text(json.dumps(self._config(log_config), indent=2))
        return config_path

    def _config(self, log_config: Path) -> dict[str, Any]:
        return {
            "server_name": self.server_name,
            "pid_file": str(self.data_dir / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {
                "name": "sqlite3",
                "args": {"database": str(self.data_dir / "homeserver.db")},
            },
            "log_config": str(log_config),
            "media_store_path": str(self.data_dir / "media_store"),
            "signing_key_path": str(self.data_dir / "signing.key"),
            "macaroon_secret_key": _secret(),
            "form_secret": _secret(),
            "registration_shared_secret": self.registration_secret,
            "enable_registration": False,
            # Each password hash costs ~0.25 s at the default 12 rounds; these are throwaway users.
            "bcrypt_rounds": 4,
            "report_stats": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_domain_whitelist": [],
            "presence": {"enabled": True},
            # Busy presence (MSC3026) is off by default; Backline must respect it.
            "experimental_features": {"msc3026_enabled": True},
            "app_service_config_files": [str(path) for path in self.registration_files],
            **_RATE_LIMITS,
            **self.extra_config,
        }

    def _log_config(self) -> dict[str, Any]:
        return {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "precise": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"},
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": str(self.log_path),
                    "mode": "a",
                },
            },
            "root": {"level": "WARNING", "handlers": ["file"]},
        }

    async def start(self, timeout: float = 60) -> None:  # noqa: ASYNC109 - error has the log
        """Start Synapse and return once its client API answers."""
        if self._process is not None:
            raise SynapseError("Synapse is already running")
        config_path = self.write_config()
        started = time.monotonic()

        # Its own session (process group), so stop() reaches any child it spawns.
        self._log_file = self.log_path.open("ab")
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "synapse.app.homeserver", "-c", str(config_path)),
            cwd=self.data_dir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )

        try:
            await asyncio.wait_for(self._wait_until_ready(), timeout)
        except (TimeoutError, SynapseError) as e:
            await self.stop()
            raise SynapseError(f"Synapse did not start: {e}\n{self.log_tail()}") from e
        log.info("Synapse ready at %s after %.2f s", self.url, time.monotonic() - started)

    async def _wait_until_ready(self) -> None:
        versions = f"{self.url}/_matrix/client/versions"
        async with aiohttp.ClientSession() as session:
            while True:
                if self._process is None or self._process.returncode is not None:
                    code = self._process.returncode if self._process else None
                    raise SynapseError(f"the process exited with code {code}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(versions) as response:
                        if response.status == 200:
                            return
                # Nothing to wait on but the socket itself: poll it.
                await asyncio.sleep(0.05)

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of synapse.log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no synapse.log)"
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self) -> None:
        """Stop Synapse: SIGTERM its process group, SIGKILL it if it lingers."""
        process, self._process = self._process, None
        if process is not None:
            await _terminate(process)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    async def __aenter__(self) -> SynapseServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def register_user(
        self,
        localpart: str,
        password: str,
        *,
        admin: bool = False,
        displayname: str | None = None,
    ) -> tuple[UserID, str]:
        """Create a user with the shared secret; log in instead if it exists already.

        Returns the user ID and an access token.
        """
        async with aiohttp.ClientSession(base_url=self.url) as session:
            body = await self._registration_body(session, localpart, password, admin)
            if displayname is not None:
                body["displayname"] = displayname

            async with session.post("/_synapse/admin/v1/register", json=body) as response:
                answer = await response.json()
            if response.status == 200:
                return UserID(answer["user_id"]), answer["access_token"]
            if answer.get("errcode") == "M_USER_IN_USE":
                return await self._log_in(session, localpart, password)
            raise SynapseError(f"registering {localpart} failed: {response.status} {answer}")

    async def _registration_body(
        self, session: aiohttp.ClientSession, localpart: str, password: str, admin: bool
    ) -> dict[str, Any]:
        # https://element-hq.github.io/synapse/latest/admin_api/register_api.html
        async with session.get("/_synapse/admin/v1/register") as response:
            nonce = (await response.json())["nonce"]
        mac = hmac.new(self.registration_secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce, localpart, password):
            mac.update(part.encode() + b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        return {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }

    async def _log_in(
        self, session: aiohttp.ClientSession, localpart: str, password: str
    ) -> tuple[UserID, str]:
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": password,
        }
        async with session.post("/_matrix/client/v3/login", json=body) as response:
            answer = await response.json()
        if response.status != 200:
            raise SynapseError(f"logging in {localpart} failed: {response.status} {answer}")
        return UserID(answer["user_id"]), answer["access_token"]


async def _terminate(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), _STOP_GRACE)
    except TimeoutError:
        log.warning("Synapse ignored SIGTERM for %.0f s, killing it", _STOP_GRACE)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
