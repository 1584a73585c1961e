"""Archived text shown in terminals and chat, and the CLI's times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from appservice.archive.plaintext import format_time, plain_snippet, printable
from appservice.commands import parse_time

NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


def test_escape_sequences_and_line_breaks_never_reach_the_terminal() -> None:
    assert printable("red \x1b[31malert\x07\nsecond line\r\n") == "red [31malert second line"


def test_bidirectional_overrides_are_removed() -> None:
    assert printable("invoice \u202efdp.exe") == "invoice fdp.exe"


def test_snippet_marks_become_the_chosen_emphasis_and_entities_text() -> None:
    snippet = "a &lt;b&gt; &amp; <mark>refund</mark> of <mark>x</mark>"

    assert plain_snippet(snippet) == "a <b> & **refund** of **x**"
    assert plain_snippet(snippet, "", "") == "a <b> & refund of x"


def test_marks_written_by_a_sender_stay_text() -> None:
    # The archive escapes message text, so a sender's own "<mark>" arrives as entities.
    assert plain_snippet("&lt;mark&gt;fake&lt;/mark&gt;") == "<mark>fake</mark>"


@pytest.mark.parametrize(
    ("text", "end", "expected"),
    [
        ("2024-05-01", False, ms(2024, 5, 1)),
        ("2024-05-01", True, ms(2024, 5, 2)),
        ("2024-05-01T14:30", False, ms(2024, 5, 1, 14, 30)),
        ("2024-05-01 14:30+02:00", False, ms(2024, 5, 1, 12, 30)),
        ("7d", False, ms(2024, 5, 3, 12)),
        ("12h", True, ms(2024, 5, 10)),
    ],
)
def test_times_are_dates_moments_or_ages(text: str, end: bool, expected: int) -> None:
    assert parse_time(text, end=end, now=NOW) == expected


def test_an_unreadable_time_says_what_would_do() -> None:
    with pytest.raises(ValueError, match="try 2024-05-01"):
        parse_time("last tuesday", now=NOW)


def test_times_are_shown_in_utc_to_the_minute() -> None:
    assert format_time(ms(2024, 5, 1, 14, 3)) == "2024-05-01 14:03"
    assert format_time(None) == "-"
