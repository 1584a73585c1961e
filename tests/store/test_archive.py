"""The archive on SQLite and PostgreSQL: chains, search, transcripts, retention."""

from __future__ import annotations

import html
from typing import Any

import pytest
from mautrix.util.async_db import Database

from appservice.archive import retention
from appservice.archive.access import read_access_log
from appservice.archive.holds import list_holds, place_hold, release_hold
from appservice.archive.retention import purge_expired
from appservice.archive.search import SearchError, SearchFilters, SearchPage, search_archive
from appservice.archive.transcript import export_json, load_transcript
from appservice.archive.verify import verify_archive
from appservice.db import dm_rooms as dm_rooms_db
from appservice.db import events as events_db
from appservice.db import transaction
from tests.store.archive_data import BASE_TS, archived_session, edit, message, redaction

DAY = 86_400_000


async def test_an_untouched_archive_verifies(db: Database) -> None:
    async with transaction(db) as conn:
        await archived_session(conn, messages=["one", "two", "three"])
        await archived_session(conn, messages=["four"])

        report = await verify_archive(conn)

    assert report.ok and report.rooms == 2 and report.events == 4


async def test_an_altered_row_is_named_as_the_broken_link(db: Database) -> None:
    async with transaction(db) as conn:
        _, room, events = await archived_session(conn, messages=["pay 10 EUR", "done", "thanks"])
        await conn.execute(
            "UPDATE room_event SET event_json = REPLACE(event_json, '10 EUR', '1000 EUR')"
            " WHERE event_id = $1",
            events[0]["event_id"],
        )

        report = await verify_archive(conn)

    assert not report.ok
    first = report.breaks[0]
    assert (first.room_id, first.chain_index, first.event_id) == (room, 0, events[0]["event_id"])
    assert "altered" in first.problem


async def test_a_deleted_row_and_a_deleted_tail_are_caught(db: Database) -> None:
    async with transaction(db) as conn:
        _, _, events = await archived_session(conn, messages=["a", "b", "c", "d"])
        await conn.execute("DELETE FROM room_event WHERE event_id = $1", events[1]["event_id"])
        await conn.execute("DELETE FROM room_event WHERE event_id = $1", events[3]["event_id"])

        report = await verify_archive(conn)

    problems = [b.problem for b in report.breaks]
    assert problems[0] == "link 1 is missing (next is 2)"
    assert problems[-1] == "chain ends at link 2, but 3 were written"


async def test_verify_of_one_session_checks_only_its_chains(db: Database) -> None:
    async with transaction(db) as conn:
        kept, _, _ = await archived_session(conn, messages=["fine"])
        _, _, events = await archived_session(conn, messages=["broken"])
        await conn.execute(
            "UPDATE room_event SET sender = '@mallory:localhost' WHERE event_id = $1",
            events[0]["event_id"],
        )

        assert (await verify_archive(conn, kept)).ok
        assert "sender" in (await verify_archive(conn)).breaks[0].problem


async def test_search_finds_words_and_phrases_newest_first_with_marked_snippets(
    db: Database,
) -> None:
    async with transaction(db) as conn:
        await archived_session(conn, messages=["The refund policy changed", "ok"])
        await archived_session(conn, messages=["policy on refunds", "refund policy again"])

        words = await search_archive(conn, "refund policy", SearchFilters())
        phrase = await search_archive(conn, '"refund policy"', SearchFilters())
        excluded = await search_archive(conn, "policy -again", SearchFilters())

    assert [h.snippet for h in phrase.hits] == [
        "<mark>refund</mark> <mark>policy</mark> again",
        "The <mark>refund</mark> <mark>policy</mark> changed",
    ]
    assert len(words.hits) == 2
    assert {h.snippet for h in excluded.hits} == {
        "The refund <mark>policy</mark> changed",
        "<mark>policy</mark> on refunds",
    }


async def test_texts_queued_by_a_large_transaction_are_found_once_indexed(db: Database) -> None:
    async with transaction(db) as conn:
        _, room, _ = await archived_session(conn, messages=["opening words"])
        queued = [
            message(room, "@alice:localhost", f"chargeback number {n}", BASE_TS + 1000 + n)
            for n in range(3)
        ]
        await events_db.store_events(conn, queued, index_now=False)

        before = await search_archive(conn, "chargeback", SearchFilters())
        indexed = await events_db.index_queued_texts(conn)
        after = await search_archive(conn, "chargeback", SearchFilters())
        again = await events_db.index_queued_texts(conn)

    assert before.hits == []
    assert (indexed, again) == (3, 0)
    assert sorted(h.snippet for h in after.hits) == [
        f"<mark>chargeback</mark> number {n}" for n in range(3)
    ]


