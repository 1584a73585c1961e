"""What Backline says to people, in one place so the wording stays consistent."""

from __future__ import annotations

from collections.abc import Sequence

from ..config import GroupConfig

BOT_HELP = (
    "I route questions to expert groups.\n"
    "• !groups: the groups you may ask, with how many experts are available now\n"
    "• To ask a group, message its user (listed by !groups) with your question.\n"
    "• !help: this text"
)

SEARCH_HELP = "• !search WORDS: the newest archived messages that contain these words"

GROUP_HELP = (
    "Write your question here and I will find an expert of {group}.\n"
    "Add lang:de or skill:refunds to ask for a language or a skill, or mention an expert by "
    "their user ID to ask them first.\n"
    "• !groups: the groups you may ask\n"
    "• !help: this text\n"
    "In a session room: !close ends the session."
)

SESSION_HELP = (
    "• !close: end this session (the agent or an expert who took it)\n• !help: this text"
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
