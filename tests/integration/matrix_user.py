"""A real Matrix client, acting as an agent or an expert against the test Synapse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from mautrix.api import Method, Path
from mautrix.client import Client
from mautrix.errors import MForbidden, MNotFound
from mautrix.types import (
    EventID,
    EventType,
    PresenceState,
    RoomCreatePreset,
    RoomID,
    SyncToken,
    UserID,
)

from appservice.demo.synapse import SynapseServer

log = logging.getLogger("backline.tests.matrix_user")

T = TypeVar("T")

# Long-poll length; stop() cancels the request, so this only bounds an idle loop.
_SYNC_TIMEOUT_MS = 5_000
_FIRST_SYNC_TIMEOUT = 10.0
PASSWORD = "correct horse battery"
# The only values /sync accepts for set_presence; busy is kept by Synapse across syncs.
_SYNC_PRESENCE = {"online", "offline", "unavailable"}


@dataclass
class SynapseWithAppservice(SynapseServer):
    """The test Synapse, plus the registration Backline's tests run under."""

    appservice_port: int = 0
    as_token: str = ""
    hs_token: str = ""

    @property
    def appservice_url(self) -> str:
        """Where Synapse expects Backline to listen."""
        return f"http://127.0.0.1:{self.appservice_port}"


@dataclass(frozen=True)
class InviteInfo:
    """An invite as the invitee sees it in /sync."""

    room_id: RoomID
    sender: UserID
    reason: str | None
    room_name: str | None


@dataclass(frozen=True)
class MembershipInfo:
    """An m.room.member event seen in a joined (or just left) room."""

    room_id: RoomID
    user_id: UserID
    membership: str
    sender: UserID
    reason: str | None
    event_id: EventID


@dataclass(frozen=True)
class ReceivedMessage:
    """An m.room.message event seen in a joined room."""

    room_id: RoomID
    sender: UserID
    body: str
    event_id: EventID


@dataclass(frozen=True)
class PresenceInfo:
    """GET /presence/{userId}/status, as another user sees it."""

    presence: str
    status_msg: str | None
    currently_active: bool | None


@dataclass
class _Seen:
    """What the sync loop has received so far, with what waiters have already taken."""

    invites: list[InviteInfo] = field(default_factory=list)
    invites_taken: set[int] = field(default_factory=set)
    messages: list[ReceivedMessage] = field(default_factory=list)
    messages_taken: set[EventID] = field(default_factory=set)
    memberships: list[MembershipInfo] = field(default_factory=list)
    event_ids: set[EventID] = field(default_factory=set)


