"""Stored files: content-addressed, so a file sent twice is kept once."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def media_file(media_path: Path, digest: str) -> Path:
    """Where the file with this SHA-256 lives."""
    return media_path / digest[:2] / digest


def store_media_file(media_path: Path, data: bytes) -> str:
    """Write the file (atomically: a crash never leaves half a file) and return its SHA-256."""
    digest = hashlib.sha256(data).hexdigest()
    target = media_file(media_path, digest)
    if target.exists():
        return digest
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return digest
