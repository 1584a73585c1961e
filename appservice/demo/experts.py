"""The demo's experts as Matrix clients: they join their roster rooms, and can be kept online."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from mautrix.client import Client
from mautrix.errors import MatrixConnectionError, MatrixRequestError
from mautrix.types import PresenceState, RoomID, SyncToken, UserID

from ..tasks import TaskSet

log = logging.getLogger("backline.demo.experts")

# Long-poll length of each sync; a syncing user counts as online for its whole duration.
_SYNC_TIMEOUT_MS = 30_000
_RETRY_DELAY = 5.0


class DemoExperts:
    """One client per expert, signed in with the expert's own access token."""

    def __init__(self, homeserver_url: str, tokens: Mapping[UserID, str]) -> None:
        self.clients = {
            user_id: Client(mxid=user_id, base_url=homeserver_url, token=token)
            for user_id, token in tokens.items()
        }
        self._syncing = TaskSet()

    async def join_rosters(self, rosters: Mapping[UserID, Sequence[RoomID]]) -> None:
        """Join each expert to the roster rooms of their groups, as they would once by hand.

        Presence reaches Backline only for users sharing a joined room with one of its users.
        """
        joins = [
            self.clients[expert].join_room_by_id(room_id)
            for expert, rooms in rosters.items()
            for room_id in rooms
        ]
        await asyncio.gather(*joins)

    def keep_online(self) -> None:
        """Sync every expert continuously, so the homeserver shows them online."""
        for user_id, client in self.clients.items():
            self._syncing.spawn(_sync_forever(client), f"demo sync {user_id}")

    async def stop(self) -> None:
        """Stop syncing and close every client's HTTP session."""
        await self._syncing.cancel_all()
        for client in self.clients.values():
            await client.api.session.close()


async def _sync_forever(client: Client) -> None:
    """Keep a /sync long-poll open as online; what it returns is of no interest here."""
    since: SyncToken | None = None
    while True:
        try:
            answer = await client.sync(
                since=since, timeout=_SYNC_TIMEOUT_MS, set_presence=PresenceState.ONLINE
            )
        except (MatrixConnectionError, MatrixRequestError) as e:
            log.warning("Sync of %s failed, retrying: %s", client.mxid, e)
            await asyncio.sleep(_RETRY_DELAY)
            continue
        since = SyncToken(answer["next_batch"])
