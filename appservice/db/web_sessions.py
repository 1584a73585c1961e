"""Sign-ins to the archive web page. Only a SHA-256 of each cookie token is stored, so the
table alone cannot be used to sign in."""

from __future__ import annotations

from dataclasses import dataclass

from mautrix.util.async_db import Connection

from . import now_ms


@dataclass(frozen=True, slots=True)
class WebSession:
    """A signed-in person, with the token their forms must carry."""

    token_sha256: str
    user_id: str
    csrf_token: str
    created_at: int
    expires_at: int


async def create_web_session(
    conn: Connection, token_sha256: str, user_id: str, csrf_token: str, lifetime_ms: int
) -> WebSession:
    """Store a new sign-in that lasts `lifetime_ms`."""
    created_at = now_ms()
    session = WebSession(token_sha256, user_id, csrf_token, created_at, created_at + lifetime_ms)
    await conn.execute(
        "INSERT INTO web_session (token_sha256, user_id, csrf_token, created_at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        session.token_sha256,
        session.user_id,
        session.csrf_token,
        session.created_at,
        session.expires_at,
    )
    return session


async def get_web_session(conn: Connection, token_sha256: str) -> WebSession | None:
    """The sign-in with this token hash, unless it has expired."""
    row = await conn.fetchrow(
        "SELECT token_sha256, user_id, csrf_token, created_at, expires_at FROM web_session"
        " WHERE token_sha256=$1 AND expires_at > $2",
        token_sha256,
        now_ms(),
    )
    if row is None:
        return None
    return WebSession(
        row["token_sha256"],
        row["user_id"],
        row["csrf_token"],
        row["created_at"],
        row["expires_at"],
    )


async def delete_web_session(conn: Connection, token_sha256: str) -> None:
    """End a sign-in."""
    await conn.execute("DELETE FROM web_session WHERE token_sha256=$1", token_sha256)


async def delete_expired_web_sessions(conn: Connection) -> None:
    """Forget sign-ins that have run out."""
    await conn.execute("DELETE FROM web_session WHERE expires_at <= $1", now_ms())
