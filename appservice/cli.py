"""Command line: run the service, write a registration (`-g`), or work on the archive."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import asyncpg
from mautrix.util.async_db import Database

from .app import Backline
from .archive.holds import HOLD_KINDS
from .archive.search import SearchFilters
from .commands import export, holds, parse_time, search, verify
from .config import Config, is_user_id, load_config
from .db import open_database
from .errors import BacklineError
from .log import setup_logging
from .registration import generate_registration

log = logging.getLogger("backline")

DB_FAILURES = (OSError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError)


def build_parser() -> argparse.ArgumentParser:
    """The `backline` argument parser."""
    parser = argparse.ArgumentParser(
        prog="backline",
        description="Expert routing for Matrix, as an application service. Without a command, "
        "run the service.",
    )
    parser.add_argument(
        "-c", "--config", type=Path, default=Path("config.yaml"), help="config file"
    )
    parser.add_argument(
        "-r",
        "--registration",
        type=Path,
        default=Path("registration.yaml"),
        help="appservice registration file (written by -g)",
    )
    parser.add_argument(
        "-g",
        "--generate-registration",
        action="store_true",
        help="write a registration with fresh tokens, store them in the config, and exit",
    )

    # `-c` is also accepted after the command; SUPPRESS keeps the one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", type=Path, default=argparse.SUPPRESS, help="config file")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="archive commands (need only the database)"
    )
    _add_search(commands, common)
    _add_export(commands, common)
    _add_verify(commands, common)
    _add_hold(commands, common)
    return parser


if TYPE_CHECKING:
    # Generic for the type checker only; annotations are never evaluated at run time.
    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def _add_search(commands: Commands, common: argparse.ArgumentParser) -> None:
    command = commands.add_parser(
        "search",
        parents=[common],
        help="find archived messages",
        description="Archived messages that match QUERY, newest first; without QUERY, the "
        "sessions that match the filters. Times are UTC.",
    )
    command.add_argument("query", nargs="?", default="", metavar="QUERY", help="words to find")
    command.add_argument("--group", metavar="G", help="only sessions of this group")
    command.add_argument("--agent", metavar="U", type=_user_id, help="only sessions of this agent")
    command.add_argument(
        "--expert", metavar="U", type=_user_id, help="only sessions this expert took"
    )
    command.add_argument(
        "--since", metavar="D", type=_since, help="from: 2024-05-01, 2024-05-01T14:30, or 7d ago"
    )
    command.add_argument(
        "--until", metavar="D", type=_until, help="until (a bare date includes that day)"
    )
    command.add_argument(
        "--limit", metavar="N", type=_positive, default=50, help="at most N hits (50)"
    )
    command.add_argument("--json", action="store_true", help="one JSON object per line")


def _add_export(commands: Commands, common: argparse.ArgumentParser) -> None:
    command = commands.add_parser(
        "export",
        parents=[common],
        help="write a session's transcript",
        description="A session's transcript with its metadata and every archived event.",
    )
    command.add_argument("session_id", metavar="SESSION_ID", type=_positive)
    command.add_argument("--format", choices=("json", "html"), required=True)
    command.add_argument(
        "-o", "--output", metavar="FILE", type=Path, help="write here (default: stdout)"
    )


def _add_verify(commands: Commands, common: argparse.ArgumentParser) -> None:
    command = commands.add_parser(
        "verify",
        parents=[common],
        help="check the archive's hash chains",
        description="Check the hash chains of the whole archive, or of one session. "
        "Exits 1 when a link is broken.",
    )
    command.add_argument("session_id", metavar="SESSION_ID", type=_positive, nargs="?")


def _add_hold(commands: Commands, common: argparse.ArgumentParser) -> None:
    command = commands.add_parser(
        "hold", parents=[common], help="legal holds: keep sessions past retention"
    )
    actions = command.add_subparsers(dest="hold_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", parents=[common], help="place a hold")
    add.add_argument("kind", choices=HOLD_KINDS, help="what to hold")
    add.add_argument("value", metavar="VALUE", help="session ID, agent user ID or group ID")
    add.add_argument("--reason", required=True, type=_text, help="why (shown in the list)")
    add.set_defaults(usage_error=add.error)
    listing = actions.add_parser("list", parents=[common], help="show active holds")
    listing.add_argument("--all", action="store_true", help="released holds too")
    release = actions.add_parser("release", parents=[common], help="release a hold")
    release.add_argument("hold_id", metavar="ID", type=_positive)


def _user_id(text: str) -> str:
    if not is_user_id(text):
        raise argparse.ArgumentTypeError(f"not a Matrix user ID like @alice:example.org: {text!r}")
    return text


def _since(text: str) -> int:
    try:
        return parse_time(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _until(text: str) -> int:
    try:
        return parse_time(text, end=True)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(text)


def _text(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


async def run(config: Config) -> None:
    """Run until SIGINT or SIGTERM, then stop cleanly; SIGHUP re-reads the config file."""
    # Made inside the loop: its HTTP client session needs a running loop (aiohttp >= 3.10).
    backline = Backline(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(
        signal.SIGHUP, lambda: backline.tasks.spawn(backline.reload_file(), "config reload")
    )
    try:
        await backline.start()
        await stop.wait()
    finally:
        await backline.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `backline` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return _run_service(args)

    if args.generate_registration:
        parser.error("-g cannot be combined with a command")
    if args.command == "hold" and args.hold_command == "add":
        problem = holds.value_problem(args.kind, args.value)
        if problem:
            args.usage_error(problem)
    return _run_archive_command(args)


def _run_service(args: argparse.Namespace) -> int:
    try:
        if args.generate_registration:
            generate_registration(args.config, args.registration)
            print(f"Wrote {args.registration} and stored its tokens in {args.config}.")
            print("Add the registration to the homeserver's app_service_config_files.")
            return 0
        config = load_config(args.config)
    except BacklineError as e:
        print(f"backline: {e}", file=sys.stderr)
        return 2

    setup_logging(config.logging.level, config.logging.format)
    try:
        asyncio.run(run(config))
    except BacklineError as e:
        log.error("%s", e)
        return 1
    return 0


def _run_archive_command(args: argparse.Namespace) -> int:
    # The archive commands read the database only: the homeserver tokens are not needed.
    try:
        config = load_config(args.config, require_tokens=False)
    except BacklineError as e:
        print(f"backline: {e}", file=sys.stderr)
        return 2

    # Routine lines (database ready, ...) would clutter a command's output.
    setup_logging("WARNING", config.logging.format)
    try:
        return asyncio.run(_archive_command(args, config))
    except BrokenPipeError:
        # The reader went away (`backline search ... | head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except BacklineError as e:
        print(f"backline: {e}", file=sys.stderr)
        return 1
    except DB_FAILURES as e:
        print(f"backline: the database failed: {e}", file=sys.stderr)
        return 1


async def _archive_command(args: argparse.Namespace, config: Config) -> int:
    db = await open_database(config.database.url, pool_size=2)
    try:
        return await _dispatch(args, db)
    finally:
        await db.stop()


async def _dispatch(args: argparse.Namespace, db: Database) -> int:
    out, err = sys.stdout, sys.stderr
    match args.command, getattr(args, "hold_command", None):
        case "search", _:
            filters = SearchFilters(
                group=args.group,
                agent=args.agent,
                expert=args.expert,
                since=args.since,
                until=args.until,
            )
            return await search.search(
                db, args.query, filters, limit=args.limit, as_json=args.json, out=out
            )
        case "export", _:
            output = None if args.output in (None, Path("-")) else args.output
            return await export.export(db, args.session_id, args.format, output, out=out, err=err)
        case "verify", _:
            return await verify.verify(db, args.session_id, out=out)
        case "hold", "add":
            return await holds.add(db, args.kind, args.value, args.reason, out=out)
        case "hold", "list":
            return await holds.show(db, args.all, out=out)
        case "hold", "release":
            return await holds.release(db, args.hold_id, out=out)
    raise AssertionError(f"unhandled command {args.command}")
