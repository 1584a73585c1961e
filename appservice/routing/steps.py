"""The steps a request goes through until someone takes it.

A request that names an expert goes to them first; one with `lang:`/`skill:` preferences goes
to the matching experts; then to the whole group; then to each overflow group in turn. Each
step lasts its timeout, and is skipped at once when it has nobody left to ask.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..config import Config, ExpertConfig, GroupConfig

StepKind = Literal["named", "preferred", "group"]


@dataclass(frozen=True, slots=True)
class Preferences:
    """What the agent asked for besides the question."""

    experts: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> Preferences:
        return cls(
            tuple(stored.get("experts", ())),
            tuple(stored.get("languages", ())),
            tuple(stored.get("skills", ())),
        )

    def describe(self) -> str:
        """The preferences as the agent wrote them: `lang:de skill:refunds`."""
        words = [f"lang:{lang}" for lang in self.languages]
        words += [f"skill:{skill}" for skill in self.skills]
        return " ".join(words)


@dataclass(frozen=True, slots=True)
class Step:
    """Ask `kind` experts of a group for at most `timeout` seconds (None: no limit)."""

    group_id: str
    kind: StepKind
    timeout: float | None


def plan_steps(config: Config, group: GroupConfig, preferences: Preferences) -> list[Step]:
    """Every step of a request to `group`, in order."""
    routing = group.routing
    steps: list[Step] = []
    if preferences.experts:
        if not routing.named_fallback:
            return [Step(group.id, "named", routing.request_timeout)]
        steps.append(Step(group.id, "named", routing.offer_timeout or routing.request_timeout))
    if preferences.languages or preferences.skills:
        steps.append(Step(group.id, "preferred", routing.relax_after))
    steps.append(Step(group.id, "group", routing.request_timeout))

    seen = {group.id}
    overflow = config.group(routing.overflow) if routing.overflow else None
    while overflow is not None and overflow.id not in seen:
        steps.append(Step(overflow.id, "group", overflow.routing.request_timeout))
        seen.add(overflow.id)
        nxt = overflow.routing.overflow
        overflow = config.group(nxt) if nxt else None
    return steps


def mismatch(profile: ExpertConfig, preferences: Preferences) -> str | None:
    """Why an expert does not match the preferred languages and skills, or None."""
    missing = [f"lang:{x}" for x in preferences.languages if x not in profile.languages]
    missing += [f"skill:{x}" for x in preferences.skills if x not in profile.skills]
    return f"preference mismatch (no {', '.join(missing)})" if missing else None


def step_pool(
    step: Step,
    members: Sequence[str],
    profiles: Mapping[str, ExpertConfig],
    preferences: Preferences,
) -> tuple[list[str], dict[str, str]]:
    """Who the step may ask (available or not), and why the other members are left out."""
    if step.kind == "group":
        return list(members), {}
    if step.kind == "named":
        pool = [expert for expert in preferences.experts if expert in members]
        left_out = {m: "not the expert named in the request" for m in members if m not in pool}
        return pool, left_out
    pool, left_out = [], {}
    for member in members:
        reason = mismatch(profiles.get(member, ExpertConfig()), preferences)
        if reason is None:
            pool.append(member)
        else:
            left_out[member] = reason
    return pool, left_out
