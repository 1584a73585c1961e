"""What the archive keeps of a real session: edits, redactions, reactions, files, and proof."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest
from mautrix.types import EventType, RoomID

from appservice.archive.access import read_access_log
from appservice.archive.holds import place_hold
from appservice.archive.media import media_file
from appservice.archive.transcript import Transcript, load_transcript
from appservice.archive.verify import verify_archive
from appservice.db import connection, open_database, transaction
from appservice.db.events import store_events
from tests.integration.conftest import (
    BacklineFactory,
    RunningBackline,
    join_roster,
    unique_group_id,
)
from tests.integration.matrix_user import MatrixUser, MatrixUserFactory
from tests.integration.test_session_flow import ask, session_of
from tests.store.archive_data import message

pytestmark = pytest.mark.integration


async def claimed_session(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, tmp_path: Path
) -> tuple[RunningBackline, MatrixUser, MatrixUser, RoomID]:
    agent, expert = await asyncio.gather(matrix_user("agent"), matrix_user("expert"))
    group = unique_group_id("archive")
    backline = await start_backline(
        [{"id": group, "members": [expert.user_id]}],
        extra={"archive": {"media": "store", "media_path": str(tmp_path / "media")}},
    )
    await join_roster(expert, backline, group)
    await ask(agent, backline, group, "Please check the contract")
    room = (await agent.wait_for_invite()).room_id
    await expert.wait_for_invite(predicate=lambda i: i.room_id == room)
    await agent.join(room)
    await expert.join(room)
    await agent.wait_for_message(room, predicate=lambda body, _: "will help you" in body)
    return backline, agent, expert, room


async def transcript_when(backline: RunningBackline, room: RoomID, ready: object) -> Transcript:
    """The session's transcript once `ready(transcript)` holds (events arrive asynchronously)."""
    session = await session_of(backline, room)
    for _ in range(100):
        async with connection(backline.db) as conn:
            transcript = await load_transcript(conn, session.id)
        assert transcript is not None
        if ready(transcript):  # type: ignore[operator]
            return transcript
        await asyncio.sleep(0.1)
    raise AssertionError(f"transcript never got there: {[e.body for e in transcript.entries]}")


async def test_edits_redactions_and_reactions_are_kept_and_marked(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, tmp_path: Path
) -> None:
    backline, agent, expert, room = await claimed_session(start_backline, matrix_user, tmp_path)
    original = await expert.send_text(room, "The fee is 10 EUR")
    await expert.client.send_message_event(
        room,
        EventType.ROOM_MESSAGE,
        {
            "msgtype": "m.text",
            "body": "* The fee is 12 EUR",
            "m.new_content": {"msgtype": "m.text", "body": "The fee is 12 EUR"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original},
        },
    )
    secret = await agent.send_text(room, "Customer card 4111 1111 1111 1111")
    await agent.client.redact(room, secret, reason="card number")
    await agent.client.react(room, original, "👍")

    transcript = await transcript_when(
        backline,
        room,
        lambda t: (
            any(e.redacted for e in t.entries)
            and any(e.reactions for e in t.entries)
            and any(e.edited for e in t.entries)
        ),
    )

    fee = next(e for e in transcript.entries if e.event_id == original)
    assert fee.body == "The fee is 12 EUR"
    assert [v["body"] for v in fee.versions] == ["The fee is 10 EUR", "The fee is 12 EUR"]
    assert fee.reactions == {"👍": [agent.user_id]}
    card = next(e for e in transcript.entries if e.event_id == secret)
    assert card.redacted and card.redacted_by is not None
    assert card.body == "Customer card 4111 1111 1111 1111"
    assert card.redaction_reason == "card number"
    kinds = {(e["type"], e["edit_of"] is not None) for e in transcript.events}
    assert ("m.room.message", True) in kinds and ("m.room.redaction", False) in kinds
    async with connection(backline.db) as conn:
        assert (await verify_archive(conn)).ok


async def test_files_are_described_and_stored_when_configured(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, tmp_path: Path
) -> None:
    backline, _, expert, room = await claimed_session(start_backline, matrix_user, tmp_path)
    data = b"%PDF-1.4 refund form\n" * 100
    mxc = await expert.client.upload_media(data, mime_type="application/pdf", filename="form.pdf")
    await expert.client.send_message_event(
        room,
        EventType.ROOM_MESSAGE,
        {
            "msgtype": "m.file",
            "body": "form.pdf",
            "url": mxc,
            "info": {"mimetype": "application/pdf", "size": len(data)},
        },
    )

    transcript = await transcript_when(
        backline,
        room,
        lambda t: any(e.media and e.media["sha256"] for e in t.entries),
    )

    entry = next(e for e in transcript.entries if e.media)
    digest = hashlib.sha256(data).hexdigest()
    assert entry.media == {
        "mxc": mxc,
        "filename": "form.pdf",
        "content_type": "application/pdf",
        "size": len(data),
        "sha256": digest,
    }
    assert media_file(tmp_path / "media", digest).read_bytes() == data


