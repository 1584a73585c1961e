"""The demo's data directory: made fresh on every run, with Backline's config and registration."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from ..config import Config, load_config
from ..errors import BacklineError
from ..registration import generate_registration
from .accounts import backline_sections

# Only a directory carrying this mark is wiped, so a mistyped --data-dir never loses files.
_MARKER = ".backline-demo"

_CONFIG_HEADER = """\
# Backline's config for the demo, written anew on every run of `make demo`.
# Backline merges it over config.example.yaml, which explains every key.
"""


class DemoError(BacklineError):
    """The demo cannot start; the message says why in plain words."""


def prepare_data_dir(data_dir: Path) -> None:
    """Empty a directory the demo made before, or make a new one; refuse anything else."""
    if _holds_other_files(data_dir):
        raise DemoError(
            f"{data_dir} exists and was not made by the demo",
            "choose another directory with --data-dir",
        )

    # Every run starts from nothing: new tokens, new accounts, new passwords.
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    (data_dir / _MARKER).write_text("Made by `python -m appservice.demo`; wiped on each run.\n")


def _holds_other_files(data_dir: Path) -> bool:
    """Whether the path exists, is not empty, and lacks the demo's mark."""
    if not data_dir.exists() or (data_dir / _MARKER).exists():
        return False
    return not data_dir.is_dir() or any(data_dir.iterdir())


def demo_config(
    data_dir: Path, server_name: str, synapse_port: int, appservice_port: int
) -> dict[str, Any]:
    """The demo's Backline config; the tokens are left for `generate_registration` to fill."""
    return {
        "homeserver": {"address": f"http://127.0.0.1:{synapse_port}", "domain": server_name},
        "appservice": {
            "address": f"http://127.0.0.1:{appservice_port}",
            "hostname": "127.0.0.1",
            "port": appservice_port,
        },
        "database": {"url": f"sqlite:{data_dir / 'backline.db'}"},
        **backline_sections(server_name),
        "archive": {"media": "store", "media_path": str(data_dir / "archive-media")},
        # The demo's archive page is plain HTTP on 127.0.0.1; a Secure cookie would not stick.
        "web": {"secure_cookies": False},
        "logging": {"level": "INFO", "format": "text"},
    }


def write_config_and_registration(
    data_dir: Path, server_name: str, synapse_port: int, appservice_port: int
) -> Config:
    """Write config.yaml, then registration.yaml with fresh tokens; return the loaded config."""
    config_path = data_dir / "config.yaml"
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    # Keep the sections in the example's order; ruamel's stubs type this flag as None.
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    stream = io.StringIO()
    yaml.dump(demo_config(data_dir, server_name, synapse_port, appservice_port), stream)
    config_path.write_text(_CONFIG_HEADER + stream.getvalue(), encoding="utf-8")

    # The same path an operator takes: `backline -g` writes the tokens into both files.
    generate_registration(config_path, registration_path(data_dir))
    return load_config(config_path)


def registration_path(data_dir: Path) -> Path:
    """Where the demo keeps Backline's registration for Synapse."""
    return data_dir / "registration.yaml"


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds passwords)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
