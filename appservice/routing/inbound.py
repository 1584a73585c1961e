"""Decisions on incoming events, taken inside the transaction that stores them.

Nothing here calls the homeserver: every call it needs goes into the outbox, which commits
with the decision and runs after it. So a crash never leaves a decision without its calls.
"""

from __future__ import annotations

import logging
from typing import Any

from mautrix.util.async_db import Connection

from ..archive.describe import media_of
from ..config import Config, GroupConfig
from ..db import dm_rooms, events, offers, outbox, sessions
from ..db import groups as groups_db
from ..db import presence as presence_db
from ..db.decisions import record_decision
from ..db.sessions import Session
from ..matrix.events import PresenceUpdate, RoomEvent, room_event
from ..permissions import askable_groups, can_search_archive, may_ask, role_for
from . import moves, texts
from .availability import available_experts, group_members, situation_of
from .candidates import skip_reason
from .opening import open_session, session_lane
from .preferences import parse_request

log = logging.getLogger("backline.routing")


def room_lane(room_id: str) -> str:
    """Outbox lane of a DM room."""
    return f"room:{room_id}"


class Inbound:
    """Turns stored events into session state changes and outbox actions."""

    def __init__(self, config: Config) -> None:
        self.config = config

    async def handle_batch(
        self, conn: Connection, fresh: list[dict[str, Any]], known_rooms: set[str]
    ) -> int:
        """Act on a transaction's newly stored events, in order; returns how many it acted on.

        Messages only matter in session and DM rooms (`known_rooms`, looked up with the
        store), so a busy homeserver's other traffic costs nothing here.
        """
        known = set(known_rooms)
        acted = 0
        for raw in fresh:
            if raw["type"] == "m.room.message" and raw["room_id"] not in known:
                continue
            event = room_event(raw)
            await self.handle(conn, event, raw)
            acted += 1
            if event.type == "m.room.member":
                # An invite in this batch may just have made the room a DM.
                known.add(event.room_id)
        return acted

    async def handle(self, conn: Connection, event: RoomEvent, raw: dict[str, Any]) -> None:
        """Act on one newly stored event."""
        if self.config.archive.media == "store" and (file := media_of(raw)):
            await outbox.enqueue(conn, "media", "fetch_media", mxc=file["mxc"])
        if self.config.is_own_user(event.sender):
            return
        if event.type == "m.room.member":
            await self._on_member(conn, event)
        elif event.type == "m.room.message":
            await self._on_message(conn, event)

    async def notice(
        self, conn: Connection, lane: str, room_id: str, sender: str, text: str
    ) -> None:
        """Queue a notice from one of Backline's users."""
        await outbox.enqueue(conn, lane, "notice", room_id=room_id, user_id=sender, text=text)

    # Memberships

    async def _on_member(self, conn: Connection, event: RoomEvent) -> None:
        target = event.state_key or ""
        if event.membership == "invite" and self.config.is_own_user(target):
            await self._on_invite(conn, event, target)
            return
        session = await sessions.session_by_room(conn, event.room_id)
        if session is not None:
            await self._on_session_member(conn, session, event, target)
            return
        roster_of = await groups_db.group_of_roster(conn, event.room_id)
        if roster_of is not None:
            await self._on_roster_member(conn, roster_of, event)

    async def _on_invite(self, conn: Connection, event: RoomEvent, invitee: str) -> None:
        group = self.config.group_for_mxid(invitee)
        if group is None:
            allowed, group_id, name = role_for(event.sender, self.config) != "none", "", "Backline"
        else:
            allowed, group_id, name = (
                may_ask(event.sender, group, self.config),
                group.id,
                group.displayname,
            )

        lane = room_lane(event.room_id)
        if allowed:
            await dm_rooms.upsert_dm(conn, event.room_id, group_id, event.sender, "joining")
            await outbox.enqueue(conn, lane, "join_dm", room_id=event.room_id, user_id=invitee)
            text = texts.greeting(group) if group else self._bot_help(event.sender)
            await self.notice(conn, lane, event.room_id, invitee, text)
            log.info("Accepting DM", extra={"room_id": event.room_id, "group": group_id})
        else:
            await dm_rooms.upsert_dm(conn, event.room_id, group_id, event.sender, "refused")
            reason = texts.refused(name)
            await outbox.enqueue(
                conn, lane, "refuse_dm", room_id=event.room_id, user_id=invitee, reason=reason
            )
            log.info("Refusing DM", extra={"user_id": event.sender, "group": group_id})

    async def _on_session_member(
        self, conn: Connection, session: Session, event: RoomEvent, expert: str
    ) -> None:
        offer = await offers.get_offer(conn, session.id, expert)
        if offer is None:
            return
        if event.membership == "join":
            await moves.accept(conn, self.config, session, expert)
        elif event.membership == "leave" and event.sender == expert:
            await moves.end_offer(
                conn, self.config, session, offer, "declined", "declined the invite"
            )

    async def _on_roster_member(self, conn: Connection, group_id: str, event: RoomEvent) -> None:
        """Who joins a group's roster room is one of its experts; who leaves it is not."""
        user = event.state_key or ""
        if self.config.is_own_user(user) or event.membership not in ("join", "leave", "ban"):
            return
        membership = "join" if event.membership == "join" else "leave"
        await groups_db.set_roster_membership(conn, group_id, user, membership)
        log.info("Roster change", extra={"group": group_id, "user_id": user, "now": membership})
        if membership == "join":
            # Sharing a room makes the expert's presence readable, and it may never change
            # while they stay online, so read it now rather than wait for an update.
            await outbox.enqueue(
                conn, f"roster:{group_id}", "read_presence", group_id=group_id, user_id=user
            )

    def group_user(self, session: Session) -> str:
        return self.config.group_mxid(session.group_id)

    # Messages

    async def _on_message(self, conn: Connection, event: RoomEvent) -> None:
        session = await sessions.session_by_room(conn, event.room_id)
        if session is not None:
            await self._on_session_message(conn, session, event)
            return
        for dm in await dm_rooms.dms_in_room(conn, event.room_id):
            if dm.state not in ("joining", "joined"):
                continue
            group = self.config.group(dm.group_id) if dm.group_id else None
            await self._on_dm_message(conn, event, group)

    async def _on_dm_message(
        self, conn: Connection, event: RoomEvent, group: GroupConfig | None
    ) -> None:
        speaker = self.config.group_mxid(group.id) if group else self.config.bot_mxid
        lane = room_lane(event.room_id)
        text = event.body.strip()
        command = text.split(maxsplit=1)[0].lower() if text.startswith("!") else ""

        if command == "!groups":
            await self.notice(
                conn, lane, event.room_id, speaker, await self._groups_text(conn, event.sender)
            )
        elif command == "!search" and group is None:
            await self._search(conn, event, text[len(command) :])
        elif command == "!ask" and group is None:
            await self._ask(conn, event, text[len(command) :])
        elif command == "!cancel":
            await self._cancel_from_dm(conn, event, group, speaker)
        elif command or group is None:
            help_text = texts.greeting(group) if group else self._bot_help(event.sender)
            await self.notice(conn, lane, event.room_id, speaker, help_text)
        elif not may_ask(event.sender, group, self.config):
            await self.notice(conn, lane, event.room_id, speaker, texts.refused(group.displayname))
        elif text:
            await self.open_request(conn, event, group)

    def _bot_help(self, user_id: str) -> str:
        return texts.bot_help(may_search=can_search_archive(role_for(user_id, self.config)))

    async def _search(self, conn: Connection, event: RoomEvent, query: str) -> None:
        """`!search` in the bot DM: compliance officers and admins only.

        The search itself runs as an outbox action, which first checks that nobody else is in
        the room: the answer quotes the archive, and the room's other members may not see it.
        """
        lane = room_lane(event.room_id)
        if not can_search_archive(role_for(event.sender, self.config)):
            bot = self.config.bot_mxid
            await self.notice(conn, lane, event.room_id, bot, texts.search_refused())
            return
        await outbox.enqueue(
            conn,
            lane,
            "search_reply",
            room_id=event.room_id,
            requester=event.sender,
            query=query.strip(),
        )

    async def _groups_text(self, conn: Connection, user_id: str) -> str:
        lines = []
        for group in askable_groups(user_id, self.config):
            choice = await available_experts(conn, self.config, group, agent=user_id)
            lines.append((group, self.config.group_mxid(group.id), len(choice.offer)))
        return texts.groups_list(lines)

    async def open_request(
        self,
        conn: Connection,
        event: RoomEvent,
        group: GroupConfig,
        *,
        text: str | None = None,
        speaker: str | None = None,
    ) -> None:
        """Start a session from an agent's DM message, unless one is open already.

        `text` and `speaker` differ from the message and the group user for `!ask`.
        """
        speaker = speaker or self.config.group_mxid(group.id)
        lane = room_lane(event.room_id)
        existing = await sessions.open_session_of(conn, event.sender, group.id)
        if existing is not None:
            # The follow-up belongs to the open session's record, so the archive finds it there.
            await events.link_event(conn, event.event_id, existing.id)
            await self.notice(
                conn,
                lane,
                event.room_id,
                speaker,
                texts.already_open(group, existing.room_reference(self.config.homeserver.domain)),
            )
            return
        request = parse_request(event.body if text is None else text, event.mentioned_users)
        if not request.question:
            await self.notice(conn, lane, event.room_id, speaker, texts.empty_question())
            return

        session_id = await open_session(
            conn,
            self.config,
            group,
            event.sender,
            request,
            dm_room_id=event.room_id,
            request_event_id=event.event_id,
            dm_user=speaker,
        )
        await events.link_event(conn, event.event_id, session_id)

    async def _on_session_message(
        self, conn: Connection, session: Session, event: RoomEvent
    ) -> None:
        command = event.body.strip().lower()
        lane = session_lane(session.id)
        speaker = self.group_user(session)
        if command == "!help":
            await self.notice(conn, lane, event.room_id, speaker, texts.SESSION_HELP)
        elif command == "!close":
            await self._close(conn, session, event.sender)
        elif command == "!cancel":
            await self._cancel(conn, session, event.sender, event.room_id, speaker)

    async def _close(self, conn: Connection, session: Session, by: str) -> None:
        lane = session_lane(session.id)
        speaker = self.group_user(session)
        claimers = [
            o.expert
            for o in await offers.session_offers(conn, session.id)
            if o.state == "accepted"
        ]
        if by != session.agent and by not in claimers:
            await self.notice(
                conn, lane, session.room_id or "", speaker, texts.not_allowed_to_close()
            )
            return
        if not session.is_open:
            return

        if session.state == "claimed":
            await sessions.close_session(conn, session.id, by)
            await record_decision(conn, session.id, f"closed by {by}", {"closed_by": by})
            await self.notice(conn, lane, session.room_id or "", speaker, texts.closed(by))
            log.info("Session closed", extra={"session": session.id})
        else:
            await moves.cancel(conn, self.config, session, by)

    async def _cancel(
        self, conn: Connection, session: Session, by: str, room_id: str, speaker: str
    ) -> None:
        """`!cancel` from the agent: withdraw a request nobody has taken yet."""
        lane = session_lane(session.id)
        if by != session.agent:
            await self.notice(conn, lane, room_id, speaker, texts.not_allowed_to_close())
        elif session.state == "claimed":
            await self.notice(conn, lane, room_id, speaker, texts.cannot_cancel_claimed())
        elif session.is_routable:
            await moves.cancel(conn, self.config, session, by)

    async def _cancel_from_dm(
        self, conn: Connection, event: RoomEvent, group: GroupConfig | None, speaker: str
    ) -> None:
        """`!cancel` in a DM: the agent's untaken requests (to this group; all in the bot DM)."""

        def theirs(session: Session) -> bool:
            return session.agent == event.sender and (
                group is None or session.group_id == group.id
            )

        cancelled = False
        for session in await sessions.sessions_in_states(conn, sessions.ROUTABLE_STATES):
            if theirs(session):
                cancelled |= await moves.cancel(conn, self.config, session, event.sender)
        if not cancelled:
            # A request an expert has taken ends with !close in its room, not here.
            taken = any(map(theirs, await sessions.sessions_in_states(conn, ("claimed",))))
            answer = texts.cannot_cancel_claimed() if taken else texts.nothing_to_cancel()
            await self.notice(conn, room_lane(event.room_id), event.room_id, speaker, answer)

    async def _ask(self, conn: Connection, event: RoomEvent, rest: str) -> None:
        """`!ask GROUP question` in the bot DM: as if the agent messaged the group's user."""
        lane, bot = room_lane(event.room_id), self.config.bot_mxid
        name, _, question = rest.strip().partition(" ")
        if not name or not question.strip():
            await self.notice(conn, lane, event.room_id, bot, texts.ask_usage())
            return
        group = self._group_named(name)
        if group is None or not may_ask(event.sender, group, self.config):
            await self.notice(conn, lane, event.room_id, bot, texts.unknown_group(name))
            return
        await self.open_request(conn, event, group, text=question, speaker=bot)

    def _group_named(self, name: str) -> GroupConfig | None:
        """A group by its id, its user ID or its display name (any case)."""
        folded = name.casefold()
        return self.config.group_for_mxid(name) or next(
            (
                g
                for g in self.config.groups
                if folded in (g.id.casefold(), g.displayname.casefold())
            ),
            None,
        )

    # Presence

    async def on_presence(self, conn: Connection, update: PresenceUpdate) -> None:
        """Store a presence change; an expert who can now be interrupted gets waiting requests."""
        user = update.user_id
        await presence_db.save_presence(conn, user, update.presence, update.status_msg)
        members: dict[str, list[str]] = {}
        for session in await sessions.sessions_in_states(conn, sessions.ROUTABLE_STATES):
            group = self.config.group(session.asked_group)
            if group is None:
                continue
            if group.id not in members:
                members[group.id] = await group_members(conn, self.config, group)
            if user not in members[group.id] or await offers.get_offer(conn, session.id, user):
                continue
            situation = await situation_of(conn, self.config, [user])
            if skip_reason(user, group, situation) is None:
                await outbox.enqueue(
                    conn, session_lane(session.id), "route", session_id=session.id
                )
