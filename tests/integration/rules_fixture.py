"""Business rules that the integration tests configure as `routing.rule`."""

from __future__ import annotations

from typing import Any


def prefer_last(request: dict[str, Any], candidates: list[dict[str, Any]]) -> list[str]:
    """Ask the candidates in reverse order."""
    return [candidate["user_id"] for candidate in reversed(candidates)]


def broken(request: dict[str, Any], candidates: list[dict[str, Any]]) -> list[str]:
    """A rule whose outside system is down."""
    raise RuntimeError("the CRM is unreachable")