async def short_retention(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory, name: str
) -> tuple[RunningBackline, MatrixUser, str]:
    """A Backline that purges what ended two seconds ago, an agent, and a group whose one
    expert is in its roster."""
    agent, expert = await asyncio.gather(matrix_user("agent"), matrix_user("expert"))
    group = unique_group_id(name)
    backline = await start_backline(
        [{"id": group, "members": [expert.user_id]}],
        extra={"archive": {"retention": "2s", "purge_interval": "1s"}},
    )
    await join_roster(expert, backline, group)
    return backline, agent, group


async def cancel(agent: MatrixUser, room: RoomID) -> None:
    """The agent cancels the request in its session room, and is told so."""
    await agent.send_text(room, "!close")
    await agent.wait_for_message(room, predicate=lambda body, _: "cancelled this request" in body)


async def test_the_retention_job_purges_a_closed_session_and_logs_it(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    backline, agent, group = await short_retention(start_backline, matrix_user, "retention")
    await ask(agent, backline, group, "Short-lived question")
    room = (await agent.wait_for_invite()).room_id
    await agent.join(room)
    session = await session_of(backline, room)

    await cancel(agent, room)

    for _ in range(100):
        async with connection(backline.db) as conn:
            if await load_transcript(conn, session.id) is None:
                break
        await asyncio.sleep(0.1)
    async with connection(backline.db) as conn:
        assert await load_transcript(conn, session.id) is None
        purges = [e for e in await read_access_log(conn) if e.action == "purge"]
        assert (await verify_archive(conn)).ok
    assert purges and purges[0].actor == "retention"
    assert session.id in purges[0].details["sessions"]


async def test_retention_takes_an_expired_request_out_of_the_dm_after_a_held_one(
    start_backline: BacklineFactory, matrix_user: MatrixUserFactory
) -> None:
    backline, agent, group = await short_retention(start_backline, matrix_user, "dmretention")

    async def ask_and_cancel(dm: RoomID, question: str, earlier: set[RoomID]) -> int:
        await agent.send_text(dm, question)
        invite = await agent.wait_for_invite(predicate=lambda i: i.room_id not in earlier)
        await agent.join(invite.room_id)
        session = await session_of(backline, invite.room_id)
        if not earlier:
            async with transaction(backline.db) as conn:
                await place_hold(conn, "session", str(session.id), "dispute", "@carol:localhost")
        await cancel(agent, invite.room_id)
        earlier.add(invite.room_id)
        return session.id

    dm = await agent.open_dm(backline.group_user(group))
    rooms: set[RoomID] = set()
    held = await ask_and_cancel(dm, "Held question", rooms)
    passing = await ask_and_cancel(dm, "Passing question", rooms)

    async def dm_bodies() -> list[str]:
        async with connection(backline.db) as conn:
            rows = await conn.fetch(
                "SELECT event_json FROM room_event WHERE room_id = $1 ORDER BY chain_index", dm
            )
        return [json.loads(row["event_json"])["content"].get("body", "") for row in rows]

    for _ in range(100):
        if "Passing question" not in await dm_bodies():
            break
        await asyncio.sleep(0.1)
    async with connection(backline.db) as conn:
        assert await load_transcript(conn, passing) is None
        assert await load_transcript(conn, held) is not None
        assert (await verify_archive(conn)).ok
    bodies = await dm_bodies()
    assert "Held question" in bodies and "Passing question" not in bodies


async def test_texts_left_queued_for_the_index_by_a_crash_are_searchable_after_the_next_start(
    start_backline: BacklineFactory, database_url: str
) -> None:
    db = await open_database(database_url)
    async with transaction(db) as conn:
        queued = message("!crashed:localhost", "@alice:localhost", "quarantined ledger", 1)
        await store_events(conn, [queued], index_now=False)
    await db.stop()

    backline = await start_backline([{"id": unique_group_id("sweep"), "members": []}])

    indexed: list[str] = []
    for _ in range(100):
        async with connection(backline.db) as conn:
            rows = await conn.fetch(
                "SELECT e.event_id FROM message_text AS t JOIN room_event AS e USING (seq)"
            )
        if indexed := [row["event_id"] for row in rows]:
            break
        await asyncio.sleep(0.1)
    assert indexed == [queued["event_id"]]
