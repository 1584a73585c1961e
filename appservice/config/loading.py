"""Loading the config: the user's file merged over config.example.yaml, then read and checked."""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from ..errors import ConfigError, ConfigProblem
from .model import GENERATE_HINT, Config
from .sections import read_config
from .values import Reader

# Keyed by user IDs and domains: merging the example's entries into the user's would grant
# roles (or expert settings) to people the operator never named.
_REPLACED_SECTIONS = frozenset({"permissions", "experts"})
_TOKEN_KEYS = ("appservice.as_token", "appservice.hs_token")


def load_config(path: Path, *, require_tokens: bool = True) -> Config:
    """Read, merge over the example, check and type the config file at `path`."""
    try:
        data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    except OSError as error:
        problem = ConfigProblem("(file)", f"cannot be read: {error.strerror}", "a readable file")
        raise ConfigError([problem], str(path)) from error
    except YAMLError as error:
        problem = ConfigProblem("(file)", f"is not valid YAML: {error}", "a YAML mapping")
        raise ConfigError([problem], str(path)) from error

    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        problem = ConfigProblem("(file)", "is not a mapping", "keys like `homeserver:` at the top")
        raise ConfigError([problem], str(path))
    return config_from_dict(data, path=path, require_tokens=require_tokens)


def config_from_dict(
    data: Mapping[str, Any], *, path: Path | None = None, require_tokens: bool = True
) -> Config:
    """Check and type the user's config mapping, merged over the example."""
    merged = merge(example_config(), data)
    reader = Reader()
    config = read_config(reader, merged, path, require_tokens)

    if reader.problems:
        error = ConfigError(reader.problems, str(path) if path else "")
        if any(p.key in _TOKEN_KEYS for p in reader.problems):
            error.hint = GENERATE_HINT
        raise error
    return config


def merge(
    base: Mapping[str, Any], override: Mapping[str, Any], top: bool = True
) -> dict[str, Any]:
    """Deep-merge `override` into a copy of `base`; lists (and user-keyed sections) replace."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        replace = top and key in _REPLACED_SECTIONS
        old = merged.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping) and not replace:
            merged[key] = merge(old, value, top=False)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def example_config() -> dict[str, Any]:
    """The parsed example config (a fresh copy each call)."""
    return copy.deepcopy(_example_config())


@functools.cache
def _example_config() -> dict[str, Any]:
    # A wheel force-includes the file into the `appservice` package; a checkout has it at the
    # repo root, beside `appservice/`. This module sits one level down, in `appservice/config/`.
    package = Path(__file__).parents[1]
    for candidate in (package / "config.example.yaml", package.parent / "config.example.yaml"):
        if candidate.is_file():
            loaded = YAML(typ="safe", pure=True).load(candidate.read_text(encoding="utf-8"))
            return cast(dict[str, Any], loaded)
    raise FileNotFoundError(f"config.example.yaml is neither in {package} nor in {package.parent}")
