"""The homeserver calls behind each outbox action, and routing itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from mautrix.errors import MatrixRequestError, MRoomInUse
from mautrix.types import ContentURI, EventType, RoomAlias, RoomCreatePreset, RoomID, UserID
from mautrix.util.async_db import Database

from ..archive.chat import search_reply
from ..archive.media import store_media_file
from ..config import Config, GroupConfig
from ..db import connection, dm_rooms, events, offers, sessions, transaction
from ..db import presence as presence_module
from ..db.decisions import record_decision
from ..db.outbox import Action
from ..db.sessions import Session
from ..matrix.client import MatrixClient
from . import texts
from .availability import available_experts

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
        self, config: Config, db: Database, matrix: MatrixClient, state_lock: asyncio.Lock
    ) -> None:
        self.config = config
        self.db = db
        self.matrix = matrix
        self.state_lock = state_lock
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
        intent = self.matrix.intent(payload["user_id"])
        await intent.send_notice(
            RoomID(payload["room_id"]),
            payload["text"],
            txn_id=f"backline-{action.id}",
            ensure_joined=False,
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

        await self.matrix.group_intent(group.id).send_notice(
            RoomID(session.room_id),
            texts.question_posted(session.agent, session.question),
            txn_id=f"backline-question-{session.id}",
            ensure_joined=False,
        )
        await self.route(session.id, first=True)

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
        await self.route(action.payload["session_id"])

    async def route(self, session_id: int, first: bool = False) -> None:
        """Offer a session to every interruptible member not offered yet (broadcast)."""
        session = await self._load(session_id)
        if session is None or not session.is_routable or session.room_id is None:
            return
        group = self.config.group(session.group_id)
        if group is None:
            return
        await self.refresh_unknown_presence(group)

        async with self.state_lock, transaction(self.db) as conn:
            session = await sessions.get_session(conn, session_id)
            if session is None or not session.is_routable:
                return
            existing = await offers.session_offers(conn, session_id)
            choice = await available_experts(
                conn,
                self.config,
                group,
                already_offered={o.expert for o in existing},
                agent=session.agent,
            )
            for expert in choice.offer:
                await offers.add_offer(conn, session_id, expert)
            if choice.offer:
                # Offering from the moment the offers exist, before any invite can arrive.
                await sessions.set_state(
                    conn, session_id, "offering", only_from=("opening", "waiting")
                )
            unsent = [o.expert for o in existing if o.state == "pending"]
            live = [o.expert for o in existing if o.state in offers.LIVE_STATES]
            summary = f"offered to {len(choice.offer)}, skipped {len(choice.skipped)}"
            await record_decision(
                conn,
                session_id,
                summary,
                {"offered": list(choice.offer), "skipped": choice.skipped},
            )
        log.info(
            "Routing decision: %s",
            summary,
            extra={"session": session_id, "offered": choice.offer, "skipped": choice.skipped},
        )

        await self._send_offers(session, group, [*unsent, *choice.offer])
        await self._settle(session, group, first=first, offered=len(choice.offer) + len(live))

    async def _send_offers(self, session: Session, group: GroupConfig, experts: list[str]) -> None:
        """Invite experts at once; an invite the homeserver refuses ends that offer as failed."""
        intent = self.matrix.group_intent(group.id)
        reason = texts.invite_reason(group, session.agent, session.question)
        results = await asyncio.gather(
            *(
                intent.invite_user(RoomID(session.room_id or ""), UserID(e), reason=reason)
                for e in experts
            ),
            return_exceptions=True,
        )
        async with self.state_lock, transaction(self.db) as conn:
            for expert, result in zip(experts, results, strict=True):
                if isinstance(result, MatrixRequestError):
                    log.warning(
                        "Invite of %s failed: %s", expert, result, extra={"session": session.id}
                    )
                    await offers.end_offer(conn, session.id, expert, "failed", str(result))
                elif isinstance(result, BaseException):
                    raise result
                else:
                    await offers.mark_invited(conn, session.id, expert)

    async def _settle(
        self, session: Session, group: GroupConfig, *, first: bool, offered: int
    ) -> None:
        """Move the session to offering or waiting, and tell the agent which."""
        async with self.state_lock, transaction(self.db) as conn:
            live = [
                o
                for o in await offers.session_offers(conn, session.id)
                if o.state in offers.LIVE_STATES
            ]
            if live:
                await sessions.set_state(
                    conn, session.id, "offering", only_from=("opening", "waiting")
                )
                waiting = False
            else:
                waiting = await sessions.set_state(
                    conn, session.id, "waiting", only_from=("opening", "offering")
                )
        room = session.room_reference(self.config.homeserver.domain)
        if not session.dm_room_id:
            return
        if waiting:
            text = texts.waiting(group, room)
        elif first and live:
            text = texts.offered(len(live), group, room)
        else:
            return
        await self.matrix.group_intent(group.id).send_notice(
            RoomID(session.dm_room_id),
            text,
            txn_id=f"backline-settle-{session.id}-{'wait' if waiting else 'offer'}-{offered}",
            ensure_joined=False,
        )

    async def _search_reply(self, action: Action) -> None:
        """Answer `!search`, unless someone besides the asker and the bot is in the room."""
        room_id, requester = RoomID(action.payload["room_id"]), action.payload["requester"]
        members = await self.matrix.bot.get_joined_members(room_id)
        if set(members) - {self.matrix.bot.mxid, requester}:
            text = texts.search_not_private()
        else:
            async with transaction(self.db) as conn:
                text = await search_reply(conn, requester, action.payload["query"])
        await self.matrix.bot.send_notice(
            room_id, text, txn_id=f"backline-{action.id}", ensure_joined=False
        )

    async def _fetch_media(self, action: Action) -> None:
        """Keep a copy of a file sent in a session, named by its SHA-256, beside the archive."""
        mxc = action.payload["mxc"]
        data = await self.matrix.bot.download_media(ContentURI(mxc))
        digest = await asyncio.to_thread(store_media_file, self.config.archive.media_path, data)
        async with transaction(self.db) as conn:
            await events.media_stored(conn, mxc, digest, len(data))

    async def _read_presence_action(self, action: Action) -> None:
        group = self.config.group(action.payload["group_id"])
        if group is not None:
            await self.read_presence(group, [action.payload["user_id"]])

    async def refresh_unknown_presence(self, group: GroupConfig) -> None:
        """Read presence from the homeserver for members Backline has heard nothing of."""
        async with connection(self.db) as conn:
            known = await presence_module.presence_of(conn, list(group.members))
        unknown = [m for m in group.members if m not in known]
        if unknown:
            await self.read_presence(group, unknown)

    async def read_presence(self, group: GroupConfig, users: Sequence[str]) -> None:
        """Ask the homeserver for these users' presence and store the answers."""
        answers = await asyncio.gather(
            *(self.matrix.read_presence(group.id, user) for user in users), return_exceptions=True
        )
        async with self.state_lock, transaction(self.db) as conn:
            for user, answer in zip(users, answers, strict=True):
                if isinstance(answer, tuple):
                    await presence_module.save_presence(conn, user, answer[0], answer[1])
                elif isinstance(answer, BaseException):
                    log.warning("Could not read presence of %s: %s", user, answer)
