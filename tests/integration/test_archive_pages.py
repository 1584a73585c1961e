"""The archive web page in a real headless Chromium, against Backline on both engines.

Chromium is Debian's (`make chromium` installs it); Playwright only drives it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mautrix.types import EventID, EventType, RoomID
from playwright.async_api import Browser, Dialog, Page, async_playwright

from appservice.archive.access import read_access_log
from appservice.archive.media import store_media_file
from appservice.db import connection, transaction
from appservice.db import events as events_db
from appservice.web.security import PAGE_HEADERS
from tests.integration.conftest import (
    BacklineFactory,
    RunningBackline,
    join_roster,
    unique_group_id,
)
from tests.integration.matrix_user import PASSWORD, MatrixUser, MatrixUserFactory
from tests.integration.test_session_flow import ask, session_of

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
# Without the networking flags Chromium keeps calling Google's hosts, which this closed
# network refuses; Playwright already gives each launch a fresh, empty profile.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path("/tmp/backline-transcript.png")  # noqa: S108 - a file for people to look at
QUESTION = "How do I refund a double charge?"
ANSWER = "Refund it from the payments page, then tell the customer."
HOSTILE_BODY = "<img src=x onerror=alert(1)>"
HOSTILE_HTML = "<script>alert(2)</script><b>bold</b>"


@dataclass
class Desk:
    """A running Backline with an agent, an expert and a compliance officer."""

    backline: RunningBackline
    agent: MatrixUser
    expert: MatrixUser
    officer: MatrixUser
    group: str

    @property
    def url(self) -> str:
        return self.backline.url


@dataclass
class Archived:
    """A claimed session with a question and an answer in the archive."""

    desk: Desk
    room: RoomID
    session_id: int


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the module; each test gets its own context."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        await chromium.close()


@dataclass
class Tab:
    """A browser page with a fresh cookie jar, and every dialog a script tried to open."""

    page: Page
    dialogs: list[str]


@pytest.fixture
async def tab(browser: Browser) -> AsyncIterator[Tab]:
    context = await browser.new_context()
    page = await context.new_page()
    dialogs: list[str] = []

    async def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", record)
    yield Tab(page, dialogs)
    await context.close()


@pytest.fixture
async def desk(start_backline: BacklineFactory, matrix_user: MatrixUserFactory) -> Desk:
    agent, expert, officer = await asyncio.gather(
        matrix_user("agent"), matrix_user("expert"), matrix_user("officer")
    )
    group = unique_group_id("billing")
    server = agent.user_id.split(":", 1)[1]
    backline = await start_backline(
        [{"id": group, "displayname": "Billing experts", "members": [expert.user_id]}],
        permissions={"*": "none", server: "agent", officer.user_id: "compliance"},
        # The test serves the page over plain HTTP on 127.0.0.1.
        extra={"web": {"secure_cookies": False}},
    )
    await join_roster(expert, backline, group)
    return Desk(backline, agent, expert, officer, group)


@pytest.fixture
async def archived(desk: Desk) -> Archived:
    """The agent asks, the expert claims and answers; the answer is archived."""
    await ask(desk.agent, desk.backline, desk.group, QUESTION)
    room = (await desk.agent.wait_for_invite()).room_id
    await desk.expert.wait_for_invite(predicate=lambda i: i.room_id == room)
    await desk.agent.join(room)
    await desk.expert.join(room)
    answer = await desk.expert.send_text(room, ANSWER)
    await wait_archived(desk.backline, answer)
    session = await session_of(desk.backline, room)
    return Archived(desk, room, session.id)


async def wait_archived(backline: RunningBackline, *event_ids: EventID) -> None:
    """Until Backline has stored these events (the homeserver delivers them a bit later)."""
    for _ in range(100):
        async with connection(backline.db) as conn:
            counts = [await events_db.count_events(conn, e) for e in event_ids]
        if all(counts):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not archived: {event_ids}")


async def sign_in(tab: Tab, url: str, user: MatrixUser, password: str = PASSWORD) -> None:
    """Open the archive, get sent to sign-in, and sign in there."""
    await tab.page.goto(f"{url}/archive")
    await tab.page.fill("#user", user.user_id)
    await tab.page.fill("#password", password)
    await tab.page.get_by_role("button", name="Sign in").click()
    await tab.page.wait_for_load_state()


async def actions_of(backline: RunningBackline, actor: str) -> list[tuple[str, str]]:
    """The access log's (action, target) entries of one person, oldest first."""
    async with connection(backline.db) as conn:
        entries = await read_access_log(conn)
    return [(e.action, e.target) for e in reversed(entries) if e.actor == actor]


