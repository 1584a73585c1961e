"""Backline's users on the homeserver: the directory bot and one user per group."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import ClientSession, ClientTimeout
from mautrix.api import Method, Path
from mautrix.appservice import AppServiceAPI, IntentAPI
from mautrix.appservice.state_store import ASStateStore
from mautrix.client.api.events import EventMethods
from mautrix.client.state_store import MemoryStateStore
from mautrix.errors import MatrixConnectionError, MatrixRequestError, MForbidden, MNotFound
from mautrix.types import EventType, MessageType, RoomID, TextMessageEventContent, UserID

from ..config import Config

log = logging.getLogger("backline.matrix")


class _StateStore(MemoryStateStore, ASStateStore):
    """In-memory membership cache; Backline's own tables hold what must survive a restart."""

    def __init__(self) -> None:
        MemoryStateStore.__init__(self)
        ASStateStore.__init__(self)


class MatrixClient:
    """Hands out intents for Backline's users and keeps their profiles in line with the config."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.session = ClientSession(timeout=ClientTimeout(total=30))
        # mautrix logs every request body at DEBUG, and bodies carry the conversations.
        api_log = logging.getLogger("backline.matrix.api")
        api_log.setLevel(logging.INFO)
        self.api = AppServiceAPI(
            base_url=config.homeserver.address,
            bot_mxid=config.bot_mxid,
            token=config.appservice.as_token,
            log=api_log,  # type: ignore[arg-type]
            state_store=_StateStore(),
            client_session=self.session,
            default_retry_count=2,
        )
        self.bot = self.api.bot_intent()

    def intent(self, user_id: str) -> IntentAPI:
        """The intent of the bot or of a group user."""
        if user_id == self.config.bot_mxid:
            bot: IntentAPI = self.bot
            return bot
        intent: IntentAPI = self.bot.user(UserID(user_id))
        return intent

    def group_intent(self, group_id: str) -> IntentAPI:
        """The intent of a group's virtual user."""
        return self.intent(self.config.group_mxid(group_id))

    async def register_users(self) -> None:
        """Register the bot and every group user, and set their display names."""
        users = [(self.bot, self.config.appservice.bot_displayname)]
        users += [(self.group_intent(g.id), g.displayname) for g in self.config.groups]
        await asyncio.gather(*(self._register(intent, name) for intent, name in users))

    async def _register(self, intent: IntentAPI, displayname: str) -> None:
        await intent.ensure_registered()
        try:
            await intent.set_displayname(displayname, check_current=True)
        except MatrixRequestError as e:
            log.warning("Could not set display name of %s: %s", intent.mxid, e)

    async def read_presence(self, group_id: str, user_id: str) -> tuple[str, str | None] | None:
        """Ask the homeserver for a user's presence; None when it will not tell.

        Synapse answers only for users sharing a joined room with the asker, which is what
        the group's roster room is for.
        """
        try:
            content = await self.group_intent(group_id).get_presence(UserID(user_id))
        except (MForbidden, MNotFound):
            return None
        return str(content.presence.value), content.status_msg

    async def send_notice(self, user_id: str, room_id: str, text: str, txn_id: str) -> None:
        """Post a notice as one of Backline's users; `txn_id` makes a retry post it once.

        mautrix's intent reads a room's power levels and create event before the first message
        it sends there: two round trips per new room, on the way to every expert's offer.
        Backline posts only where its users may, so it sends directly; a refusal still comes
        back as an error.
        """
        content = TextMessageEventContent(msgtype=MessageType.NOTICE, body=text)
        await EventMethods.send_message_event(
            self.intent(user_id), RoomID(room_id), EventType.ROOM_MESSAGE, content, txn_id=txn_id
        )

    async def user_exists(self, user_id: str) -> bool:
        """Whether a user of this homeserver exists; users of other servers are assumed to.

        The display name lookup answers 404 for an unknown local user. Any other failure says
        nothing about the user, so it counts as existing and routing goes ahead.
        """
        if not user_id.endswith(f":{self.config.homeserver.domain}"):
            return True
        try:
            # Asked directly: mautrix's own lookup turns the 404 into "no display name".
            await self.bot.api.request(Method.GET, Path.v3.profile[user_id].displayname)
        except MNotFound:
            return False
        except (MatrixRequestError, MatrixConnectionError) as e:
            log.warning("Could not look up %s: %s", user_id, e)
        return True

    async def ping(self) -> bool:
        """Ask the homeserver to ping us, which also makes it retry held-back transactions."""
        try:
            await self.bot.appservice_ping(self.config.appservice.id)
        except (MatrixRequestError, MatrixConnectionError) as e:
            log.warning("Homeserver ping failed: %s", e)
            return False
        return True

    async def homeserver_reachable(self) -> bool:
        """Whether the homeserver answers its versions endpoint."""
        try:
            await self.api.request(Method.GET, Path.versions, retry_count=0)
        except (MatrixRequestError, MatrixConnectionError, OSError):
            return False
        return True

    async def close(self) -> None:
        """Release the HTTP session."""
        await self.session.close()
