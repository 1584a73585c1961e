"""Command line: run the service, or write a registration (`-g`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from .app import Backline
from .config import load_config
from .errors import BacklineError
from .log import setup_logging
from .registration import generate_registration

log = logging.getLogger("backline")


def build_parser() -> argparse.ArgumentParser:
    """The `backline` argument parser."""
    parser = argparse.ArgumentParser(
        prog="backline", description="Expert routing for Matrix, as an application service."
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
    return parser


async def run(backline: Backline) -> None:
    """Run until SIGINT or SIGTERM, then stop cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await backline.start()
        await stop.wait()
    finally:
        await backline.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `backline` console script."""
    args = build_parser().parse_args(argv)
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
        asyncio.run(run(Backline(config)))
    except BacklineError as e:
        log.error("%s", e)
        return 1
    return 0
