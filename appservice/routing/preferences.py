"""Reading a request: the question, and preferences such as `lang:de` or a named expert."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_WORD = re.compile(r"(?<!\S)(lang|language|skill):([\w.+-]+)(?!\S)", re.IGNORECASE)
_MENTION = re.compile(r"(?<!\S)@[a-z0-9._=/+-]+:[a-zA-Z0-9.-]+(?::\d+)?(?!\S)")


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed request: the question and hard preferences."""

    question: str
    languages: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    experts: tuple[str, ...] = field(default=())

    def preferences(self) -> dict[str, Any]:
        """Preferences as stored with the session."""
        return {
            "languages": list(self.languages),
            "skills": list(self.skills),
            "experts": list(self.experts),
        }


def parse_request(text: str, mention_pills: tuple[str, ...] = ()) -> Request:
    """Split a message into the question and its `lang:`/`skill:` words and expert mentions.

    `mention_pills` are user IDs the client put in `m.mentions`; a mention written as a bare
    user ID in the text counts too.
    """
    languages = [m.group(2).lower() for m in _WORD.finditer(text) if m.group(1)[0] in "lL"]
    skills = [m.group(2).lower() for m in _WORD.finditer(text) if m.group(1)[0] in "sS"]
    experts = list(dict.fromkeys([*mention_pills, *_MENTION.findall(text)]))

    question = _WORD.sub("", text)
    question = _MENTION.sub("", question)
    question = re.sub(r"[ \t]+", " ", question).strip()
    return Request(question, tuple(languages), tuple(skills), tuple(experts))
