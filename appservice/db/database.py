"""Opening the database and bringing its schema up to date."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import asyncpg
from mautrix.util.async_db import (
    Connection,
    Database,
    DatabaseNotOwned,
    Scheme,
    UnsupportedDatabaseVersion,
    UpgradeTable,
)

from ..errors import DatabaseError

log = logging.getLogger("backline.db")

OWNER = "backline"


def schema_dir() -> Path:
    """The folder of SQL migrations: inside the package when installed, else the repo's."""
    packaged = Path(__file__).resolve().parent.parent / "schema"
    return packaged if packaged.is_dir() else packaged.parent.parent / "schema"


def split_sqlite_script(script: str) -> list[str]:
    """Split a script into statements; sqlite3 runs one per execute, and triggers hold ';'."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        if not current and (not line.strip() or line.lstrip().startswith("--")):
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


def _migration(path: Path, scheme: Scheme) -> object:
    script = path.read_text(encoding="utf-8")

    async def apply(conn: Connection) -> None:
        if scheme == Scheme.SQLITE:
            for statement in split_sqlite_script(script):
                await conn.execute(statement)
        else:
            await conn.execute(script)

    apply.__name__ = f"migrate_{path.stem.replace('-', '_')}"
    return apply


def build_upgrade_table(scheme: Scheme) -> UpgradeTable:
    """One upgrade per numbered file of the dialect's folder, in order."""
    dialect = "sqlite" if scheme == Scheme.SQLITE else "postgres"
    table = UpgradeTable(
        version_table_name="backline_version",
        database_name="Backline",
        log=logging.getLogger("backline.db.upgrade"),
    )
    files = sorted((schema_dir() / dialect).glob("[0-9][0-9][0-9]-*.sql"))
    for number, path in enumerate(files, start=1):
        if int(path.name[:3]) != number:
            raise DatabaseError(f"schema file {path.name} is out of sequence (expected {number})")
        description = path.stem[4:].replace("-", " ")
        table.register(_migration(path, scheme), description=description)  # type: ignore[arg-type]
    return table


def normalize_url(url: str) -> str:
    """Accept `sqlite:file.db`, `sqlite:///abs.db` and `postgresql://` alike."""
    if url.startswith("postgresql://"):
        return "postgres://" + url.removeprefix("postgresql://")
    return url


def _scheme_of(url: str) -> Scheme:
    return Scheme.SQLITE if url.startswith(("sqlite:", "sqlite3:")) else Scheme.POSTGRES


async def open_database(url: str, pool_size: int = 10) -> Database:
    """Connect, check ownership and version, and apply missing migrations."""
    url = normalize_url(url)
    scheme = _scheme_of(url)
    db_args: dict[str, object] = {}
    if scheme == Scheme.POSTGRES:
        # mautrix would end the process on an asyncpg internal error, which a connection cut
        # mid-query can cause; Backline treats it as the database failing, and retries.
        db_args = {
            "min_size": 1,
            "max_size": pool_size,
            "meow_exit_on_ice": False,
            # asyncpg prepares every statement, and after five runs PostgreSQL may switch to
            # one generic plan, made without the parameters' values and kept while the table
            # grows: a lookup of a transaction's event IDs planned when the archive was small
            # became a sequential scan, and ingest fell from 14,000 to 3,500 events a second.
            "server_settings": {"plan_cache_mode": "force_custom_plan"},
        }
    db = Database.create(
        url,
        upgrade_table=build_upgrade_table(scheme),
        db_args=db_args,
        log=logging.getLogger("backline.db.sql"),
        owner_name=OWNER,
    )

    try:
        await db.start()
    except UnsupportedDatabaseVersion as e:
        await db.stop()
        raise DatabaseError(
            f"the database schema is newer than this Backline ({e})",
            "upgrade Backline, or point database.url at the database this version created",
        ) from e
    except DatabaseNotOwned as e:
        await db.stop()
        raise DatabaseError(
            f"the database belongs to another program ({e})",
            "give Backline a database of its own",
        ) from e
    except (OSError, sqlite3.Error, asyncpg.PostgresError) as e:
        raise DatabaseError(f"cannot open the database: {e}", "check database.url") from e
    log.info("Database ready", extra={"scheme": scheme.value})
    return db


async def database_error(db: Database) -> str | None:
    """None when the database answers a trivial query, else the kind of error it gave."""
    try:
        await db.fetchval("SELECT 1")
    except Exception as e:  # any driver error means "not answering"
        return type(e).__name__
    return None