async def send_content(user: MatrixUser, room: RoomID, content: dict[str, Any]) -> EventID:
    return await user.client.send_message_event(room, EventType.ROOM_MESSAGE, content)


# region signing in


async def test_compliance_officer_signs_in_and_lands_on_search(desk: Desk, tab: Tab) -> None:
    await tab.page.goto(f"{desk.url}/archive")
    assert tab.page.url == f"{desk.url}/login?next=/archive"

    await sign_in(tab, desk.url, desk.officer)

    assert tab.page.url == f"{desk.url}/archive"
    assert await tab.page.locator(".topbar .who").inner_text() == desk.officer.user_id
    assert await tab.page.locator("input[name=q]").is_visible()
    cookies = {c["name"]: c for c in await tab.page.context.cookies()}
    session_cookie = cookies["backline_session"]
    assert session_cookie["httpOnly"] is True
    assert session_cookie["sameSite"] == "Strict"


async def test_sign_in_returns_to_the_page_first_asked_for(desk: Desk, tab: Tab) -> None:
    await tab.page.goto(f"{desk.url}/archive?q=refund&group={desk.group}")
    assert tab.page.url.startswith(f"{desk.url}/login?next=")

    await tab.page.fill("#user", desk.officer.user_id)
    await tab.page.fill("#password", PASSWORD)
    await tab.page.get_by_role("button", name="Sign in").click()
    await tab.page.wait_for_load_state()

    assert tab.page.url == f"{desk.url}/archive?q=refund&group={desk.group}"
    assert await tab.page.locator("input[name=q]").input_value() == "refund"


async def test_user_without_compliance_role_is_refused(desk: Desk, tab: Tab) -> None:
    await tab.page.goto(f"{desk.url}/login")
    await tab.page.fill("#user", desk.agent.user_id)
    await tab.page.fill("#password", PASSWORD)

    async with tab.page.expect_response(f"{desk.url}/login") as answer:
        await tab.page.get_by_role("button", name="Sign in").click()

    assert (await answer.value).status == 403
    assert await tab.page.locator("h1").inner_text() == "No access to the archive"
    assert desk.agent.user_id in await tab.page.locator("main").inner_text()
    assert "backline_session" not in {c["name"] for c in await tab.page.context.cookies()}


async def test_wrong_password_shows_an_error(desk: Desk, tab: Tab) -> None:
    await tab.page.goto(f"{desk.url}/login")
    await tab.page.fill("#user", desk.officer.user_id)
    await tab.page.fill("#password", "not the password")

    async with tab.page.expect_response(f"{desk.url}/login") as answer:
        await tab.page.get_by_role("button", name="Sign in").click()

    assert (await answer.value).status == 401
    assert await tab.page.get_by_role("alert").inner_text() == "Wrong user ID or password."
    assert await tab.page.locator("#user").input_value() == desk.officer.user_id


# endregion
# region reading the archive


async def test_search_shows_snippets_with_highlighted_matches(
    archived: Archived, tab: Tab
) -> None:
    desk = archived.desk
    await sign_in(tab, desk.url, desk.officer)

    await tab.page.fill("input[name=q]", "payments")
    await tab.page.get_by_role("button", name="Search").click()
    await tab.page.wait_for_load_state()

    hit = tab.page.locator(".hit").first
    assert await hit.locator("mark").inner_text() == "payments"
    assert ANSWER in await hit.locator(".snippet").inner_text()
    link = await hit.locator("a.hit-title").get_attribute("href")
    assert link is not None and link.startswith(f"/archive/sessions/{archived.session_id}#")
    assert ("search", "payments") in await actions_of(desk.backline, desk.officer.user_id)


async def test_search_pages_through_older_results(archived: Archived, tab: Tab) -> None:
    desk = archived.desk
    notes = [await desk.expert.send_text(archived.room, f"ledger note {n}") for n in range(26)]
    await wait_archived(desk.backline, *notes)
    await sign_in(tab, desk.url, desk.officer)

    await tab.page.goto(f"{desk.url}/archive?q=ledger")
    first_page = await tab.page.locator(".hit .snippet").all_inner_texts()
    await tab.page.get_by_role("link", name="Older results").click()
    await tab.page.wait_for_load_state()
    second_page = await tab.page.locator(".hit .snippet").all_inner_texts()

    assert len(first_page) == 25 and "ledger note 25" in first_page[0]
    assert len(second_page) == 1 and "ledger note 0" in second_page[0]
    assert await tab.page.get_by_role("link", name="Older results").count() == 0
    assert await tab.page.locator("input[name=q]").input_value() == "ledger"