async def test_a_queued_text_of_a_purged_event_is_dropped_without_blocking_others(
    db: Database,
) -> None:
    async with transaction(db) as conn:
        _, room, _ = await archived_session(conn, messages=["opening words"])
        gone, kept = (
            message(room, "@alice:localhost", f"ledger entry {word}", BASE_TS + 1000)
            for word in ("gone", "kept")
        )
        await events_db.store_events(conn, [gone, kept], index_now=False)
        await conn.execute("DELETE FROM room_event WHERE event_id = $1", gone["event_id"])

        indexed = await events_db.index_queued_texts(conn)
        found = await search_archive(conn, "ledger", SearchFilters())

    assert indexed == 1
    assert [h.snippet for h in found.hits] == ["<mark>ledger</mark> entry kept"]


async def test_search_filters_by_group_agent_expert_and_time(db: Database) -> None:
    async with transaction(db) as conn:
        await archived_session(conn, group="billing", messages=["invoice question"])
        await archived_session(
            conn,
            group="tech",
            agent="@other:localhost",
            expert="@bob:localhost",
            messages=["invoice from tech"],
            start=BASE_TS + 10 * DAY,
        )

        async def search(**filters: Any) -> SearchPage:
            return await search_archive(conn, "invoice", SearchFilters(**filters))

        by_group = await search(group="tech")
        by_agent = await search(agent="@agent:localhost")
        by_expert = await search(expert="@bob:localhost")
        by_time = await search(since=BASE_TS + DAY, until=BASE_TS + 20 * DAY)

    assert [h.group for h in by_group.hits] == ["tech"]
    assert [h.group for h in by_agent.hits] == ["billing"]
    assert [h.experts for h in by_expert.hits] == [["@bob:localhost"]]
    assert [h.group for h in by_time.hits] == ["tech"]


async def test_pages_follow_each_other_without_gaps_or_repeats(db: Database) -> None:
    async with transaction(db) as conn:
        for n in range(7):
            await archived_session(conn, messages=[f"status report {n}"])
        seen: list[str | None] = []
        cursor = None
        while True:
            page = await search_archive(conn, "report", SearchFilters(), cursor, limit=3)
            seen += [hit.event_id for hit in page.hits]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor

    assert len(seen) == 7 and len(set(seen)) == 7


@pytest.mark.parametrize(
    "query",
    [
        '"',
        "*",
        "NEAR(",
        "') OR 1=1 --",
        "<script>alert(1)</script>",
        "a" * 10_000,
        "\x00",
        "ÄÖÜ 日本語",
        "-",
        "OR OR",
        "col:value",
        "^term",
    ],
)
async def test_hostile_queries_answer_without_error(db: Database, query: str) -> None:
    async with transaction(db) as conn:
        await archived_session(conn, messages=["<script>alert(1)</script> and more"])

        page = await search_archive(conn, query, SearchFilters())

    for hit in page.hits:
        assert "<script>" not in hit.snippet


async def test_snippets_escape_markup_before_marking_matches(db: Database) -> None:
    async with transaction(db) as conn:
        await archived_session(conn, messages=['<img src=x onerror="alert(1)"> refund'])

        page = await search_archive(conn, "refund", SearchFilters())

    snippet = page.hits[0].snippet
    assert snippet == html.escape('<img src=x onerror="alert(1)"> ') + "<mark>refund</mark>"


async def test_a_forged_cursor_is_refused(db: Database) -> None:
    async with transaction(db) as conn:
        with pytest.raises(SearchError):
            await search_archive(conn, "x", SearchFilters(), cursor="not-a-cursor")


