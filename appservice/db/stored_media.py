"""Files the archive keeps, looked up by content hash for download from the archive page."""

from __future__ import annotations

from dataclasses import dataclass

from mautrix.util.async_db import Connection


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """What the sender said about a stored file."""

    sha256: str
    content_type: str | None
    filename: str | None
    size: int | None


async def stored_media(conn: Connection, sha256: str) -> StoredMedia | None:
    """A stored file with this SHA-256; None unless Backline keeps its bytes."""
    # Files are content-addressed, so several uploads may share one digest: any of their
    # names and types describes the same bytes.
    row = await conn.fetchrow(
        "SELECT content_type, filename, size FROM archive_media"
        " WHERE sha256=$1 AND stored_at IS NOT NULL ORDER BY stored_at LIMIT 1",
        sha256,
    )
    if row is None:
        return None
    return StoredMedia(sha256, row["content_type"], row["filename"], row["size"])
