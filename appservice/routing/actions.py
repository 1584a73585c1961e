"""The homeserver calls behind each outbox action."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from mautrix.errors import MRoomInUse
from mautrix.types import ContentURI, EventType, RoomAlias, RoomCreatePreset, RoomID, UserID
from mautrix.util.async_db import Database

from ..archive.chat import search_reply
from ..archive.media import store_media_file
from ..config import Config, GroupConfig
from ..db import connection, dm_rooms, events, outbox, sessions, transaction
from ..db.outbox import Action
from ..db.sessions import ROUTABLE_STATES, Session
from ..matrix.client import MatrixClient
from . import texts
from .availability import group_members
from .opening import session_lane
from .router import Router

log = logging.getLogger("backline.routing")

# Only the group user may change these in a session room: in particular nobody else can
# enable encryption, which would hide the conversation from the archive.
SESSION_ROOM_POWER = {
    "events": {
        "m.room.encryption": 100,
        "m.room.power_levels": 100,
        "m.room.history_visibility": 100,
        "m.room.join_rules": 100,
        "m.room.tombstone": 100,
        "m.room.server_acl": 100,
    },
    "invite": 100,
    "kick": 100,
    "ban": 100,
    "redact": 50,
    "state_default": 50,
    "events_default": 0,
    "users_default": 0,
}


class Actions:
    """Carries out outbox actions against the homeserver."""

    def __init__(
        self,
        config: Config,
        db: Database,
        matrix: MatrixClient,
        state_lock: asyncio.Lock,
        router: Router,
    ) -> None:
        self.config = config
        self.db = db
        self.matrix = matrix
        self.state_lock = state_lock
        self.router = router
        self._handlers: dict[str, Callable[[Action], Awaitable[None]]] = {
            "notice": self._notice,
            "join_dm": self._join_dm,
            "refuse_dm": self._refuse_dm,
            "kick": self._kick,
            "open_session": self._open_session,
            "route": self._route_action,
            "read_presence": self._read_presence_action,
            "fetch_media": self._fetch_media,
            "search_reply": self._search_reply,
        }

    async def execute(self, action: Action) -> None:
        """Run one action; raises on failure so the outbox can retry or give up."""
        handler = self._handlers.get(action.kind)
        if handler is None:
            log.error("Unknown outbox action %s", action.kind)
            return
        await handler(action)

    async def _notice(self, action: Action) -> None:
        payload = action.payload
        await self.matrix.send_notice(
            payload["user_id"], payload["room_id"], payload["text"], f"backline-{action.id}"
        )

    async def _join_dm(self, action: Action) -> None:
        room_id, user_id = action.payload["room_id"], action.payload["user_id"]
        await self.matrix.intent(user_id).join_room_by_id(RoomID(room_id))
        group = self.config.group_for_mxid(user_id)
        async with connection(self.db) as conn:
            await dm_rooms.set_dm_state(conn, room_id, group.id if group else "", "joined")

    async def _refuse_dm(self, action: Action) -> None:
        payload = action.payload
        intent = self.matrix.intent(payload["user_id"])
        await intent.leave_room(RoomID(payload["room_id"]), reason=payload["reason"])

    async def _kick(self, action: Action) -> None:
        payload = action.payload
        intent = self.matrix.intent(payload["user_id"])
        await intent.kick_user(
            RoomID(payload["room_id"]), UserID(payload["target"]), reason=payload["reason"]
        )
        log.info(
            "Offer withdrawn",
            extra={"room_id": payload["room_id"], "expert": payload["target"]},
        )

    # Opening a session

    async def _load(self, session_id: int) -> Session | None:
        async with connection(self.db) as conn:
            return await sessions.get_session(conn, session_id)

    async def _open_session(self, action: Action) -> None:
        session = await self._load(action.payload["session_id"])
        if session is None or not session.is_open:
            return
        group = self.config.group(session.group_id)
        if group is None:
            log.warning(
                "Group %s of session %s is gone from the config", session.group_id, session.id
            )
            return

        if session.room_id is None:
            room_id = await self._create_room(session, group)
            async with self.state_lock, transaction(self.db) as conn:
                await sessions.set_room(conn, session.id, room_id)
                await events.attach_room_to_session(conn, room_id, session.id)
            session.room_id = room_id

        # The question and the offers go out side by side: neither waits for the other, and
        # both are safe to repeat if this action runs again after a failure.
        question = self.matrix.send_notice(
            self.config.group_mxid(group.id),
            session.room_id,
            texts.question_posted(session.agent, session.question),
            f"backline-question-{session.id}",
        )
        await asyncio.gather(question, self.router.route(session.id))

    async def _create_room(self, session: Session, group: GroupConfig) -> str:
        """Make the session room, or find the one a crashed earlier attempt made."""
        intent = self.matrix.group_intent(group.id)
        alias_localpart = (
            session.room_alias or f"{self.config.appservice.session_alias_prefix}{session.id}"
        )
        title = session.question if len(session.question) <= 60 else session.question[:57] + "..."
        try:
            room_id = await intent.create_room(
                alias_localpart=alias_localpart,
                preset=RoomCreatePreset.PRIVATE,
                name=f"{group.displayname}: {title}",
                topic=f"Session {session.id} for {session.agent}. Send !close to end it.",
                invitees=[UserID(session.agent)],
                initial_state=[
                    {
                        "type": str(EventType.ROOM_HISTORY_VISIBILITY),
                        "state_key": "",
                        "content": {"history_visibility": "shared"},
                    }
                ],
                power_level_override=SESSION_ROOM_POWER,
            )
        except MRoomInUse:
            alias = RoomAlias(f"#{alias_localpart}:{self.config.homeserver.domain}")
            room_id = (await intent.resolve_room_alias(alias)).room_id
        await intent.state_store.joined(room_id, intent.mxid)
        log.info("Session room ready", extra={"session": session.id, "room_id": room_id})
        return str(room_id)

    # Routing

    async def _route_action(self, action: Action) -> None:
        await self.router.route(action.payload["session_id"])

    async def _search_reply(self, action: Action) -> None:
        """Answer `!search`, unless someone besides the asker and the bot is in the room."""
        room_id, requester = RoomID(action.payload["room_id"]), action.payload["requester"]
        members = await self.matrix.bot.get_joined_members(room_id)
        if set(members) - {self.matrix.bot.mxid, requester}:
            text = texts.search_not_private()
        else:
            async with transaction(self.db) as conn:
                text = await search_reply(conn, requester, action.payload["query"])
        await self.matrix.send_notice(self.matrix.bot.mxid, room_id, text, f"backline-{action.id}")

    async def _fetch_media(self, action: Action) -> None:
        """Keep a copy of a file sent in a session, named by its SHA-256, beside the archive."""
        mxc = action.payload["mxc"]
        data = await self.matrix.bot.download_media(ContentURI(mxc))
        digest = await asyncio.to_thread(store_media_file, self.config.archive.media_path, data)
        async with transaction(self.db) as conn:
            await events.media_stored(conn, mxc, digest, len(data))

    async def _read_presence_action(self, action: Action) -> None:
        """A member joined the roster: read their presence, then re-route the group's requests."""
        group = self.config.group(action.payload["group_id"])
        if group is None:
            return
        await self.router.read_presence(group, [action.payload["user_id"]])
        async with self.state_lock, transaction(self.db) as conn:
            for session in await sessions.sessions_in_states(conn, ROUTABLE_STATES):
                if session.asked_group == group.id:
                    await outbox.enqueue(
                        conn, session_lane(session.id), "route", session_id=session.id
                    )

    async def refresh_presence(self, group: GroupConfig) -> None:
        """Read every member's presence afresh: ephemeral updates missed while Backline was down
        or failing are never sent again."""
        async with connection(self.db) as conn:
            members = await group_members(conn, self.config, group)
        await self.router.read_presence(group, members)

    async def route_open_requests(self) -> None:
        """Queue a routing pass for every request nobody has taken yet."""
        async with self.state_lock, transaction(self.db) as conn:
            for session in await sessions.sessions_in_states(conn, ROUTABLE_STATES):
                await outbox.enqueue(
                    conn, session_lane(session.id), "route", session_id=session.id
                )