async def test_transcript_shows_senders_and_messages_like_a_chat(
    archived: Archived, tab: Tab
) -> None:
    desk = archived.desk
    await sign_in(tab, desk.url, desk.officer)

    await tab.page.goto(f"{desk.url}/archive/sessions/{archived.session_id}")

    answer = tab.page.locator("article.message.expert").filter(has_text=ANSWER)
    assert await answer.locator(".sender").inner_text() == desk.expert.user_id
    assert re.fullmatch(r"\d\d:\d\d:\d\d", await answer.locator("time").inner_text())
    facts = await tab.page.locator(".facts").inner_text()
    assert desk.agent.user_id in facts and desk.group in facts
    assert f"{desk.expert.user_id} joined" in await tab.page.locator(".chat").inner_text()
    view = ("view", str(archived.session_id))
    assert view in await actions_of(desk.backline, desk.officer.user_id)
    await tab.page.set_viewport_size({"width": 1100, "height": 900})
    await tab.page.screenshot(path=str(SCREENSHOT), full_page=True)


async def test_hostile_message_is_shown_as_text_and_never_runs(
    archived: Archived, tab: Tab
) -> None:
    desk = archived.desk
    hostile = await send_content(
        desk.agent,
        archived.room,
        {
            "msgtype": "m.text",
            "body": HOSTILE_BODY,
            "format": "org.matrix.custom.html",
            "formatted_body": HOSTILE_HTML,
        },
    )
    await wait_archived(desk.backline, hostile)
    await sign_in(tab, desk.url, desk.officer)

    await tab.page.goto(f"{desk.url}/archive?q=onerror")
    snippet = await tab.page.locator(".hit .snippet").first.inner_text()
    await tab.page.goto(f"{desk.url}/archive/sessions/{archived.session_id}")

    assert HOSTILE_BODY in snippet
    body = tab.page.locator(f'[id="ev-{hostile}"] .body')
    assert await body.inner_text() == HOSTILE_BODY
    assert await tab.page.locator("main img, main script, main b").count() == 0
    await tab.page.wait_for_timeout(300)
    assert tab.dialogs == []


async def test_edits_redactions_and_reactions_are_marked(archived: Archived, tab: Tab) -> None:
    desk, room = archived.desk, archived.room
    first = await desk.expert.send_text(room, "Refunds take five days.")
    edit = await send_content(
        desk.expert,
        room,
        {
            "msgtype": "m.text",
            "body": "* Refunds take three days.",
            "m.new_content": {"msgtype": "m.text", "body": "Refunds take three days."},
            "m.relates_to": {"rel_type": "m.replace", "event_id": first},
        },
    )
    reaction = await desk.agent.client.send_message_event(
        room,
        EventType.REACTION,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": first, "key": "👍"}},
    )
    regret = await desk.agent.send_text(room, "The customer's card is 4111 1111 1111 1111")
    redaction = await desk.agent.client.redact(room, regret, reason="card number")
    await wait_archived(desk.backline, first, edit, reaction, regret, redaction)
    await sign_in(tab, desk.url, desk.officer)

    await tab.page.goto(f"{desk.url}/archive/sessions/{archived.session_id}")

    edited = tab.page.locator(f'[id="ev-{first}"]')
    assert await edited.locator(".body").first.inner_text() == "Refunds take three days."
    assert await edited.locator(".edited").inner_text() == "(edited)"
    await edited.locator("details.versions summary").click()
    versions = await edited.locator("details.versions li").all_inner_texts()
    assert "Refunds take five days." in versions[0]
    assert "👍" in await edited.locator(".reactions").inner_text()
    removed = tab.page.locator(f'[id="ev-{regret}"]')
    notice = await removed.locator(".redaction").inner_text()
    assert f"Deleted by {desk.agent.user_id}" in notice and "card number" in notice
    assert "4111 1111 1111 1111" in await removed.locator(".body").inner_text()


async def test_exports_download_as_files_and_are_logged(archived: Archived, tab: Tab) -> None:
    desk = archived.desk
    await sign_in(tab, desk.url, desk.officer)
    await tab.page.goto(f"{desk.url}/archive/sessions/{archived.session_id}")

    async with tab.page.expect_download() as json_download:
        await tab.page.get_by_role("link", name="Export JSON").click()
    async with tab.page.expect_download() as html_download:
        await tab.page.get_by_role("link", name="Export HTML").click()

    json_file = await (await json_download.value).path()
    html_file = await (await html_download.value).path()
    assert ANSWER in json_file.read_text()
    html = html_file.read_text()
    assert ANSWER in html and "<style>" in html and "<script" not in html
    logged = await actions_of(desk.backline, desk.officer.user_id)
    assert [a for a in logged if a[0] == "export"] == [("export", str(archived.session_id))] * 2