async def test_transcript_applies_edits_and_marks_redactions(db: Database) -> None:
    async with transaction(db) as conn:
        session_id, room, events = await archived_session(conn, messages=["Refund 10", "secret"])
        first, second = events
        await events_db.store_events(
            conn,
            [
                edit(first, "Refund 20", BASE_TS + 5000),
                redaction(second, "@alice:localhost", BASE_TS + 6000, "posted by mistake"),
                message(room, "@alice:localhost", "after", BASE_TS + 7000),
            ],
        )

        transcript = await load_transcript(conn, session_id)

    assert transcript is not None
    shown = [(e.kind, e.body) for e in transcript.entries]
    assert shown == [("message", "Refund 20"), ("message", "secret"), ("message", "after")]
    edited, redacted = transcript.entries[0], transcript.entries[1]
    assert edited.edited and [v["body"] for v in edited.versions] == ["Refund 10", "Refund 20"]
    assert redacted.redacted and redacted.redacted_by is not None
    assert redacted.redaction_reason == "posted by mistake"
    exported = export_json(transcript)["events"]
    assert len(exported) == 5
    assert exported[0]["replaced_by"] == exported[2]["event_id"]
    assert exported[2]["edit_of"] == first["event_id"]
    assert exported[1]["redacted"] is True


async def test_retention_purges_old_sessions_but_not_held_ones(db: Database) -> None:
    async with transaction(db) as conn:
        old, _, _ = await archived_session(conn, messages=["old news"])
        held, _, _ = await archived_session(conn, agent="@vip:localhost", messages=["held"])
        recent, _, _ = await archived_session(conn, messages=["fresh"], start=BASE_TS + 30 * DAY)
        await conn.execute("UPDATE session SET closed_at = $1", BASE_TS + DAY)
        await conn.execute(
            "UPDATE session SET closed_at = $1 WHERE id = $2", BASE_TS + 31 * DAY, recent
        )
        await place_hold(conn, "agent", "@vip:localhost", "litigation", "@carol:localhost")

        report = await purge_expired(conn, cutoff=BASE_TS + 10 * DAY)

        assert report.sessions == [old] and report.events == 1
        assert await load_transcript(conn, old) is None
        assert await load_transcript(conn, held) is not None
        assert await load_transcript(conn, recent) is not None
        assert (await verify_archive(conn)).ok
        log = await read_access_log(conn)
        assert [e.action for e in log[:2]] == ["purge", "hold"]
        assert log[0].details["sessions"] == [old]


async def test_a_released_hold_no_longer_protects(db: Database) -> None:
    async with transaction(db) as conn:
        session_id, _, _ = await archived_session(conn, messages=["x"])
        await conn.execute("UPDATE session SET closed_at = $1", BASE_TS)
        hold = await place_hold(conn, "session", str(session_id), "audit", "@carol:localhost")

        kept = await purge_expired(conn, cutoff=BASE_TS + DAY)
        released = await release_hold(conn, hold.id, "@carol:localhost")
        purged = await purge_expired(conn, cutoff=BASE_TS + DAY)

        assert kept.sessions == [] and purged.sessions == [session_id]
        assert released is not None and released.released_by == "@carol:localhost"
        assert await release_hold(conn, hold.id, "@carol:localhost") is None
        assert await list_holds(conn) == []
        assert len(await list_holds(conn, include_released=True)) == 1


DM = "!dm-billing:localhost"
BOT = "@group-billing:localhost"


async def dm_with_requests(conn: Any, sessions: list[int]) -> list[dict[str, Any]]:
    """An agent's DM with the group user: a greeting, then one request per session, then a
    word of thanks; every request is linked to its session, as Inbound links it."""
    await dm_rooms_db.upsert_dm(conn, DM, "billing", "@agent:localhost", "joined")
    events = [message(DM, BOT, "Hello, what do you need?", BASE_TS)]
    events += [
        message(DM, "@agent:localhost", f"request {n}", BASE_TS + n * 1000)
        for n in range(1, len(sessions) + 1)
    ]
    events.append(message(DM, "@agent:localhost", "thanks", BASE_TS + 99_000))
    await events_db.store_events(conn, events)
    for session_id, request in zip(sessions, events[1:], strict=False):
        await events_db.link_event(conn, request["event_id"], session_id)
    return events


async def dm_links(conn: Any) -> list[int]:
    rows = await conn.fetch(
        "SELECT chain_index FROM room_event WHERE room_id = $1 ORDER BY chain_index", DM
    )
    return [row["chain_index"] for row in rows]


