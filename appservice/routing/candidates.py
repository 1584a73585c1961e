"""Choosing which experts of a group may be interrupted now, and why the others may not."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..config import ExpertConfig, GroupConfig
from ..db.presence import Presence


@dataclass(frozen=True, slots=True)
class Choice:
    """Experts to offer, in order, and the reason each other member was skipped."""

    offer: tuple[str, ...]
    skipped: dict[str, str]


def busy_word_in(status_msg: str | None, busy_words: tuple[str, ...]) -> str | None:
    """The first busy word found (as a whole word, any case) in a status message."""
    if not status_msg:
        return None
    for word in busy_words:
        if re.search(rf"(?<!\w){re.escape(word)}(?!\w)", status_msg, re.IGNORECASE):
            return word
    return None


def skip_reason(
    expert: str,
    group: GroupConfig,
    profile: ExpertConfig,
    presence: Presence | None,
    open_sessions: int,
) -> str | None:
    """Why this expert may not be interrupted now, or None if they may."""
    if presence is None:
        return "presence unknown (not in the roster room?)"
    if presence.presence not in group.routing.interrupt_presence:
        return f"presence is {presence.presence}"
    word = busy_word_in(presence.status_msg, group.routing.busy_words)
    if word is not None:
        return f"status says {word!r}"
    if open_sessions >= profile.max_sessions:
        return f"at capacity ({open_sessions} of {profile.max_sessions} sessions)"
    return None


def choose_experts(
    group: GroupConfig,
    members: Sequence[str],
    profiles: Mapping[str, ExpertConfig],
    presence: Mapping[str, Presence],
    open_sessions: Mapping[str, int],
    already_offered: set[str],
    agent: str,
) -> Choice:
    """Broadcast choice: every interruptible member not offered this session before."""
    offer: list[str] = []
    skipped: dict[str, str] = {}
    for expert in members:
        if expert in already_offered:
            continue
        if expert == agent:
            skipped[expert] = "is the agent asking"
            continue
        reason = skip_reason(
            expert, group, profiles[expert], presence.get(expert), open_sessions.get(expert, 0)
        )
        if reason is None:
            offer.append(expert)
        else:
            skipped[expert] = reason
    return Choice(tuple(offer), skipped)
