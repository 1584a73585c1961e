"""Backline's exception tree; user-facing errors carry a plain hint."""

from __future__ import annotations

from dataclasses import dataclass


class BacklineError(Exception):
    """Base of every error Backline raises on purpose."""

    hint: str = ""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint or self.hint

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message}\n  hint: {self.hint}" if self.hint else message


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong in the config: where, what, and what was expected."""

    key: str
    problem: str
    expected: str

    def __str__(self) -> str:
        return f"{self.key}: {self.problem} (expected {self.expected})"


class ConfigError(BacklineError):
    """The config file cannot be used; lists every problem found at once."""

    def __init__(self, problems: list[ConfigProblem], path: str = "") -> None:
        self.problems = problems
        where = f" in {path}" if path else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s){where}:\n{lines}")


class DatabaseError(BacklineError):
    """The database is unreachable, or its schema does not fit this Backline."""


class MatrixError(BacklineError):
    """The homeserver refused or failed a request Backline needed."""
