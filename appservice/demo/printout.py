"""What the demo tells the person who started it: addresses, accounts, and what to try."""

from __future__ import annotations

from .accounts import DEMO_GROUPS
from .run import RunningDemo

_SIGN_IN = """\
Sign in
  Use any Matrix client that can reach {homeserver}, for example Element Desktop:
  "Sign in", edit the homeserver to {homeserver}, then a user name and password above.
  A web client served over https (such as app.element.io) may be blocked by the browser from
  reaching a homeserver on 127.0.0.1; a client running on this machine avoids that.
  To play several people at once, sign in to each in a separate client or client profile."""

_TRY = """\
Try it
  1. {experts_step}
  2. Sign in as agent, start a chat with {billing} and write your question,
     for example: How do I refund a double charge? lang:de
  3. The agent is invited to a session room, and the online experts of the group are invited
     too: that invite is the offer. The first expert to join takes the session; the other
     offers are withdrawn.
  4. In the session room, the agent or the expert sends !close to end the session.
  In the chat with a group user, !groups lists the groups you may ask and !help explains the
  rest; {bot} answers !groups and !help too."""

_EXPERTS_BY_HAND = (
    "Sign in as alice and/or bob. Experts receive offers only while signed in (online);\n"
    "     they are already members of their group's roster room, where Backline sees that."
)
_EXPERTS_SIMULATED = (
    "alice, bob and carol are kept online by this demo (--simulate-experts), so you can\n"
    "     try the agent side alone. Their offers appear when you sign in as one of them."
)
_SIMULATE_HINT = (
    "Alone? Run `.venv/bin/python -m appservice.demo --simulate-experts` to keep the experts\n"
    "online for you."
)


def describe(demo: RunningDemo) -> str:
    """The whole printout, shown once everything runs."""
    parts = [
        "Backline demo is running.",
        _addresses(demo),
        _accounts(demo),
        _groups(demo),
        _SIGN_IN.format(homeserver=demo.synapse.url),
        _try_it(demo),
        _more(demo),
    ]
    return "\n\n".join(parts) + "\n"


def _addresses(demo: RunningDemo) -> str:
    return (
        f"Homeserver  {demo.synapse.url}   (server name: {demo.options.server_name})\n"
        f"Backline    {demo.appservice_url}  (health: {demo.appservice_url}/health)"
    )


def _accounts(demo: RunningDemo) -> str:
    server = demo.options.server_name
    width = max(len(a.user_id(server)) for a in demo.accounts)
    rows = [f"  {a.user_id(server):<{width}}  {a.password}  {a.role}" for a in demo.accounts]
    return "Accounts (new passwords on every run)\n" + "\n".join(rows)


def _groups(demo: RunningDemo) -> str:
    config = demo.config
    width = max(len(config.group_mxid(g.id)) for g in DEMO_GROUPS)
    rows = [
        f"  {config.group_mxid(g.id):<{width}}  {g.displayname}: {', '.join(g.members)}"
        for g in DEMO_GROUPS
    ]
    return "Expert groups (start a chat with the group's user to ask it)\n" + "\n".join(rows)


def _try_it(demo: RunningDemo) -> str:
    simulated = demo.options.simulate_experts
    return _TRY.format(
        experts_step=_EXPERTS_SIMULATED if simulated else _EXPERTS_BY_HAND,
        billing=demo.config.group_mxid("billing"),
        bot=demo.config.bot_mxid,
    )


def _more(demo: RunningDemo) -> str:
    data_dir = demo.options.data_dir
    archive = f"{demo.config.appservice.address}/archive"
    lines = [
        f"Archive web page: {archive} (sign in as compliance). Search, read a",
        "session as a chat, export it. On the command line:",
        f"  .venv/bin/backline -c {data_dir / 'config.yaml'} search WORDS",
        f"Everything Backline stores is in {data_dir / 'backline.db'}; its log follows below.",
        f"Files: {data_dir}/ (config.yaml, registration.yaml, accounts.txt, synapse/synapse.log);",
        "they are replaced on the next run.",
    ]
    if not demo.options.simulate_experts:
        lines.append(_SIMULATE_HINT)
    lines.append("Press Ctrl-C to stop Backline and Synapse.")
    return "\n".join(lines)
