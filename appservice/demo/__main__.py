"""`python -m appservice.demo` (`make demo`): a throwaway Synapse with Backline and demo users."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from ..errors import BacklineError
from ..log import setup_logging
from .datadir import write_private
from .printout import describe
from .run import DEFAULT_APPSERVICE_PORT, DEFAULT_SYNAPSE_PORT, DemoOptions, start_demo
from .synapse import SynapseError


def build_parser() -> argparse.ArgumentParser:
    """The demo's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m appservice.demo",
        description=(
            "Start a throwaway Synapse on 127.0.0.1 with Backline, demo accounts and two expert "
            "groups. Ctrl-C stops everything it started."
        ),
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("demo-data"),
        help="where the demo keeps its files; emptied on every run (default: %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_SYNAPSE_PORT,
        help="Synapse's client API port on 127.0.0.1 (default: %(default)s)",
    )
    parser.add_argument(
        "--appservice-port",
        type=int,
        default=DEFAULT_APPSERVICE_PORT,
        help="Backline's port on 127.0.0.1 (default: %(default)s)",
    )
    parser.add_argument(
        "--simulate-experts",
        action="store_true",
        help="keep alice, bob and carol online, so one person can try the agent side alone",
    )
    return parser


async def run(options: DemoOptions) -> int:
    """Start the demo, print how to use it, and stop it all on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    # Ctrl-C while starting cancels the start, which stops whatever had started already.
    starting = asyncio.create_task(start_demo(options))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        print("Stopped before the demo was ready.", flush=True)
        return 130
    stopping.cancel()
    demo = starting.result()

    text = describe(demo)
    write_private(options.data_dir / "accounts.txt", text)
    print(text, flush=True)
    try:
        await stop.wait()
    finally:
        print("Stopping Backline and Synapse...", flush=True)
        await demo.stop()
        print("Stopped.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m appservice.demo`."""
    args = build_parser().parse_args(argv)
    options = DemoOptions(
        data_dir=args.data_dir,
        synapse_port=args.port,
        appservice_port=args.appservice_port,
        simulate_experts=args.simulate_experts,
    )
    setup_logging("INFO", "text")
    try:
        return asyncio.run(run(options))
    except (BacklineError, SynapseError) as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
