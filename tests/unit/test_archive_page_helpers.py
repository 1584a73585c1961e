"""The archive page's pure parts: redirects, dates, headers, file sizes, escaping."""

from __future__ import annotations

from typing import Any

import pytest

from appservice.archive.transcript import Entry, Transcript
from appservice.web.pages import attachment, day_start, safe_content_type
from appservice.web.render import fold_settings, format_size, render_export_html
from appservice.web.signin import safe_next, tokens_match


@pytest.mark.parametrize(
    "given",
    [
        None,
        "",
        "archive",
        "//evil.example/archive",
        "/\\evil.example",
        "https://evil.example/",
        "/archive\r\nSet-Cookie: x=1",
        "javascript:alert(1)",
    ],
)
def test_next_page_falls_back_to_the_archive_for_anything_but_a_local_path(
    given: str | None,
) -> None:
    assert safe_next(given) == "/archive"


def test_next_page_keeps_a_local_path_with_its_query() -> None:
    assert safe_next("/archive/sessions/4?x=1#ev-$a") == "/archive/sessions/4?x=1#ev-$a"


def test_tokens_match_only_when_equal_and_present() -> None:
    assert tokens_match("abc", "abc")
    assert not tokens_match("abc", "abd")
    assert not tokens_match("abc", None)
    assert not tokens_match("", "")
    assert not tokens_match("abc", "äbc")


def test_to_date_includes_the_whole_day() -> None:
    assert day_start("2024-05-31", "From") == 1_717_113_600_000
    assert day_start("2024-05-31", "To", days_after=1) == 1_717_200_000_000
    assert day_start("", "From") is None


def test_malformed_date_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"^To: '31\.05\.2024' is not a date"):
        day_start("31.05.2024", "To")


def test_attachment_header_is_quoted_and_keeps_the_real_name_encoded() -> None:
    header = attachment('bad"name\r\n.pdf')
    assert header.startswith('attachment; filename="bad_name__.pdf"; ')
    assert "\r" not in header and "\n" not in header
    assert header.endswith("filename*=UTF-8''bad%22name%0D%0A.pdf")


@pytest.mark.parametrize(
    ("declared", "served"),
    [
        ("application/pdf", "application/pdf"),
        ("image/png", "image/png"),
        (None, "application/octet-stream"),
        ("text/html\r\nX-Evil: 1", "application/octet-stream"),
        ("nonsense", "application/octet-stream"),
    ],
)
def test_only_plain_media_types_are_served(declared: str | None, served: str) -> None:
    assert safe_content_type(declared) == served


def test_file_sizes_read_in_human_units() -> None:
    assert format_size(None) == "size unknown"
    assert format_size(512) == "512 bytes"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(5 * 1024**3) == "5.0 GiB"


def entry(event_id: str, kind: str, **fields: Any) -> Entry:
    return Entry(
        event_id=event_id,
        seq=0,
        room_id="!room",
        sender="@agent:example.org",
        type="m.room.message" if kind == "message" else "m.room.topic",
        sent_at=1_717_113_600_000,
        kind=kind,
        **fields,
    )


def test_runs_of_room_settings_fold_into_one_line() -> None:
    entries = [entry("$m", "message"), *(entry(f"$s{i}", "state") for i in range(4))]
    entries += [entry("$n", "message"), entry("$t", "state")]

    shown = fold_settings(entries)

    assert [getattr(e, "kind", None) for e in shown] == ["message", "folded", "message", "state"]


def test_export_shows_hostile_text_escaped_and_never_its_html() -> None:
    session = {"session_id": 1, "group": "<b>g</b>", "agent": "@agent:example.org"}
    session |= {"state": "closed", "question": "<script>alert(1)</script>"}
    hostile = entry(
        "$x",
        "message",
        body="<img src=x onerror=alert(1)>",
        content={"formatted_body": "<script>alert(2)</script>"},
    )

    html = render_export_html(Transcript(session, [hostile], []))

    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html and "<script" not in html and "<b>g" not in html
    assert "alert(2)" not in html
