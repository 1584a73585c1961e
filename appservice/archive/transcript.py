"""A session's archive read back as a conversation: edits applied, redactions marked."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mautrix.util.async_db import Connection

from ..db import events as events_db
from ..db import offers as offers_db
from ..db import sessions as sessions_db
from ..db.decisions import session_decisions
from .describe import describe_event, media_of, relation


@dataclass(slots=True)
class Entry:
    """One line of a transcript: a message with its history, or a system line."""

    event_id: str
    seq: int
    room_id: str
    sender: str
    type: str
    sent_at: int
    kind: str
    body: str | None = None
    msgtype: str | None = None
    edited: bool = False
    versions: list[dict[str, Any]] = field(default_factory=list)
    redacted: bool = False
    redacted_by: str | None = None
    redacted_at: int | None = None
    redaction_reason: str | None = None
    reactions: dict[str, list[str]] = field(default_factory=dict)
    membership: str | None = None
    target: str | None = None
    reason: str | None = None
    media: dict[str, Any] | None = None
    summary: str = ""
    content: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Transcript:
    """Session metadata, the entries to show, and every archived event for export."""

    session: dict[str, Any]
    entries: list[Entry]
    events: list[dict[str, Any]]


async def load_transcript(conn: Connection, session_id: int) -> Transcript | None:
    """Everything archived for a session, or None if there is no such session."""
    session = await sessions_db.get_session(conn, session_id)
    if session is None:
        return None
    offers = await offers_db.session_offers(conn, session_id)
    decisions = await session_decisions(conn, session_id)
    rows = await events_db.session_archive_rows(conn, session_id)
    raws = [json.loads(row["event_json"]) for row in rows]
    media = await events_db.media_rows(conn, [m["mxc"] for r in raws if (m := media_of(r))])

    metadata = {
        "session_id": session.id,
        "group": session.group_id,
        # After an escalation, the overflow group whose experts were asked last.
        "asked_group": session.asked_group,
        "agent": session.agent,
        "state": session.state,
        "question": session.question,
        "preferences": session.preferences,
        "room_id": session.room_id,
        "room_alias": session.room_alias,
        "dm_room_id": session.dm_room_id,
        "created_at": session.created_at,
        "claimed_at": session.claimed_at,
        "closed_at": session.closed_at,
        "closed_by": session.closed_by,
        "channel": session.channel,
        "reference": session.reference,
        "customer": session.customer,
        "offers": [
            {
                "expert": o.expert,
                "state": o.state,
                "offered_at": o.offered_at,
                "ended_at": o.ended_at,
                "reason": o.reason,
            }
            for o in offers
        ],
        "claimed_by": [o.expert for o in offers if o.state == "accepted"],
        "decisions": [
            {"at": d.decided_at, "summary": d.summary, "details": d.details} for d in decisions
        ],
    }
    return build_transcript(metadata, rows, raws, media)


def build_transcript(
    metadata: dict[str, Any], rows: list[Any], raws: list[dict[str, Any]], media: dict[str, Any]
) -> Transcript:
    """Fold edits, reactions and redactions into the entries they belong to."""
    by_id = {raw["event_id"]: (row, raw) for row, raw in zip(rows, raws, strict=True)}
    senders = {raw["event_id"]: raw["sender"] for raw in raws}
    edits: dict[str, list[dict[str, Any]]] = {}
    reactions: dict[str, dict[str, list[str]]] = {}
    redaction_reasons: dict[str, str | None] = {}

    for raw in raws:
        rel_type, target = relation(raw)
        if rel_type == "m.replace" and target and senders.get(target) == raw["sender"]:
            edits.setdefault(target, []).append(raw)
        elif rel_type == "m.annotation" and target and raw["type"] == "m.reaction":
            key = str(raw["content"]["m.relates_to"].get("key", ""))
            reactions.setdefault(target, {}).setdefault(key, []).append(raw["sender"])
        elif raw["type"] == "m.room.redaction":
            redacts = raw.get("redacts") or raw.get("content", {}).get("redacts")
            redaction_reasons[str(redacts)] = raw.get("content", {}).get("reason")

    entries = []
    folded = {e["event_id"] for versions in edits.values() for e in versions}
    for raw in raws:
        if raw["event_id"] in folded or raw["type"] == "m.reaction":
            continue
        if (
            raw["type"] == "m.room.redaction"
            and str(raw.get("redacts") or raw.get("content", {}).get("redacts")) in by_id
        ):
            continue
        row = by_id[raw["event_id"]][0]
        entry = _entry(row, raw, edits.get(raw["event_id"], []), media)
        entry.reactions = reactions.get(raw["event_id"], {})
        entry.redaction_reason = redaction_reasons.get(raw["event_id"])
        entries.append(entry)

    replaced_by = {target: versions[-1]["event_id"] for target, versions in edits.items()}
    events = [_export_event(row, raw, replaced_by) for row, raw in zip(rows, raws, strict=True)]
    return Transcript(metadata, entries, events)


def _version(event: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": event["event_id"],
        "body": content.get("body"),
        "sent_at": event.get("origin_server_ts"),
    }


def _entry(
    row: Any, raw: dict[str, Any], edits: list[dict[str, Any]], media: dict[str, Any]
) -> Entry:
    raw_content = raw.get("content")
    content: dict[str, Any] = raw_content if isinstance(raw_content, dict) else {}
    kind, summary = describe_event(raw)
    entry = Entry(
        event_id=raw["event_id"],
        seq=row["seq"],
        room_id=raw["room_id"],
        sender=raw["sender"],
        type=raw["type"],
        sent_at=row["origin_ts"],
        kind=kind,
        summary=summary,
        content=content,
        redacted=row["redacted_by"] is not None,
        redacted_by=row["redacted_by"],
        redacted_at=row["redacted_at"],
    )
    if kind == "membership":
        entry.membership = content.get("membership")
        entry.target = raw.get("state_key")
        entry.reason = content.get("reason")
    if kind == "message":
        _fill_message(entry, raw, content, edits, media)
    return entry


def _fill_message(
    entry: Entry,
    raw: dict[str, Any],
    content: dict[str, Any],
    edits: list[dict[str, Any]],
    media: dict[str, Any],
) -> None:
    versions = [_version(raw, content)]
    for edit in edits:
        new = edit.get("content", {}).get("m.new_content")
        versions.append(_version(edit, new if isinstance(new, dict) else {}))
    entry.versions = versions
    entry.edited = len(versions) > 1
    entry.body = versions[-1]["body"] if isinstance(versions[-1]["body"], str) else None
    entry.msgtype = content.get("msgtype")
    file = media_of(raw)
    if file is not None:
        stored = media.get(file["mxc"])
        file["sha256"] = stored["sha256"] if stored is not None else None
        entry.media = file


def _export_event(row: Any, raw: dict[str, Any], replaced_by: dict[str, str]) -> dict[str, Any]:
    rel_type, target = relation(raw)
    return {
        "event_id": raw["event_id"],
        "room_id": raw["room_id"],
        "type": raw["type"],
        "sender": raw["sender"],
        "state_key": raw.get("state_key"),
        "sent_at": row["origin_ts"],
        "content": raw.get("content", {}),
        "redacted": row["redacted_by"] is not None,
        "redacted_by": row["redacted_by"],
        "redacted_at": row["redacted_at"],
        "edit_of": target if rel_type == "m.replace" else None,
        "replaced_by": replaced_by.get(raw["event_id"]),
        "chain_index": row["chain_index"],
        "hash": row["hash"],
    }


def export_json(transcript: Transcript) -> dict[str, Any]:
    """The JSON export: session metadata and one entry per archived event."""
    return {"session": transcript.session, "events": transcript.events}
