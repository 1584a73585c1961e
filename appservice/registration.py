"""Writing registration.yaml with fresh tokens, and storing the same tokens in the config."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from .config import Config, load_config


def registration_dict(config: Config) -> dict[str, Any]:
    """The registration the homeserver needs for this config (Matrix AS API, "Registration")."""
    appservice = config.appservice
    domain = re.escape(config.homeserver.domain)
    bot = f"@{re.escape(appservice.bot_localpart)}:{domain}"
    groups = f"@{re.escape(appservice.group_localpart_prefix)}.*:{domain}"
    aliases = f"#{re.escape(appservice.session_alias_prefix)}.*:{domain}"

    return {
        "id": appservice.id,
        "url": appservice.address,
        "as_token": appservice.as_token,
        "hs_token": appservice.hs_token,
        "sender_localpart": appservice.bot_localpart,
        "rate_limited": False,
        # Presence and receipts reach us only with ephemeral events (MSC2409).
        "receive_ephemeral": True,
        "de.sorunome.msc2409.push_ephemeral": True,
        "namespaces": {
            "users": [
                {"exclusive": True, "regex": bot},
                {"exclusive": True, "regex": groups},
            ],
            "aliases": [{"exclusive": True, "regex": aliases}],
            "rooms": [],
        },
    }


def generate_registration(config_path: Path, registration_path: Path) -> None:
    """Write a registration with fresh tokens and store the same tokens in the config file."""
    config = load_config(config_path, require_tokens=False)
    as_token, hs_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)

    appservice = dataclasses.replace(config.appservice, as_token=as_token, hs_token=hs_token)
    registration = registration_dict(dataclasses.replace(config, appservice=appservice))
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    # Keep the spec's order (id, url, tokens, ...); ruamel's stubs type this flag as None.
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    stream = io.StringIO()
    yaml.dump(registration, stream)
    _write_private(registration_path, stream.getvalue())

    _store_tokens(config_path, as_token, hs_token)


def _store_tokens(config_path: Path, as_token: str, hs_token: str) -> None:
    """Put the tokens into the user's config, keeping their comments and layout."""
    text = config_path.read_text("utf-8")
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    mapping, sequence, offset = _guess_indents(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)

    data = yaml.load(text)
    if data is None:
        data = CommentedMap()
    if not isinstance(data.get("appservice"), dict):
        data["appservice"] = CommentedMap()
    data["appservice"]["as_token"] = as_token
    data["appservice"]["hs_token"] = hs_token

    stream = io.StringIO()
    yaml.dump(data, stream)
    _write_private(config_path, stream.getvalue())


def _guess_indents(text: str) -> tuple[int, int, int]:
    """Mapping indent, sequence indent and dash offset used in `text`, to write it back alike."""
    mapping: int | None = None
    sequence: tuple[int, int] | None = None
    parent: int | None = None  # indent of the last line that opened a nested block
    for line in text.splitlines():
        content = line.strip()
        if not content or content.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        item = content[1:].lstrip(" ")
        if (
            parent is not None
            and content.startswith("- ")
            and indent >= parent
            and sequence is None
        ):
            if not item.startswith("#"):
                dash = indent - parent
                sequence = dash + len(content) - len(item), dash
        elif parent is not None and indent > parent and mapping is None:
            mapping = indent - parent
        parent = indent if content.endswith(":") else None

    mapping = mapping or 4
    sequence_indent, offset = sequence or (mapping + 2, mapping)
    return mapping, max(sequence_indent, offset + 2), offset


def _write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with a file only its owner can read: it holds secrets."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
