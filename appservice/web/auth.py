"""Who is calling: Matrix access tokens checked with the homeserver, and config API tokens.

People send `Authorization: Bearer <their Matrix access token>`; the homeserver's
`/account/whoami` (spec: Client-Server API, "Current account information") says whose it is.
Customer interaction systems send one of `api.tokens` instead and act as a service.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from ..config import ApiToken, Config, Role
from ..permissions import role_for
from .errors import APIError

log = logging.getLogger("backline.web.auth")

# A token revoked at the homeserver keeps working here for at most this long.
CACHE_SECONDS = 60.0
CACHE_SIZE = 1024
WHOAMI_TIMEOUT = aiohttp.ClientTimeout(total=10)
# The role a customer interaction system acts with: it asks on behalf of agents.
SERVICE_ROLE: Role = "agent"


@dataclass(frozen=True, slots=True)
class Identity:
    """The caller of a request, and the role `permissions` gives it."""

    user_id: str
    role: Role
    # True for config API tokens: a system, not a person who signed in.
    service: bool = False


def token_key(token: str) -> str:
    """The cache key of a token: its SHA-256, so that no token is kept in memory longer."""
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer` header, if any.

    Tokens in the query string are not accepted: URLs end up in proxy and access logs.
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def match_api_token(tokens: tuple[ApiToken, ...], given: str) -> ApiToken | None:
    """The config API token equal to `given`, compared in constant time."""
    found: ApiToken | None = None
    given_bytes = given.encode()
    # Every token is compared, so the time taken does not tell which one (if any) matched.
    for candidate in tokens:
        if candidate.token and hmac.compare_digest(candidate.token.encode(), given_bytes):
            found = candidate
    return found


@dataclass(frozen=True, slots=True)
class _Known:
    user_id: str
    is_guest: bool
    expires: float


class TokenCache:
    """Recent whoami answers keyed by token hash; bounded, oldest dropped first."""

    def __init__(
        self,
        ttl: float = CACHE_SECONDS,
        size: int = CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._entries: OrderedDict[str, _Known] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[str]:
        """The keys held, for inspection: token hashes only."""
        return list(self._entries)

    def get(self, token: str) -> tuple[str, bool] | None:
        """User ID and guest flag of a recently checked token, if still fresh."""
        key = token_key(token)
        known = self._entries.get(key)
        if known is None:
            return None
        if known.expires <= self.clock():
            del self._entries[key]
            return None
        return known.user_id, known.is_guest

    def put(self, token: str, user_id: str, is_guest: bool) -> None:
        """Remember whose token this is for `ttl` seconds."""
        key = token_key(token)
        self._entries.pop(key, None)
        self._entries[key] = _Known(user_id, is_guest, self.clock() + self.ttl)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


class TokenAuthenticator:
    """Turns a request's bearer token into an Identity, or answers 401/403/503."""

    def __init__(
        self, config: Config, http: aiohttp.ClientSession, cache: TokenCache | None = None
    ) -> None:
        self.config = config
        self.http = http
        self.cache = cache or TokenCache()
        self.whoami_url = (
            config.homeserver.address.rstrip("/") + "/_matrix/client/v3/account/whoami"
        )

    async def identify(self, request: web.Request, *, allow_api_tokens: bool) -> Identity:
        """The caller; API tokens are refused (403) where only people may act."""
        token = bearer_token(request)
        if token is None:
            raise APIError(401, "M_MISSING_TOKEN", "send an Authorization: Bearer token")

        api_token = match_api_token(self.config.api_tokens, token)
        if api_token is not None:
            if not allow_api_tokens:
                raise APIError(403, "M_FORBIDDEN", "API tokens cannot be used here; sign in")
            return Identity(user_id=f"api:{api_token.name}", role=SERVICE_ROLE, service=True)

        user_id, is_guest = await self.whoami(token)
        # Guests have no account to hold a role, whatever their domain is granted.
        role: Role = "none" if is_guest else role_for(user_id, self.config)
        return Identity(user_id=user_id, role=role)

    async def whoami(self, token: str) -> tuple[str, bool]:
        """Whose Matrix access token this is, from the cache or the homeserver."""
        known = self.cache.get(token)
        if known is not None:
            return known

        answer = await self._ask_homeserver(token)
        user_id = answer.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            log.warning("The homeserver's whoami answer has no user_id")
            raise APIError(503, "M_UNKNOWN", "the homeserver gave an unusable answer; try again")
        is_guest = answer.get("is_guest") is True
        self.cache.put(token, user_id, is_guest)
        return user_id, is_guest

    async def _ask_homeserver(self, token: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with self.http.get(
                self.whoami_url, headers=headers, timeout=WHOAMI_TIMEOUT
            ) as response:
                if response.status in (401, 403):
                    raise APIError(
                        401, "M_UNKNOWN_TOKEN", "the homeserver does not know this token"
                    )
                if response.status != 200:
                    log.warning("The homeserver answered whoami with %s", response.status)
                    raise APIError(503, "M_UNKNOWN", "the homeserver failed; try again")
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            log.warning("Could not ask the homeserver whoami: %s", type(e).__name__)
            raise APIError(503, "M_UNKNOWN", "the homeserver cannot be reached; try again") from e
        if not isinstance(answer, dict):
            raise APIError(503, "M_UNKNOWN", "the homeserver gave an unusable answer; try again")
        return answer


def require(identity: Identity, predicate: Callable[[Role], bool], what: str) -> None:
    """Answer 403 unless the identity's role allows `what` (e.g. "search the archive")."""
    if not predicate(identity.role):
        raise APIError(
            403, "M_FORBIDDEN", f"You may not {what}. Ask your administrator for access."
        )
