"""Bearer tokens: cache keyed by hash, API tokens compared exactly, roles required."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from appservice.config import ApiToken, Config, config_from_dict
from appservice.demo.synapse import free_port
from appservice.permissions import can_search_archive
from appservice.web.auth import (
    Identity,
    TokenAuthenticator,
    TokenCache,
    bearer_token,
    match_api_token,
    require,
    token_key,
)
from appservice.web.errors import APIError

TOKENS = {"as_token": "a" * 43, "hs_token": "h" * 43}
CRM_TOKEN = "crm-" + "c" * 40
PBX_TOKEN = "pbx-" + "p" * 40


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_config(**extra: Any) -> Config:
    return config_from_dict({"appservice": TOKENS, **extra})


@pytest.fixture
async def closed_http() -> AsyncIterator[aiohttp.ClientSession]:
    """A session that fails any request: proves the homeserver was not asked."""
    session = aiohttp.ClientSession()
    await session.close()
    yield session


def request_with(authorization: str | None) -> Any:
    headers = {} if authorization is None else {"Authorization": authorization}
    return make_mocked_request("GET", "/api/v1/sessions", headers=headers)


# region cache


def test_cache_keeps_only_the_hash_of_a_token() -> None:
    cache = TokenCache()

    cache.put("secret-token", "@carol:localhost", is_guest=False)

    assert cache.keys() == [hashlib.sha256(b"secret-token").hexdigest()]
    assert cache.keys() == [token_key("secret-token")]
    assert "secret-token" not in repr(cache.__dict__)
    assert cache.get("secret-token") == ("@carol:localhost", False)


def test_cache_forgets_a_token_after_its_lifetime() -> None:
    clock = Clock()
    cache = TokenCache(ttl=60, clock=clock)
    cache.put("token", "@carol:localhost", is_guest=False)

    clock.now += 59
    fresh = cache.get("token")
    clock.now += 1
    stale = cache.get("token")

    assert fresh == ("@carol:localhost", False)
    assert stale is None
    assert len(cache) == 0


def test_cache_drops_the_oldest_token_when_full() -> None:
    cache = TokenCache(size=2)
    cache.put("one", "@one:localhost", is_guest=False)
    cache.put("two", "@two:localhost", is_guest=False)

    cache.put("one", "@one:localhost", is_guest=False)
    cache.put("three", "@three:localhost", is_guest=False)

    assert len(cache) == 2
    assert cache.get("two") is None
    assert cache.get("one") is not None
    assert cache.get("three") is not None


def test_different_tokens_have_different_keys() -> None:
    assert token_key("a") != token_key("b")
    assert len(token_key("")) == 64


# endregion
# region API tokens and headers


def test_api_token_matches_only_exactly() -> None:
    tokens = (ApiToken("crm", CRM_TOKEN), ApiToken("pbx", PBX_TOKEN))

    assert match_api_token(tokens, CRM_TOKEN) == tokens[0]
    assert match_api_token(tokens, PBX_TOKEN) == tokens[1]
    for near_miss in (CRM_TOKEN[:-1], CRM_TOKEN + "x", CRM_TOKEN.upper(), "", " " + CRM_TOKEN):
        assert match_api_token(tokens, near_miss) is None


def test_an_empty_configured_token_matches_nothing() -> None:
    assert match_api_token((ApiToken("broken", ""),), "") is None


@pytest.mark.parametrize(
    ("authorization", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("Bearer  abc ", "abc"),
        ("Bearer ", None),
        ("Basic abc", None),
        ("abc", None),
        (None, None),
    ],
)
def test_bearer_token_is_read_from_the_header_only(
    authorization: str | None, token: str | None
) -> None:
    assert bearer_token(request_with(authorization)) == token


def test_a_token_in_the_query_string_is_ignored() -> None:
    request = make_mocked_request("GET", "/api/v1/sessions?access_token=abc")

    assert bearer_token(request) is None


# endregion
# region identify and require


async def test_missing_token_is_401_without_asking_the_homeserver(
    closed_http: aiohttp.ClientSession,
) -> None:
    auth = TokenAuthenticator(make_config(), closed_http)

    with pytest.raises(APIError) as raised:
        await auth.identify(request_with(None), allow_api_tokens=True)

    assert (raised.value.status, raised.value.errcode) == (401, "M_MISSING_TOKEN")


async def test_api_token_gives_a_service_identity_where_allowed(
    closed_http: aiohttp.ClientSession,
) -> None:
    config = make_config(api={"tokens": [{"name": "crm", "token": CRM_TOKEN}]})
    auth = TokenAuthenticator(config, closed_http)

    identity = await auth.identify(request_with(f"Bearer {CRM_TOKEN}"), allow_api_tokens=True)

    assert identity == Identity(user_id="api:crm", role="agent", service=True)
    assert not can_search_archive(identity.role)


async def test_api_token_is_refused_where_only_people_may_act(
    closed_http: aiohttp.ClientSession,
) -> None:
    config = make_config(api={"tokens": [{"name": "crm", "token": CRM_TOKEN}]})
    auth = TokenAuthenticator(config, closed_http)

    with pytest.raises(APIError) as raised:
        await auth.identify(request_with(f"Bearer {CRM_TOKEN}"), allow_api_tokens=False)

    assert (raised.value.status, raised.value.errcode) == (403, "M_FORBIDDEN")


async def test_cached_person_gets_the_role_from_permissions(
    closed_http: aiohttp.ClientSession,
) -> None:
    config = make_config(permissions={"*": "agent", "@carol:localhost": "compliance"})
    auth = TokenAuthenticator(config, closed_http)
    auth.cache.put("carol-token", "@carol:localhost", is_guest=False)

    identity = await auth.identify(request_with("Bearer carol-token"), allow_api_tokens=False)

    assert identity == Identity(user_id="@carol:localhost", role="compliance")


async def test_guests_have_no_role(closed_http: aiohttp.ClientSession) -> None:
    config = make_config(permissions={"*": "compliance"})
    auth = TokenAuthenticator(config, closed_http)
    auth.cache.put("guest-token", "@123:localhost", is_guest=True)

    identity = await auth.identify(request_with("Bearer guest-token"), allow_api_tokens=False)

    assert identity.role == "none"


async def test_unreachable_homeserver_is_503() -> None:
    # Nothing listens on a port just found free: the connection is refused, as in an outage.
    config = make_config(homeserver={"address": f"http://127.0.0.1:{free_port()}"})
    async with aiohttp.ClientSession() as http:
        auth = TokenAuthenticator(config, http)

        with pytest.raises(APIError) as raised:
            await auth.identify(request_with("Bearer some-token"), allow_api_tokens=False)

    assert raised.value.status == 503
    assert len(auth.cache) == 0


def test_require_refuses_a_role_with_a_plain_message() -> None:
    with pytest.raises(APIError) as raised:
        require(Identity("@dave:localhost", "agent"), can_search_archive, "search the archive")

    assert (raised.value.status, raised.value.errcode) == (403, "M_FORBIDDEN")
    assert raised.value.error.startswith("You may not search the archive.")


def test_require_lets_a_permitted_role_through() -> None:
    require(Identity("@carol:localhost", "compliance"), can_search_archive, "search the archive")


# endregion