async def test_stored_file_downloads_as_an_attachment(archived: Archived, tmp_path: Path) -> None:
    desk = archived.desk
    data = b"%PDF-1.4 refund policy"
    upload = await desk.expert.client.upload_media(data, "application/pdf", "policy.pdf")
    file_event = await send_content(
        desk.expert,
        archived.room,
        {
            "msgtype": "m.file",
            "body": "policy.pdf",
            "url": upload,
            "info": {"mimetype": "application/pdf", "size": len(data)},
        },
    )
    await wait_archived(desk.backline, file_event)
    # What the archive's downloader does when archive.media is "store".
    digest = store_media_file(desk.backline.config.archive.media_path, data)
    async with transaction(desk.backline.db) as conn:
        await events_db.media_stored(conn, str(upload), digest, len(data))

    async with web_client() as client:
        await sign_in_over_http(client, desk.url, desk.officer)
        page = await client.get(f"{desk.url}/archive/sessions/{archived.session_id}")
        assert f'href="/archive/media/{digest}"' in await page.text()
        download = await client.get(f"{desk.url}/archive/media/{digest}")
        assert download.status == 200
        assert await download.read() == data

    assert download.headers["Content-Type"] == "application/pdf"
    assert download.headers["Content-Disposition"].startswith('attachment; filename="policy.pdf"')
    logged = await actions_of(desk.backline, desk.officer.user_id)
    assert ("export", f"media:{digest}") in logged


# endregion
# region sign-out, headers, CSRF


async def test_sign_out_ends_the_session_and_back_shows_nothing(
    archived: Archived, tab: Tab
) -> None:
    desk = archived.desk
    await sign_in(tab, desk.url, desk.officer)
    transcript = f"{desk.url}/archive/sessions/{archived.session_id}"
    answer = await tab.page.goto(transcript)
    assert answer is not None and answer.headers["cache-control"] == "no-store"

    await tab.page.get_by_role("button", name="Sign out").click()
    await tab.page.wait_for_url(f"{desk.url}/login")
    await tab.page.go_back()
    await tab.page.wait_for_load_state()

    assert tab.page.url.startswith(f"{desk.url}/login?next=")
    assert ANSWER not in await tab.page.content()
    assert "backline_session" not in {c["name"] for c in await tab.page.context.cookies()}


async def test_pages_carry_the_security_headers(desk: Desk, tab: Tab) -> None:
    login = await tab.page.goto(f"{desk.url}/login")
    await sign_in(tab, desk.url, desk.officer)
    search = await tab.page.goto(f"{desk.url}/archive")
    stylesheet = await tab.page.goto(f"{desk.url}/static/backline.css")

    for answer in (login, search, stylesheet):
        assert answer is not None and answer.ok
        headers = answer.headers
        for name, value in PAGE_HEADERS.items():
            assert headers[name.lower()] == value, (answer.url, name)
    assert PAGE_HEADERS["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
        " frame-ancestors 'none'; base-uri 'none'"
    )


def web_client() -> aiohttp.ClientSession:
    # Cookies of an IP-address host are only kept by an "unsafe" jar.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def hidden_field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no {name} field"
    return match.group(1)


async def sign_in_over_http(client: aiohttp.ClientSession, url: str, user: MatrixUser) -> str:
    """Sign in as a browser would; returns the session's CSRF token from the next page."""
    form = await (await client.get(f"{url}/login")).text()
    fields = {"csrf_token": hidden_field(form, "csrf_token"), "next": "/archive"}
    signed_in = await client.post(
        f"{url}/login", data=fields | {"user": user.user_id, "password": PASSWORD}
    )
    assert signed_in.status == 200 and signed_in.url.path == "/archive"
    return hidden_field(await signed_in.text(), "csrf_token")


async def test_sign_in_post_without_csrf_token_is_refused(desk: Desk) -> None:
    async with web_client() as client:
        await client.get(f"{desk.url}/login")

        answer = await client.post(
            f"{desk.url}/login", data={"user": desk.officer.user_id, "password": PASSWORD}
        )

        assert answer.status == 403
        assert "backline_session" not in {c.key for c in client.cookie_jar}


async def test_sign_out_post_without_csrf_token_is_refused(desk: Desk) -> None:
    async with web_client() as client:
        await sign_in_over_http(client, desk.url, desk.officer)

        refused = await client.post(f"{desk.url}/logout", data={"csrf_token": "guessed"})
        still_in = await client.get(f"{desk.url}/archive", allow_redirects=False)

    assert refused.status == 403
    assert still_in.status == 200


# endregion
