"""The archive commands of the real `backline` CLI, against a database on each engine."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from appservice.archive.access import read_access_log
from appservice.db import connection, open_database, transaction
from appservice.db.events import link_event, store_events
from appservice.db.sessions import create_session, set_room

AGENT = "@agent:localhost"
EXPERT = "@alice:localhost"
GROUP_USER = "@group-billing:localhost"
DM_ROOM = "!dmW2sYfD3nJkQ8:localhost"
SESSION_ROOM = "!sessionR7xq2LpT9e:localhost"
OPERATOR = "auditor"
START = 1_714_572_000_000  # 2024-05-01 14:00 UTC


@dataclass(frozen=True)
class Archive:
    """A config file pointing at a populated database, and what is in it."""

    config: Path
    database_url: str
    session_id: int


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def room_event(
    number: int, room_id: str, sender: str, event_type: str, content: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "event_id": f"$event{number}-Zk3vQ9",
        "room_id": room_id,
        "sender": sender,
        "type": event_type,
        "origin_server_ts": START + number * 60_000,
        "content": content,
        "unsigned": {"age": 12},
        **extra,
    }


def text(body: str, **extra: Any) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body, **extra}


SESSION_EVENTS = [
    room_event(
        2, SESSION_ROOM, GROUP_USER, "m.room.member", {"membership": "join"}, state_key=GROUP_USER
    ),
    room_event(3, SESSION_ROOM, AGENT, "m.room.message", text("Charged twice for invoice 4711")),
    room_event(4, SESSION_ROOM, EXPERT, "m.room.message", text("Refund the duplicate payment")),
    room_event(
        5,
        SESSION_ROOM,
        EXPERT,
        "m.room.message",
        text(
            "* Refund the duplicate payment, then email the customer",
            **{
                "m.new_content": text("Refund the duplicate payment, then email the customer"),
                "m.relates_to": {"rel_type": "m.replace", "event_id": "$event4-Zk3vQ9"},
            },
        ),
    ),
]


@pytest.fixture
async def archive(database_url: str, tmp_path: Path) -> Archive:
    """One session as Backline stores it: the request in the DM, then the session room."""
    db = await open_database(database_url)
    request = room_event(1, DM_ROOM, AGENT, "m.room.message", text("Refund a double charge?"))
    async with transaction(db) as conn:
        await store_events(conn, [request])
        session_id = await create_session(
            conn,
            group_id="billing",
            agent=AGENT,
            question="Refund a double charge?",
            preferences={},
            needed=1,
            alias_prefix="backline-session-",
            dm_room_id=DM_ROOM,
            request_event_id=request["event_id"],
        )
        await link_event(conn, request["event_id"], session_id)
        await set_room(conn, session_id, SESSION_ROOM)
        await store_events(conn, SESSION_EVENTS)
    await db.stop()

    config = tmp_path / "config.yaml"
    # JSON is YAML; no tokens: the archive commands do not need them.
    config.write_text(
        json.dumps(
            {
                "homeserver": {"address": "http://127.0.0.1:9", "domain": "localhost"},
                "database": {"url": database_url},
            }
        )
    )
    return Archive(config, database_url, session_id)


async def backline(archive: Archive, *args: str) -> Run:
    """Run `python -m appservice -c CONFIG ARGS...` as the operator `auditor`."""
    env = os.environ | {"LOGNAME": OPERATOR, "USER": OPERATOR}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "appservice", "-c", str(archive.config), *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


async def test_search_prints_the_matching_message_with_its_session(archive: Archive) -> None:
    run = await backline(archive, "search", "invoice")

    assert run.code == 0, run.err
    header, row = run.out.splitlines()
    assert header.split()[:4] == ["SESSION", "TIME", "(UTC)", "GROUP"]
    assert row.split()[:5] == [str(archive.session_id), "2024-05-01", "14:03", "billing", AGENT]
    assert row.endswith("Charged twice for **invoice** 4711")


async def test_search_finds_the_edited_text_of_a_message(archive: Archive) -> None:
    run = await backline(archive, "search", "email")

    assert run.code == 0, run.err
    assert "then **email** the customer" in run.out
    assert len(run.out.splitlines()) == 2


async def test_search_as_json_lines_names_each_matching_event(archive: Archive) -> None:
    run = await backline(archive, "search", "duplicate", "--json")

    assert run.code == 0, run.err
    hits = [json.loads(line) for line in run.out.splitlines()]
    assert [hit["event_id"] for hit in hits] == ["$event5-Zk3vQ9", "$event4-Zk3vQ9"]
    assert hits[1]["snippet"] == "Refund the duplicate payment"
    assert hits[1]["snippet_html"] == "Refund the <mark>duplicate</mark> payment"
    assert {hit["session_id"] for hit in hits} == {archive.session_id}


async def test_search_filters_narrow_the_hits(archive: Archive) -> None:
    other_group = await backline(archive, "search", "invoice", "--group", "escalations")
    too_late = await backline(archive, "search", "invoice", "--since", "2024-05-02")
    that_day = await backline(archive, "search", "invoice", "--until", "2024-05-01")

    assert (other_group.code, other_group.out) == (0, "No matches.\n")
    assert (too_late.code, too_late.out) == (0, "No matches.\n")
    assert "invoice" in that_day.out


async def test_export_json_to_a_file_holds_every_event_with_the_edit_marked(
    archive: Archive, tmp_path: Path
) -> None:
    target = tmp_path / "session.json"

    run = await backline(
        archive, "export", str(archive.session_id), "--format", "json", "-o", str(target)
    )

    assert run.code == 0, run.err
    assert run.out == ""
    assert run.err.strip() == f"Exported 5 events to {target}"
    exported = json.loads(target.read_text())
    assert exported["session"]["session_id"] == archive.session_id
    events = {event["event_id"]: event for event in exported["events"]}
    assert len(events) == 5
    assert events["$event5-Zk3vQ9"]["edit_of"] == "$event4-Zk3vQ9"
    assert events["$event4-Zk3vQ9"]["replaced_by"] == "$event5-Zk3vQ9"
    assert target.stat().st_mode & 0o077 == 0, "an export is readable by its owner only"


async def test_export_html_to_a_file_is_a_page_with_the_conversation(
    archive: Archive, tmp_path: Path
) -> None:
    target = tmp_path / "session.html"

    run = await backline(
        archive, "export", str(archive.session_id), "--format", "html", "-o", str(target)
    )

    assert run.code == 0, run.err
    page = target.read_text()
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "Charged twice for invoice 4711" in page
    assert "then email the customer" in page


async def test_export_to_stdout_writes_only_the_document(archive: Archive) -> None:
    run = await backline(archive, "export", str(archive.session_id), "--format", "json")

    assert run.code == 0, run.err
    assert len(json.loads(run.out)["events"]) == 5
    assert run.err.strip() == "Exported 5 events to stdout"


async def backline_on_a_terminal(archive: Archive, *args: str) -> tuple[int, str]:
    """Run the CLI with its stderr on a pseudo-terminal, as an operator at a shell sees it."""
    leader, follower = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "appservice", "-c", str(archive.config), *args),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=follower,
    )
    os.close(follower)

    def read_all() -> bytes:
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal is gone: the process has ended
                return shown
            if not chunk:
                return shown
            shown += chunk

    try:
        async with asyncio.timeout(60):
            shown = await asyncio.to_thread(read_all)
            code = await process.wait()
    finally:
        os.close(leader)
    return code, shown.decode()


@pytest.mark.parametrize("export_format", ["json", "html"])
async def test_a_long_export_to_a_terminal_shows_a_progress_bar(
    archive: Archive, tmp_path: Path, export_format: str
) -> None:
    db = await open_database(archive.database_url)
    async with transaction(db) as conn:
        steps = [text(f"step {n} of the refund") for n in range(400)]
        await store_events(
            conn,
            [
                room_event(100 + n, SESSION_ROOM, EXPERT, "m.room.message", step)
                for n, step in enumerate(steps)
            ],
        )
    await db.stop()
    target = tmp_path / f"long.{export_format}"

    code, shown = await backline_on_a_terminal(
        archive, "export", str(archive.session_id), "--format", export_format, "-o", str(target)
    )

    assert code == 0, shown
    redraws = [part for part in shown.split("\r") if part.startswith("Exporting [")]
    assert len(redraws) > 10, shown
    assert redraws[-1].startswith(f"Exporting [{'#' * 30}] 100%")
    # The bar is wiped before the last line, which stays.
    assert shown.endswith(f"\x1b[KExported 405 events to {target}\r\n")
    assert "step 399 of the refund" in target.read_text()


async def test_an_unknown_session_is_a_clear_error(archive: Archive) -> None:
    export = await backline(archive, "export", "999", "--format", "json")
    verify = await backline(archive, "verify", "999")

    for run in (export, verify):
        assert run.code == 1
        assert run.err.startswith("backline: there is no session 999\n")
        assert "Traceback" not in run.err
        assert run.out == ""


async def test_verify_reports_an_intact_archive(archive: Archive) -> None:
    whole = await backline(archive, "verify")
    one = await backline(archive, "verify", str(archive.session_id))

    assert (whole.code, whole.out) == (0, "OK: 2 rooms, 5 events\n")
    assert (one.code, one.out) == (0, "OK: 2 rooms, 5 events\n")


async def test_verify_names_a_row_altered_behind_backlines_back(archive: Archive) -> None:
    db = await open_database(archive.database_url)
    forged = dict(SESSION_EVENTS[1], content=text("Charged once for invoice 4711"))
    await db.execute(
        "UPDATE room_event SET event_json=$1 WHERE event_id=$2",
        json.dumps(forged),
        forged["event_id"],
    )
    await db.stop()

    run = await backline(archive, "verify")

    assert run.code == 1
    assert run.out.splitlines()[0] == (
        f"BROKEN: room {SESSION_ROOM}, index 1, event $event3-Zk3vQ9: "
        "stored event does not match its hash (altered after archiving)"
    )
    assert run.out.splitlines()[-1] == "1 broken link(s) in 2 rooms, 5 events checked"


async def test_holds_are_placed_listed_and_released(archive: Archive) -> None:
    placed = await backline(
        archive, "hold", "add", "session", str(archive.session_id), "--reason", "Case 2024-17"
    )
    listed = await backline(archive, "hold", "list")
    released = await backline(archive, "hold", "release", "1")
    after = await backline(archive, "hold", "list")
    history = await backline(archive, "hold", "list", "--all")

    assert (placed.code, placed.out) == (0, f"Placed hold 1 on session {archive.session_id}.\n")
    assert listed.out.splitlines()[0].split() == [
        "ID",
        "KIND",
        "VALUE",
        "PLACED",
        "(UTC)",
        "BY",
        "REASON",
    ]
    assert listed.out.splitlines()[1].split()[:3] == ["1", "session", str(archive.session_id)]
    assert listed.out.splitlines()[1].endswith(f"cli:{OPERATOR}  Case 2024-17")
    assert released.code == 0
    assert released.out == f"Released hold 1 on session {archive.session_id}.\n"
    assert after.out == "No active holds.\n"
    assert f"by cli:{OPERATOR}  Case 2024-17" in history.out.splitlines()[1]


async def test_releasing_a_hold_that_is_not_active_fails(archive: Archive) -> None:
    run = await backline(archive, "hold", "release", "42")

    assert run.code == 1
    assert run.err.startswith("backline: there is no active hold 42\n")


async def test_a_malformed_hold_is_refused_before_touching_the_archive(archive: Archive) -> None:
    not_a_user = await backline(archive, "hold", "add", "agent", "bob", "--reason", "x")
    no_session = await backline(archive, "hold", "add", "session", "77", "--reason", "x")

    assert not_a_user.code == 2
    assert "needs a Matrix user ID" in not_a_user.err
    assert no_session.code == 1
    assert "there is no session 77" in no_session.err


async def test_every_command_is_written_to_the_access_log(archive: Archive) -> None:
    session = str(archive.session_id)
    await backline(archive, "search", "invoice", "--group", "billing")
    await backline(archive, "export", session, "--format", "json")
    await backline(archive, "verify", session)
    await backline(archive, "hold", "add", "group", "billing", "--reason", "Audit")

    db = await open_database(archive.database_url)
    async with connection(db) as conn:
        entries = await read_access_log(conn)
    await db.stop()

    assert [(e.actor, e.action, e.target) for e in reversed(entries)] == [
        (f"cli:{OPERATOR}", "search", "invoice"),
        (f"cli:{OPERATOR}", "export", session),
        (f"cli:{OPERATOR}", "verify", session),
        (f"cli:{OPERATOR}", "hold", "group:billing"),
    ]
    assert entries[-1].details["group"] == "billing"
    assert entries[-1].details["results"] == 1


async def test_a_missing_config_is_a_usage_error(archive: Archive, tmp_path: Path) -> None:
    missing = Archive(tmp_path / "nowhere.yaml", archive.database_url, archive.session_id)

    run = await backline(missing, "verify")

    assert run.code == 2
    assert "cannot be read" in run.err
