"""Transaction bodies, the homeserver token check and migration scripts, without a server."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from appservice.archive.chain import canonical_json
from appservice.db.database import split_sqlite_script
from appservice.matrix.server import check_hs_token
from appservice.matrix.transactions import BadTransaction, parse_body
from appservice.web.errors import APIError


def test_ephemeral_events_are_read_under_the_stable_and_the_msc2409_key() -> None:
    stable = parse_body(b'{"events": [], "ephemeral": [{"type": "m.presence"}]}')
    unstable = parse_body(b'{"de.sorunome.msc2409.ephemeral": [{"type": "m.presence"}]}')

    assert stable == unstable == ([], [{"type": "m.presence"}])


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"events": {}}', b"\xff\xfe"])
def test_bodies_that_are_not_transactions_are_refused(body: bytes) -> None:
    with pytest.raises(BadTransaction):
        parse_body(body)


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({}, "", 401),
        ({"Authorization": "Bearer wrong"}, "", 403),
        ({"Authorization": "Basic secret"}, "", 401),
        ({}, "?access_token=wrong", 403),
    ],
)
def test_token_check_refuses(headers: dict[str, str], query: str, status: int) -> None:
    request = make_mocked_request("PUT", f"/_matrix/app/v1/transactions/1{query}", headers=headers)

    with pytest.raises(APIError) as raised:
        check_hs_token(request, "secret")

    assert raised.value.status == status


def test_token_check_accepts_header_and_legacy_query() -> None:
    by_header = make_mocked_request("PUT", "/t/1", headers={"Authorization": "Bearer secret"})
    by_query = make_mocked_request("PUT", "/t/1?access_token=secret")

    check_hs_token(by_header, "secret")
    check_hs_token(by_query, "secret")


def test_sqlite_scripts_split_into_statements_keeping_trigger_bodies_whole() -> None:
    script = """
    -- comment
    CREATE TABLE a (x TEXT);

    CREATE TRIGGER t AFTER INSERT ON a BEGIN
        INSERT INTO a VALUES ('y');
    END;
    """

    statements = split_sqlite_script(script)

    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")


def test_json_that_orjson_refuses_is_read_with_lone_surrogates_replaced() -> None:
    body = b'{"events": [{"content": {"body": "half \\ud83d", "n": 1180591620717411303424}}]}'

    events, _ = parse_body(body)

    assert events == [{"content": {"body": "half \ufffd", "n": 2**70}}]


def test_canonical_json_sorts_keys_keeps_utf8_and_writes_any_integer() -> None:
    event = {"type": "m.room.message", "content": {"body": "Grüße 😀\n", "z": 1, "a": [2]}}
    reordered = {"content": {"a": [2], "z": 1, "body": "Grüße 😀\n"}, "type": "m.room.message"}
    expected = '{"content":{"a":[2],"body":"Grüße 😀\\n","z":1},"type":"m.room.message"}'

    assert canonical_json(event) == canonical_json(reordered) == expected
    assert canonical_json({"n": 2**70, "b": "é"}) == '{"b":"é","n":1180591620717411303424}'
