"""Reading the body of `POST /api/v1/requests`: every field checked, the first problem named."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from ..config import USER_ID_RE
from ..routing.opening import CustomerQuery
from ..routing.preferences import Request
from .api_archive import invalid
from .auth import Identity
from .errors import APIError

# Long enough for any question typed in a chat; the invite reason shortens it further.
MAX_QUESTION_LENGTH = 4000
MAX_TEXT_LENGTH = 255
MAX_PREFERENCES = 20
PREFERENCE_RE = re.compile(r"[\w.+-]{1,64}")
# Visible ASCII, as the Idempotency-Key draft (draft-ietf-httpapi-idempotency-key-header)
# suggests; UUIDs fit easily.
IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e]{1,255}")


@dataclass(frozen=True, slots=True)
class NewRequest:
    """A checked `POST /api/v1/requests` body."""

    agent: str | None
    group: str
    request: Request
    query: CustomerQuery

    def fingerprint(self, agent: str) -> str:
        """A digest of what was asked, to tell a retry from a different request."""
        content = {"agent": agent, "group": self.group, **asdict(self.request)}
        content["query"] = asdict(self.query)
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def missing(name: str) -> APIError:
    """A 400 that names the missing field."""
    return APIError(400, "M_MISSING_PARAM", f"{name} is required")


def field_text(body: dict[str, Any], name: str, max_length: int = MAX_TEXT_LENGTH) -> str | None:
    """An optional text field, stripped; absent, null or blank is None."""
    value = body.get(name.rpartition(".")[2])
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(name, "text")
    if "\x00" in value or len(value) > max_length:
        raise invalid(name, f"text of at most {max_length} characters, without NUL")
    return value.strip() or None


def required_text(body: dict[str, Any], name: str, max_length: int = MAX_TEXT_LENGTH) -> str:
    """A text field that must be there and not blank."""
    if body.get(name) is None:
        raise missing(name)
    value = field_text(body, name, max_length)
    if value is None:
        raise invalid(name, "non-empty text")
    return value


def field_user_id(body: dict[str, Any], name: str) -> str | None:
    """An optional Matrix user ID field."""
    value = field_text(body, name)
    if value is not None and not USER_ID_RE.fullmatch(value):
        raise invalid(name, "a Matrix user ID such as @alice:example.org")
    return value


def field_object(body: dict[str, Any], name: str) -> dict[str, Any]:
    """An optional JSON object field; absent or null is an empty one."""
    value = body.get(name.rpartition(".")[2])
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(name, "a JSON object")
    return value


def field_words(body: dict[str, Any], name: str) -> tuple[str, ...]:
    """An optional list of preference words such as languages or skills, lower-cased."""
    value = body.get(name.rpartition(".")[2])
    if value is None:
        return ()
    expected = f"a list of at most {MAX_PREFERENCES} words (letters, digits, . + - _)"
    if not isinstance(value, list) or len(value) > MAX_PREFERENCES:
        raise invalid(name, expected)
    if not all(isinstance(word, str) and PREFERENCE_RE.fullmatch(word) for word in value):
        raise invalid(name, expected)
    return tuple(dict.fromkeys(word.lower() for word in value))


def parse_new_request(body: dict[str, Any]) -> NewRequest:
    """Check every field of a request body; the first problem found is a 400 naming it."""
    agent = field_user_id(body, "agent")
    group = required_text(body, "group")
    question = required_text(body, "question", MAX_QUESTION_LENGTH)
    preferences = field_object(body, "preferences")
    expert = field_user_id(body, "expert")
    query = field_object(body, "query")

    request = Request(
        question=question,
        languages=field_words(preferences, "preferences.languages"),
        skills=field_words(preferences, "preferences.skills"),
        experts=(expert,) if expert else (),
    )
    customer_query = CustomerQuery(
        channel=field_text(query, "query.channel"),
        reference=field_text(query, "query.reference"),
        customer=field_text(query, "query.customer"),
    )
    return NewRequest(agent, group, request, customer_query)


def idempotency_key(request: web.Request) -> str | None:
    """The `Idempotency-Key` header, if sent."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise invalid("Idempotency-Key", "1 to 255 visible ASCII characters")
    return key


def acting_agent(identity: Identity, agent: str | None) -> str:
    """The agent a call is for: named by a service, the caller themself otherwise."""
    if identity.service:
        if agent is None:
            raise APIError(400, "M_MISSING_PARAM", "agent is required when calling as a service")
        return agent
    if agent is not None and agent != identity.user_id:
        raise APIError(
            403, "M_FORBIDDEN", "You may only act for yourself: leave out agent or give your own."
        )
    return identity.user_id
