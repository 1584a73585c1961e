"""Choosing which experts of a group may be interrupted now, and why the others may not."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..config import ExpertConfig, GroupConfig, at_work
from ..db.presence import Presence


@dataclass(frozen=True, slots=True)
class Choice:
    """Experts who may be offered the request now, in order, and why each other was skipped."""

    offer: tuple[str, ...]
    skipped: dict[str, str]


@dataclass(frozen=True, slots=True)
class Situation:
    """What is known of the experts right now: settings, presence and open sessions."""

    profiles: Mapping[str, ExpertConfig]
    presence: Mapping[str, Presence]
    loads: Mapping[str, int]
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


def busy_word_in(status_msg: str | None, busy_words: tuple[str, ...]) -> str | None:
    """The first busy word found (as a whole word, any case) in a status message."""
    if not status_msg:
        return None
    for word in busy_words:
        if re.search(rf"(?<!\w){re.escape(word)}(?!\w)", status_msg, re.IGNORECASE):
            return word
    return None


def skip_reason(expert: str, group: GroupConfig, situation: Situation) -> str | None:
    """Why this expert may not be interrupted now, or None if they may."""
    profile = situation.profiles.get(expert, ExpertConfig())
    presence = situation.presence.get(expert)
    if presence is None:
        return "presence unknown (not in the roster room?)"
    if presence.presence not in group.routing.interrupt_presence:
        return f"presence is {presence.presence}"
    word = busy_word_in(presence.status_msg, group.routing.busy_words)
    if word is not None:
        return f"status says {word!r}"
    load = situation.loads.get(expert, 0)
    if load >= profile.max_sessions:
        return f"at capacity ({load} of {profile.max_sessions} sessions)"
    if not at_work(profile.hours, profile.timezone, situation.now):
        spans = ", ".join(span.text for span in profile.hours)
        return f"off hours (works {spans}, {profile.timezone or 'UTC'})"
    return None


def choose_experts(
    group: GroupConfig,
    members: Sequence[str],
    situation: Situation,
    already_offered: set[str],
    agent: str,
) -> Choice:
    """Every interruptible member not offered this session before, in member order."""
    offer: list[str] = []
    skipped: dict[str, str] = {}
    for expert in members:
        if expert in already_offered:
            continue
        if expert == agent:
            skipped[expert] = "is the agent asking"
            continue
        reason = skip_reason(expert, group, situation)
        if reason is None:
            offer.append(expert)
        else:
            skipped[expert] = reason
    return Choice(tuple(offer), skipped)