async def test_retention_cuts_expired_requests_out_of_a_dm_around_a_held_one(
    db: Database,
) -> None:
    async with transaction(db) as conn:
        old, held, older = [(await archived_session(conn))[0] for _ in range(3)]
        await conn.execute("UPDATE session SET closed_at = $1", BASE_TS + DAY)
        await dm_with_requests(conn, [old, held, older])
        hold = await place_hold(conn, "session", str(held), "dispute", "@carol:localhost")

        report = await purge_expired(conn, cutoff=BASE_TS + 10 * DAY)

        # Greeting and first request go from the start, the third request and the thanks
        # from the middle: only the held session's request is left.
        assert report.sessions == [old, older] and report.events == 4
        assert await dm_links(conn) == [2]
        assert (await verify_archive(conn)).ok

        await release_hold(conn, hold.id, "@carol:localhost")
        again = await purge_expired(conn, cutoff=BASE_TS + 10 * DAY)

        assert again.sessions == [held] and again.events == 1
        assert await dm_links(conn) == []
        assert await conn.fetchval("SELECT COUNT(*) FROM chain_gap") == 0
        assert (await verify_archive(conn)).ok


async def test_a_stretch_longer_than_a_page_is_cut_as_one(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "_PAGE", 2)
    async with transaction(db) as conn:
        held = (await archived_session(conn))[0]
        expired = [(await archived_session(conn))[0] for _ in range(5)]
        await conn.execute("UPDATE session SET closed_at = $1", BASE_TS + DAY)
        await dm_with_requests(conn, [held, *expired])
        await place_hold(conn, "session", str(held), "dispute", "@carol:localhost")

        report = await purge_expired(conn, cutoff=BASE_TS + 10 * DAY)
        gaps = await conn.fetch("SELECT first_index, last_index FROM chain_gap")

        assert report.events == 7
        assert await dm_links(conn) == [1]
        assert [(g["first_index"], g["last_index"]) for g in gaps] == [(2, 7)]
        assert (await verify_archive(conn)).ok


async def test_verify_catches_a_purged_stretch_forged_or_forgotten(db: Database) -> None:
    async with transaction(db) as conn:
        old, held = [(await archived_session(conn))[0] for _ in range(2)]
        await conn.execute("UPDATE session SET closed_at = $1", BASE_TS + DAY)
        events = await dm_with_requests(conn, [held, old])
        await place_hold(conn, "session", str(held), "dispute", "@carol:localhost")
        await purge_expired(conn, cutoff=BASE_TS + 10 * DAY)
        assert await dm_links(conn) == [1]

        # The kept request removed behind Backline's back, with a gap forged over it.
        await conn.execute("DELETE FROM room_event WHERE event_id = $1", events[1]["event_id"])
        forged = await verify_archive(conn)
        await conn.execute("UPDATE chain_gap SET first_index = 1")
        hidden = await verify_archive(conn)

    assert [b.problem for b in forged.breaks] == ["chain ends at link 0, but 3 were written"]
    # A forged gap hides a removal only as well as a forged start would; the purge itself is
    # in the access log with the sessions it removed.
    assert hidden.ok


async def test_a_row_still_there_inside_a_recorded_cut_is_named(db: Database) -> None:
    async with transaction(db) as conn:
        _, room, events = await archived_session(conn, messages=["a", "b", "c"])
        link = await conn.fetchval(
            "SELECT hash FROM room_event WHERE event_id = $1", events[1]["event_id"]
        )
        await conn.execute(
            "INSERT INTO chain_gap (room_id, first_index, last_index, last_hash, purged_at)"
            " VALUES ($1, 1, 1, $2, 0)",
            room,
            link,
        )

        report = await verify_archive(conn)

    assert [(b.chain_index, b.problem) for b in report.breaks] == [
        (1, "link 1 was recorded as purged, yet it is still there")
    ]


async def test_without_words_sessions_come_newest_first_in_pages(db: Database) -> None:
    async with transaction(db) as conn:
        ids = [(await archived_session(conn, messages=[f"q{n}"]))[0] for n in range(3)]

        first = await search_archive(conn, "", SearchFilters(), limit=2)
        second = await search_archive(conn, "", SearchFilters(), first.next_cursor, limit=2)

    assert [h.session_id for h in first.hits] == [ids[2], ids[1]]
    assert [h.session_id for h in second.hits] == [ids[0]]
    assert second.next_cursor is None


async def test_a_filter_that_keeps_few_hits_still_finds_them_all(db: Database) -> None:
    async with transaction(db) as conn:
        wanted = [(await archived_session(conn, group="vip", messages=["alpha wanted"]))[0]]
        await archived_session(conn, group="other", messages=["alpha noise"] * 600)
        wanted.append((await archived_session(conn, group="vip", messages=["alpha again"]))[0])

        page = await search_archive(conn, "alpha", SearchFilters(group="vip"), limit=5)

    assert sorted(hit.session_id for hit in page.hits) == sorted(wanted)
    assert page.next_cursor is None