class MatrixUser:
    """A registered user with a running sync loop, and helpers to wait for what it sees.

    Invites and messages are consumed by the wait that returns them, so two waits return two
    different ones; memberships are facts and can be awaited any number of times.
    """

    def __init__(self, user_id: UserID, client: Client, password: str) -> None:
        self.user_id = user_id
        self.client = client
        self.password = password
        self._presence = "online"
        self._seen = _Seen()
        self._changed = asyncio.Condition()
        self._first_sync = asyncio.Event()
        self._sync_error: BaseException | None = None
        self._sync_task: asyncio.Task[None] | None = None

    @classmethod
    async def create(
        cls, synapse: SynapseServer, localpart: str, password: str = PASSWORD
    ) -> MatrixUser:
        """Register the user, and return once its first sync (as online) has completed."""
        user_id, token = await synapse.register_user(localpart, password)
        client = Client(mxid=user_id, base_url=synapse.url, token=token)
        user = cls(user_id, client, password)

        user._sync_task = asyncio.create_task(user._sync_forever(), name=f"sync {user_id}")
        try:
            async with asyncio.timeout(_FIRST_SYNC_TIMEOUT):
                await user._first_sync.wait()
        except TimeoutError:
            await user.stop()
            raise TimeoutError(
                f"{user_id}: no first sync within {_FIRST_SYNC_TIMEOUT} s"
            ) from None
        user._raise_if_sync_failed("the first sync")
        return user

    async def stop(self) -> None:
        """Stop syncing and close the HTTP session."""
        task, self._sync_task = self._sync_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.api.session.close()

    # region actions

    async def set_presence(self, presence: str, status_msg: str | None = None) -> None:
        """Set presence, and keep the sync loop from flipping it back to online."""
        self._presence = presence
        content: dict[str, Any] = {"presence": presence}
        if status_msg is not None:
            content["status_msg"] = status_msg
        await self.client.api.request(Method.PUT, Path.v3.presence[self.user_id].status, content)

    async def get_presence(self, user_id: UserID) -> PresenceInfo:
        """Another user's presence; Synapse answers 403 unless we share a room."""
        answer = await self.client.api.request(Method.GET, Path.v3.presence[user_id].status)
        return PresenceInfo(
            presence=answer["presence"],
            status_msg=answer.get("status_msg"),
            currently_active=answer.get("currently_active"),
        )

    async def create_dm(self, other: UserID) -> RoomID:
        """Create a private direct chat and invite `other`."""
        return await self.client.create_room(
            preset=RoomCreatePreset.PRIVATE, is_direct=True, invitees=[other]
        )

    async def open_dm(self, other: UserID) -> RoomID:
        """Create a direct chat with `other` and wait until they have joined it."""
        room_id = await self.create_dm(other)
        await self.wait_for_membership(room_id, other, "join")
        return room_id

    async def send_text(self, room_id: RoomID, text: str) -> EventID:
        """Send a plain m.text message."""
        return await self.client.send_text(room_id, text)

    async def join(self, room_id: RoomID) -> None:
        """Join a room, e.g. accept an invite."""
        await self.client.join_room_by_id(room_id)

    async def reject_invite(self, room_id: RoomID, reason: str | None = None) -> None:
        """Reject an invite (leave while invited)."""
        await self.client.leave_room(room_id, reason=reason, raise_not_in_room=True)

    async def membership_of(self, room_id: RoomID, user_id: UserID | None = None) -> str | None:
        """Current membership of `user_id` (default: us) in the room's state, if we may read it."""
        state_key = user_id or self.user_id
        try:
            content = await self.client.get_state_event(room_id, EventType.ROOM_MEMBER, state_key)
        except (MForbidden, MNotFound):
            return None
        return str(content["membership"])

    # endregion
    # region waiting

    def invites_seen(self) -> list[InviteInfo]:
        """Every invite received so far, consumed or not."""
        return list(self._seen.invites)

    def messages_seen(self, room_id: RoomID | None = None) -> list[ReceivedMessage]:
        """Every message received so far (in one room, if given), consumed or not."""
        return [m for m in self._seen.messages if room_id is None or m.room_id == room_id]

    async def wait_for_invite(
        self,
        *,
        timeout: float = 10,  # noqa: ASYNC109 - the timeout error says what was awaited
        predicate: Callable[[InviteInfo], bool] | None = None,
    ) -> InviteInfo:
        """The first invite not yet returned by an earlier wait that matches `predicate`."""

        def find() -> InviteInfo | None:
            for index, invite in enumerate(self._seen.invites):
                if index in self._seen.invites_taken:
                    continue
                if predicate is None or predicate(invite):
                    self._seen.invites_taken.add(index)
                    return invite
            return None

        return await self._wait("an invite", find, self.invites_seen, timeout)

    async def wait_for_message(
        self,
        room_id: RoomID,
        *,
        timeout: float = 10,  # noqa: ASYNC109 - the timeout error says what was awaited
        predicate: Callable[[str, UserID], bool] | None = None,
    ) -> tuple[UserID, str]:
        """Sender and body of the first message in the room not yet returned that matches."""

        def find() -> tuple[UserID, str] | None:
            for message in self.messages_seen(room_id):
                if message.event_id in self._seen.messages_taken:
                    continue
                if predicate is None or predicate(message.body, message.sender):
                    self._seen.messages_taken.add(message.event_id)
                    return message.sender, message.body
            return None

        def seen() -> list[tuple[UserID, str]]:
            return [(m.sender, m.body) for m in self.messages_seen(room_id)]

        return await self._wait(f"a message in {room_id}", find, seen, timeout)

    async def wait_for_membership(
        self,
        room_id: RoomID,
        user_id: UserID,
        membership: str,
        *,
        timeout: float = 10,  # noqa: ASYNC109 - the timeout error says what was awaited
    ) -> MembershipInfo:
        """The first m.room.member event that gave `user_id` that membership in the room."""

        def find() -> MembershipInfo | None:
            for event in self._seen.memberships:
                matches = (event.room_id, event.user_id, event.membership)
                if matches == (room_id, user_id, membership):
                    return event
            return None

        def seen() -> list[tuple[UserID, str]]:
            return [
                (m.user_id, m.membership) for m in self._seen.memberships if m.room_id == room_id
            ]

        what = f"{user_id} to be {membership} in {room_id}"
        return await self._wait(what, find, seen, timeout)

    async def _wait(
        self,
        what: str,
        find: Callable[[], T | None],
        seen: Callable[[], object],
        timeout: float,  # noqa: ASYNC109 - the timeout error says what was awaited
    ) -> T:
        try:
            async with asyncio.timeout(timeout), self._changed:
                while (found := find()) is None:
                    self._raise_if_sync_failed(what)
                    await self._changed.wait()
                return found
        except TimeoutError:
            message = f"{self.user_id} waited {timeout} s for {what}; saw {seen()!r}"
            raise TimeoutError(message) from None

    def _raise_if_sync_failed(self, what: str) -> None:
        if self._sync_error is not None:
            message = f"{self.user_id}: sync failed while waiting for {what}"
            raise RuntimeError(message) from self._sync_error

    # endregion
    # region sync

    async def _sync_forever(self) -> None:
        since: SyncToken | None = None
        try:
            while True:
                data = await self.client.sync(
                    since=since,
                    timeout=_SYNC_TIMEOUT_MS,
                    set_presence=self._sync_presence(),
                )
                self._record(data)
                since = SyncToken(data["next_batch"])

                async with self._changed:
                    self._first_sync.set()
                    self._changed.notify_all()
        except Exception as e:
            # Waiters re-raise this instead of running into their timeouts.
            log.exception("Sync of %s failed", self.user_id)
            self._sync_error = e
            self._first_sync.set()
            async with self._changed:
                self._changed.notify_all()

    def _sync_presence(self) -> PresenceState:
        # Synapse refuses other values here, and does not let a sync override busy.
        if self._presence in _SYNC_PRESENCE:
            return PresenceState(self._presence)
        return PresenceState.ONLINE

    def _record(self, data: dict[str, Any]) -> None:
        rooms = data.get("rooms", {})
        for room_id, room in rooms.get("invite", {}).items():
            self._record_invite(RoomID(room_id), room.get("invite_state", {}).get("events", []))
        for section in ("join", "leave"):
            for room_id, room in rooms.get(section, {}).items():
                state = room.get("state", {}).get("events", [])
                timeline = room.get("timeline", {}).get("events", [])
                for event in [*state, *timeline]:
                    self._record_event(RoomID(room_id), event)

    def _record_invite(self, room_id: RoomID, stripped_state: list[dict[str, Any]]) -> None:
        invite: dict[str, Any] | None = None
        room_name: str | None = None
        for event in stripped_state:
            if event["type"] == "m.room.member" and event.get("state_key") == self.user_id:
                invite = event
            elif event["type"] == "m.room.name":
                room_name = event.get("content", {}).get("name")
        if invite is None:
            log.warning("Invite to %s without our member event", room_id)
            return

        self._seen.invites.append(
            InviteInfo(
                room_id=room_id,
                sender=UserID(invite["sender"]),
                reason=invite.get("content", {}).get("reason"),
                room_name=room_name,
            )
        )

    def _record_event(self, room_id: RoomID, event: dict[str, Any]) -> None:
        event_id = EventID(event["event_id"])
        if event_id in self._seen.event_ids:
            return
        self._seen.event_ids.add(event_id)

        content = event.get("content", {})
        sender = UserID(event["sender"])
        if event["type"] == "m.room.message" and isinstance(content.get("body"), str):
            message = ReceivedMessage(room_id, sender, content["body"], event_id)
            self._seen.messages.append(message)
        elif event["type"] == "m.room.member" and "membership" in content:
            membership = MembershipInfo(
                room_id=room_id,
                user_id=UserID(event["state_key"]),
                membership=content["membership"],
                sender=sender,
                reason=content.get("reason"),
                event_id=event_id,
            )
            self._seen.memberships.append(membership)

    # endregion


class MatrixUserFactory(Protocol):
    """The `matrix_user` fixture: `await matrix_user("alice")` gives a fresh syncing user."""

    async def __call__(self, localpart: str) -> MatrixUser: ...
