"""What Backline says to people, in one place so the wording stays consistent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..config import GroupConfig

if TYPE_CHECKING:
    from .steps import Preferences, Step

BOT_HELP = (
    "I route questions to expert groups.\n"
    "• !groups: the groups you may ask, with how many experts are available now\n"
    "• !ask GROUP your question: ask a group from here (lang:de, skill:refunds and an\n"
    "  expert's user ID in the question are preferences)\n"
    "• !cancel: withdraw your requests that nobody has taken yet\n"
    "• Or message a group's user (listed by !groups) with your question.\n"
    "• !help: this text"
)

SEARCH_HELP = "• !search WORDS: the newest archived messages that contain these words"

GROUP_HELP = (
    "Write your question here and I will find an expert of {group}.\n"
    "Add lang:de or skill:refunds to ask for a language or a skill, or mention an expert by "
    "their user ID to ask them first.\n"
    "• !groups: the groups you may ask\n"
    "• !cancel: withdraw your request before anyone takes it\n"
    "• !help: this text\n"
    "In a session room: !close ends the session."
)

SESSION_HELP = (
    "• !close: end this session (the agent or an expert who took it)\n"
    "• !cancel: withdraw the request before anyone takes it (the agent)\n"
    "• !help: this text"
)


def bot_help(may_search: bool) -> str:
    """The directory bot's help; `!search` is listed only to those who may use it."""
    if not may_search:
        return BOT_HELP
    # Before the last line, which is always `!help`.
    head, _, last = BOT_HELP.rpartition("\n")
    return f"{head}\n{SEARCH_HELP}\n{last}"


def search_refused() -> str:
    """`!search` from someone who may not search the archive."""
    return (
        "Sorry, only compliance officers may search the archive. "
        "Ask your administrator if you need access."
    )


def greeting(group: GroupConfig) -> str:
    """First words in a new DM with a group user."""
    return GROUP_HELP.format(group=group.displayname)


def refused(group_name: str) -> str:
    """Reason given when someone may not ask a group."""
    return f"You are not allowed to ask {group_name}. Ask your administrator for access."


def groups_list(lines: Sequence[tuple[GroupConfig, str, int]]) -> str:
    """`!groups` answer: (group, its user ID, available experts) per line."""
    if not lines:
        return "There are no expert groups you may ask."
    rows = [f"• {g.displayname} ({mxid}): {n} available now" for g, mxid, n in lines]
    return "Groups you may ask:\n" + "\n".join(rows)


def question_posted(agent: str, question: str) -> str:
    """The question as posted at the top of a session room."""
    return f"Question from {agent}:\n\n{question}"


def invite_reason(group: GroupConfig, agent: str, question: str) -> str:
    """The invite reason an expert sees: who asks what."""
    short = question if len(question) <= 300 else question[:297] + "..."
    return f"{group.displayname}: {agent} asks: {short}"


def offered(count: int, group: GroupConfig, room: str) -> str:
    """Told to the agent in the DM once the request is offered."""
    experts = "expert" if count == 1 else "experts"
    return f"I asked {count} {experts} of {group.displayname}. Your session room: {room}"


def waiting(group: GroupConfig, room: str) -> str:
    """Told to the agent when nobody can be interrupted now."""
    return (
        f"No expert of {group.displayname} is available right now. Your request waits and "
        f"goes to the first one who becomes available. Session room: {room}"
    )


def already_open(group: GroupConfig, room: str) -> str:
    """A new message while a session with this group is open."""
    return (
        f"Your request to {group.displayname} is still open in {room}. Write there, "
        "or send !close there to end it before asking again."
    )


def claimed(experts: list[str]) -> str:
    """Told to the agent when the session is claimed."""
    return f"{' and '.join(experts)} joined and will help you."


def withdrawn(claimer: str) -> str:
    """Kick reason for the other offers."""
    return f"{claimer} took this session"


def withdrawn_cancelled(by: str) -> str:
    """Kick reason when the agent withdrew the request."""
    return f"{by} closed the request before anyone took it"


def closed(by: str) -> str:
    """Posted in the session room on `!close`."""
    return f"{by} closed this session. The room stays; the archive keeps everything said here."


def not_allowed_to_close() -> str:
    """`!close` from someone other than the agent or a claimer."""
    return "Only the agent or an expert who took this session can close it."


def empty_question() -> str:
    """A request with preferences but no question."""
    return "Please write your question too, not only preferences."


def search_not_private() -> str:
    """`!search` in a room where others could read the answer."""
    return (
        "I answer !search only in a chat between you and me: other people are in this room. "
        "Start a new direct chat with me, or use the archive page."
    )


def progress(expert: str, joined: int, needed: int) -> str:
    """An acceptance that does not yet claim a session that needs several experts."""
    return f"{expert} joined ({joined} of {needed} needed)."


def timed_out(seconds: float) -> str:
    """Kick reason of an offer nobody answered in time."""
    return f"Nobody answered this offer within {duration(seconds)}, so it went to someone else."


def withdrawn_expired() -> str:
    """Kick reason when a request ends because nobody took it."""
    return "Nobody could take this request in time; it was closed."


def cancelled(by: str) -> str:
    """Posted when the agent withdraws a request."""
    return f"{by} cancelled this request before anyone took it."


def cannot_cancel_claimed() -> str:
    """`!cancel` after someone took the session."""
    return "An expert has already taken this session; send !close in its room to end it."


def nothing_to_cancel() -> str:
    """`!cancel` with no open request."""
    return "You have no request waiting for an expert."


def expired(group: GroupConfig | None, why: str) -> str:
    """Told to the agent when nobody could take the request."""
    name = group.displayname if group else "the group"
    return (
        f"Sorry: nobody of {name} could take your request ({why}). It is closed; "
        "ask again later or try another group."
    )


def step_description(step: Step, group: GroupConfig | None, preferences: Preferences) -> str:
    """What a routing step asks, in words."""
    name = group.displayname if group else step.group_id
    if step.kind == "named":
        return f"asking {', '.join(preferences.experts)} of {name}"
    if step.kind == "preferred":
        return f"asking experts of {name} with {preferences.describe()}"
    return f"asking all experts of {name}"


def step_taken(why: str, description: str) -> str:
    """Posted in the session room when routing moves to its next step."""
    return f"{why[:1].upper()}{why[1:]}; now {description}."


def unknown_group(name: str) -> str:
    """`!ask` naming a group that does not exist or that the agent may not ask."""
    return f"There is no group {name!r} you may ask. Send !groups to see them."


def ask_usage() -> str:
    """`!ask` without a group or question."""
    return "Write !ask GROUP your question, for example: !ask billing lang:de Refund twice?"


def duration(seconds: float) -> str:
    """A duration as people say it: 45 s, 2 min, 1 h 30 min."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def nobody_left(step: Step, group: GroupConfig, preferences: Preferences, pool_empty: bool) -> str:
    """Why a routing step ended before its time: nobody (left) to ask."""
    if pool_empty and step.kind == "named":
        return f"{', '.join(preferences.experts)} is not an expert of {group.displayname}"
    if pool_empty and step.kind == "preferred":
        return f"no expert of {group.displayname} has {preferences.describe()}"
    if pool_empty:
        return f"{group.displayname} has no experts"
    return f"everyone of {group.displayname} who could be asked has declined or not answered"


def group_removed(group_id: str) -> str:
    """Why a request ended: its group was taken out of the config while it waited."""
    return f"the group {group_id} has been removed from Backline"


def step_timed_out(seconds: float) -> str:
    """Why a routing step ended: its time ran out."""
    return f"nobody took the request within {duration(seconds)}"
