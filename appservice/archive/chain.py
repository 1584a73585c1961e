"""Hash chains over archived events: each row's hash covers the previous hash and the event.

Each room's events form one chain, in the order the homeserver delivered them (which is the
room's order). A session's archive is its room's chain; the request that opened it sits in
the chain of the agent's DM with the group user.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

GENESIS = "0" * 64

# For what orjson cannot write (integers beyond 64 bits): the same form, slower. Events come
# from parsed JSON, so they cannot hold cycles and the check for them is skipped.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False
)


def canonical_json(event: dict[str, Any]) -> str:
    """Sorted keys, no spaces, UTF-8 kept: the same event always gives the same text.

    The text is stored beside its hash, and verifying reads it back rather than writing it
    again, so the encoder may change between versions without breaking a chain.
    """
    try:
        return orjson.dumps(event, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        return _CANONICAL.encode(event)


def link_hash(prev_hash: str, canonical: str) -> str:
    """The hash of one link: SHA-256 over the previous hash, a newline, and the event JSON."""
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def searchable_text(event: dict[str, Any]) -> str | None:
    """The text a message is found by: the new text for an edit, else its body."""
    if event.get("type") != "m.room.message":
        return None
    content = event.get("content")
    if not isinstance(content, dict):
        return None
    new_content = content.get("m.new_content")
    if isinstance(new_content, dict) and isinstance(new_content.get("body"), str):
        return str(new_content["body"])
    body = content.get("body")
    return body if isinstance(body, str) and body else None


def redacted_event_id(event: dict[str, Any]) -> str | None:
    """For a redaction, the event it redacts (top level before room v11, in content since)."""
    if event.get("type") != "m.room.redaction":
        return None
    content = event.get("content")
    target = event.get("redacts")
    if target is None and isinstance(content, dict):
        target = content.get("redacts")
    return target if isinstance(target, str) else None
