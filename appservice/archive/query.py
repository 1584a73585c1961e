"""Reading a search box: words, "phrases", -exclusions and OR, made safe for each engine."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """A query as positive terms (words or phrases), exclusions, and where ORs stand."""

    clauses: tuple[tuple[str, ...], ...]  # OR-ed groups, each an AND of terms
    excluded: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not any(self.clauses)

    def words(self) -> list[str]:
        """Every positive word, for highlighting."""
        return [w for clause in self.clauses for term in clause for w in _WORD.findall(term)]


def parse_query(text: str) -> ParsedQuery:
    """Split the way web search boxes do; characters with no word in them are dropped."""
    clauses: list[list[str]] = [[]]
    excluded: list[str] = []
    for match in _TOKEN.finditer(text.replace("\x00", " ")):
        negated, phrase, word = match.group(1), match.group(2), match.group(3)
        if word is not None and word.upper() == "OR":
            clauses.append([])
            continue
        if word is not None and word.startswith("-") and len(word) > 1:
            negated, word = "-", word[1:]
        term = " ".join(_WORD.findall(phrase if phrase is not None else word or ""))
        if not term:
            continue
        (excluded if negated else clauses[-1]).append(term)
    return ParsedQuery(tuple(tuple(c) for c in clauses if c), tuple(excluded))


def _fts5_string(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def fts5_expression(query: ParsedQuery) -> str:
    """An FTS5 MATCH expression with every term quoted, so no input is read as syntax."""
    if query.empty:
        return ""
    clauses = [" AND ".join(_fts5_string(t) for t in clause) for clause in query.clauses]
    expression = " OR ".join(f"({clause})" for clause in clauses)
    for term in query.excluded:
        expression = f"({expression}) NOT {_fts5_string(term)}"
    return expression


def websearch_text(query: ParsedQuery) -> str:
    """Text for PostgreSQL's websearch_to_tsquery, rebuilt from the parsed terms."""
    if query.empty:
        return ""
    clauses = [" ".join(f'"{t}"' if " " in t else t for t in clause) for clause in query.clauses]
    text = " or ".join(clauses)
    return text + "".join(f' -"{t}"' for t in query.excluded)


def snippet_html(body: str, words: list[str], width: int = 80) -> str:
    """A window of the body around the first match; HTML-escaped, then matches in <mark>.

    Escaping happens on the text pieces before the <mark> tags are put around them, so
    nothing from the message can ever become markup.
    """
    if not words:
        cut = body[: width * 2]
        return html.escape(cut) + ("…" if len(body) > len(cut) else "")
    pattern = re.compile(
        "|".join(rf"(?<!\w){re.escape(w)}" for w in sorted(set(words), key=len, reverse=True)),
        re.IGNORECASE,
    )
    first = pattern.search(body)
    start = max(0, (first.start() if first else 0) - width)
    end = min(len(body), start + width * 2)
    window = body[start:end]

    pieces = ["…" if start > 0 else ""]
    position = 0
    for match in pattern.finditer(window):
        pieces.append(html.escape(window[position : match.start()]))
        pieces.append(f"<mark>{html.escape(match.group())}</mark>")
        position = match.end()
    pieces.append(html.escape(window[position:]))
    pieces.append("…" if end < len(body) else "")
    return "".join(pieces)
