"""`backline export`: one session's transcript as a JSON or HTML file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TextIO

from mautrix.util.async_db import Database

from ..archive.access import record_access
from ..archive.transcript import export_json, load_transcript
from ..db import connection, transaction
from ..web.render import render_export_html
from . import CommandFailed, cli_actor

ExportFormat = Literal["json", "html"]


class Progress:
    """A bar of how much of the export is written, redrawn on one terminal line; silent
    when the stream is not a terminal (a pipe or a file gets the final line only)."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = stream.isatty()
        self._percent = -1

    def update(self, done: int, total: int) -> None:
        """`done` of `total` items written; redrawn at most once per percent."""
        percent = 100 * done // max(total, 1)
        if not self.shown or percent == self._percent:
            return
        self._percent = percent
        filled = self.WIDTH * done // max(total, 1)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\rExporting [{bar}] {percent:3d}%")
        self.stream.flush()

    def finish(self, written: int, where: str) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
        self.stream.write(f"Exported {written} events to {where}\n")


async def export(
    db: Database,
    session_id: int,
    export_format: ExportFormat,
    output: Path | None,
    *,
    out: TextIO,
    err: TextIO,
) -> int:
    """Write the export to `output` (or `out`); the access is logged before it is written."""
    async with connection(db) as conn:
        transcript = await load_transcript(conn, session_id)
    if transcript is None:
        raise CommandFailed(
            f"there is no session {session_id}", "`backline search` lists sessions and their IDs"
        )

    details = {"format": export_format, "to": str(output) if output else "stdout", "via": "cli"}
    async with transaction(db) as conn:
        await record_access(conn, cli_actor(), "export", str(session_id), details)

    progress = Progress(err)

    def write(stream: TextIO) -> None:
        if export_format == "json":
            write_json(export_json(transcript), stream, progress.update)
        else:
            stream.write(render_export_html(transcript, progress.update))

    if output is None:
        write(out)
        out.flush()
    else:
        write_atomically(output, write)
    progress.finish(len(transcript.events), str(output) if output else "stdout")
    return 0


def write_json(
    document: dict[str, Any], stream: TextIO, progress: Callable[[int, int], None]
) -> None:
    """The export document, one archived event per line, so long exports can report progress.

    The same JSON as the API's export; the layout also keeps the file easy to grep and diff.
    """
    events = document.get("events", [])
    stream.write("{\n")
    for key, value in document.items():
        if key != "events":
            stream.write(f"  {json.dumps(key)}: {_dumps(value)},\n")
    stream.write('  "events": [')
    for done, event in enumerate(events, start=1):
        stream.write(f"{',' if done > 1 else ''}\n    {_dumps(event)}")
        progress(done, len(events))
    stream.write("\n  ]\n}\n")


def write_atomically(path: Path, write: Callable[[TextIO], None]) -> None:
    """Write a file whole or not at all, readable by its owner only (exports are personal data)."""
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise CommandFailed(f"cannot write {path}: {e.strerror}") from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            write(stream)
        os.replace(temporary, path)
    except OSError as e:
        Path(temporary).unlink(missing_ok=True)
        raise CommandFailed(f"cannot write {path}: {e.strerror}") from e
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
