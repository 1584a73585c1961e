"""Business rules: a Python callable or an HTTP endpoint that filters and orders candidates.

A group's `routing.rule` (`module:function`) and `routing.webhook` (a URL) each get the request
and the experts who could be offered it, and answer with the user IDs to offer, in order. The
answer can only remove and reorder: IDs that were not candidates are ignored. A rule that
fails, answers nonsense or takes longer than `routing.rule_timeout` is logged and the built-in
order is used instead, so a broken rule never stops routing.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from ..config import Config, GroupConfig
from ..errors import ConfigError, ConfigProblem

log = logging.getLogger("backline.routing.rules")

RuleFunction = Callable[[dict[str, Any], list[dict[str, Any]]], Any]


@dataclass(frozen=True, slots=True)
class Candidate:
    """An expert as a rule sees them."""

    user_id: str
    open_sessions: int
    max_sessions: int
    languages: list[str]
    skills: list[str]
    presence: str | None
    status_msg: str | None


@dataclass(frozen=True, slots=True)
class Ranking:
    """A rule's answer: the experts to offer in order, or None with the reason it failed."""

    order: list[str] | None
    notes: list[str]


def load_rule(spec: str, key: str) -> RuleFunction:
    """Import `module:function`; a missing module or function is a config error."""
    module_name, _, name = spec.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as e:
        problem = ConfigProblem(key, f"cannot be loaded ({e})", "an importable module:function")
        raise ConfigError([problem]) from e
    if not callable(function):
        raise ConfigError([ConfigProblem(key, f"{spec!r} is not callable", "a function")])
    return function  # type: ignore[no-any-return]


def _checked(answer: Any, candidates: Sequence[Candidate]) -> list[str]:
    """The answer as a list of candidate IDs; raises ValueError if it is not a list of IDs."""
    if isinstance(answer, dict):
        answer = answer.get("experts")
    if not isinstance(answer, list) or not all(isinstance(x, str) for x in answer):
        raise ValueError("the answer is not a list of user IDs")
    known = {candidate.user_id for candidate in candidates}
    return [user for user in dict.fromkeys(answer) if user in known]


class RuleRunner:
    """Runs each group's rules; built at start so that a bad `module:function` stops it."""

    def __init__(self, config: Config, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.functions = self.load_functions(config)

    @staticmethod
    def load_functions(config: Config) -> dict[str, RuleFunction]:
        """Each group's rule function, by group; raises ConfigError naming a bad one."""
        return {
            group.id: load_rule(group.routing.rule, f"groups[{index}].routing.rule")
            for index, group in enumerate(config.groups)
            if group.routing.rule
        }

    def has_rules(self, group: GroupConfig) -> bool:
        return group.id in self.functions or group.routing.webhook is not None

    async def rank(
        self, group: GroupConfig, request: dict[str, Any], candidates: Sequence[Candidate]
    ) -> Ranking:
        """Apply the group's rule, then its webhook; each failure keeps the order before it."""
        order = [candidate.user_id for candidate in candidates]
        notes: list[str] = []
        steps: list[tuple[str, Callable[[list[dict[str, Any]]], Any]]] = []
        if (function := self.functions.get(group.id)) is not None:
            steps.append(("rule", lambda cands: self._call(function, request, cands)))
        if (url := group.routing.webhook) is not None:
            steps.append(("webhook", lambda cands: self._post(url, request, cands, group)))

        for name, step in steps:
            current = [c for c in candidates if c.user_id in set(order)]
            try:
                async with asyncio.timeout(group.routing.rule_timeout):
                    answer = await step([asdict(c) for c in current])
                order = _checked(answer, current)
                notes.append(f"{name} chose {len(order)} of {len(current)}")
            except Exception as e:  # a rule is outside code: any failure falls back
                reason = "timed out" if isinstance(e, TimeoutError) else f"failed: {e}"
                log.warning(
                    "Business %s of group %s %s; using the built-in order",
                    name,
                    group.id,
                    reason,
                    extra={"group": group.id, "session": request.get("session_id")},
                )
                notes.append(f"{name} {reason}; built-in order used")
        return Ranking(order if steps else None, notes)

    @staticmethod
    async def _call(
        function: RuleFunction, request: dict[str, Any], candidates: list[dict[str, Any]]
    ) -> Any:
        if inspect.iscoroutinefunction(function):
            return await function(request, candidates)
        # A plain function may block (a lookup in another system): keep the loop free.
        return await asyncio.to_thread(function, request, candidates)

    async def _post(
        self,
        url: str,
        request: dict[str, Any],
        candidates: list[dict[str, Any]],
        group: GroupConfig,
    ) -> Any:
        body = {"group": group.id, "request": request, "candidates": candidates}
        async with self.http.post(url, json=body) as response:
            if response.status != 200:
                raise ValueError(f"the endpoint answered HTTP {response.status}")
            return await response.json(content_type=None)
