"""Keys the schema does not know: refused, with the closest known key.

Hydra merges a `+key=value` override (and a key a config file adds) into a structured config
without complaint, and `OmegaConf.to_object` then sets it as a stray attribute nobody reads: a
typo like `+approach.thresold=0.3` would run with the threshold unchanged. `unknown_keys`
walks the composed config against the schema's dataclasses; `did_you_mean` names the closest
key; `override_error` turns Hydra's "Could not override" (which suggests the `+`) into the
same message.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig

from runtime.exceptions import ConfigError


def _dataclass_of(annotation: Any) -> type | None:
    """The dataclass a field holds (through `X | None`), if any."""
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        found = [_dataclass_of(a) for a in typing.get_args(annotation)]
        return next((f for f in found if f is not None), None)
    return None


def _fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def schema_node(schema: type, path: str) -> type | None:
    """The dataclass at `path` ('' for the root) of `schema`, or None where it has no such
    section or free-form data."""
    cls: type | None = schema
    for part in [p for p in path.split(".") if p]:
        if cls is None:
            return None
        cls = _dataclass_of(_fields(cls).get(part))
    return cls


def has_key(schema: type, path: str) -> bool:
    """Whether `schema` declares the key at `path` (any key inside a free-form dict or a list)."""
    cls: type | None = schema
    for part in path.split("."):
        if cls is None:
            return True
        fields = _fields(cls)
        if part not in fields:
            return False
        cls = _dataclass_of(fields[part])
    return True


def did_you_mean(path: str, schemas: Sequence[type]) -> str:
    """' (did you mean X?)' for the closest key to `path` that the first of `schemas` holding
    its parent section knows, or ''."""
    parent, _, key = path.rpartition(".")
    cls = next((c for c in (schema_node(s, parent) for s in schemas) if c is not None), None)
    if cls is None:
        return ""
    known = list(_fields(cls))
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6) or sorted(k for k in known if key in k)[:1]
    return f" (did you mean {'.'.join(p for p in (parent, close[0]) if p)}?)" if close else ""


def unknown_keys(cfg: DictConfig, cls: type, path: str = "") -> list[str]:
    """Every key of `cfg` that the schema's dataclasses do not declare (dict fields are free)."""
    fields = _fields(cls)
    out = []
    for raw in cfg:
        key = str(raw)
        name = f"{path}.{key}" if path else key
        if key not in fields:
            out.append(name)
            continue
        sub = _dataclass_of(fields[key])
        value = cfg._get_node(key)  # the node itself: no interpolation is resolved here
        if sub is not None and isinstance(value, DictConfig) and not value._is_none():
            out += unknown_keys(value, sub, name)
    return out


def check_known_keys(cfg: DictConfig, schema: type) -> None:
    """ConfigError naming the first key `schema` does not know, and the closest one it does."""
    stray = unknown_keys(cfg, schema)
    if stray:
        raise ConfigError(f"{stray[0]}: no such key{did_you_mean(stray[0], [schema])}")


_OVERRIDE = re.compile(r"Could not override '([^']+)'")


def override_error(message: str, schemas: Sequence[type]) -> ConfigError | None:
    """Hydra's 'Could not override KEY ... use +KEY' as our one line (the closest key of the
    first of `schemas` that has its section), or None for another error."""
    m = _OVERRIDE.search(message)
    if m is None or ("not in struct" not in message and "To append" not in message):
        return None
    key = m.group(1)
    return ConfigError(f"{key}: no such key{did_you_mean(key, schemas)}")
