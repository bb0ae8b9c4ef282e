"""Frozen-dataclass configs loaded from YAML with strict validation.

One frozen dataclass per concern; :func:`load_config` builds it (recursively) from a YAML file or
a plain ``dict`` and rejects unknown keys, missing required keys and wrong types with a
:class:`~pnp_rgm.errors.ConfigError` whose message names the dotted key, e.g.::

    ConfigError: model.base_width: expected int, got str 'wide'

Supported field types: ``int``, ``float`` (ints accepted), ``bool`` (only true/false), ``str``,
``Literal[...]``, ``Optional[X]`` / ``X | None``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]``,
``dict[str, X]`` and nested dataclasses. Range checks belong in each dataclass's
``__post_init__`` (raise ``ConfigError`` there; :func:`load_config` prefixes the key path).
:func:`config_to_dict` is the inverse (tuples become lists) and :func:`save_config` writes YAML.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from pnp_rgm.errors import ConfigError

T = TypeVar("T")

__all__ = ["load_config", "config_to_dict", "save_config", "write_text_atomic", "replace_config", "ConfigError"]


def _tname(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _describe(value: Any) -> str:
    r = repr(value)
    if len(r) > 60:
        r = r[:57] + "..."
    return f"{type(value).__name__} {r}"


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Union or (hasattr(types, "UnionType") and isinstance(tp, types.UnionType)):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{key}: expected {_tname(tp)}, got {_describe(value)}")
    if origin is Literal:
        if value in args and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in args)):
            return value
        raise ConfigError(f"{key}: expected one of {', '.join(repr(a) for a in args)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value) and isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping for {tp.__name__}, got {_describe(value)}")
        return _build(tp, value, key)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {_describe(value)}")
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
            items = [_convert(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
        else:
            elem = args[0] if args else Any
            items = [_convert(elem, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {_describe(value)}")
        kt, vt = args if args else (Any, Any)
        return {_convert(kt, k, f"{key}.<key>"): _convert(vt, v, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected bool (true/false), got {_describe(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected int, got {_describe(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected float, got {_describe(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected str, got {_describe(value)}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{key}: unsupported value {_describe(value)} for type {_tname(tp)}")


def _build(cls: type[T], data: dict, prefix: str) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    dot = f"{prefix}." if prefix else ""
    for k in data:
        if k not in fields:
            valid = ", ".join(fields) or "(none)"
            raise ConfigError(f"{dot}{k}: unknown key in {cls.__name__}; valid keys: {valid}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], f"{dot}{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{dot}{name}: required key missing in {cls.__name__}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        msg = str(exc)
        raise ConfigError(f"{dot}{msg}" if prefix and not msg.startswith(dot) else msg) from None


def load_config(cls: type[T], source: str | os.PathLike | dict | None) -> T:
    """Build dataclass ``cls`` from a YAML path or a dict (``None`` = all defaults).

    Raises :class:`ConfigError` naming the dotted key on unknown keys, wrong types or
    out-of-range values; a missing or unparsable file is a ``ConfigError`` too."""
    if source is None:
        data: Any = {}
    elif isinstance(source, dict):
        data = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a mapping at top level, got {type(data).__name__}")
    return _build(cls, data, "")


def config_to_dict(obj: Any) -> Any:
    """Dataclass (nested) -> plain dict/list/scalars, suitable for YAML/JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: config_to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [config_to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: config_to_dict(v) for k, v in obj.items()}
    return obj


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: a temporary file beside it, then ``os.replace``
    (a kill leaves the old file or the new one, never half of one)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_config(obj: Any, path: str | os.PathLike) -> None:
    """Write ``config_to_dict(obj)`` as YAML (key order preserved), atomically."""
    write_text_atomic(path, yaml.safe_dump(config_to_dict(obj), sort_keys=False))


def replace_config(obj: T, dotted: dict[str, Any]) -> T:
    """Return a copy of ``obj`` with dotted-key overrides, e.g. ``{"train.steps": 10}``,
    validated like a loaded file."""
    data = config_to_dict(obj)
    for key, value in dotted.items():
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            if not isinstance(node, dict) or p not in node:
                raise ConfigError(f"{key}: unknown key")
            node = node[p]
        if parts[-1] not in node:
            raise ConfigError(f"{key}: unknown key")
        node[parts[-1]] = value
    return load_config(type(obj), data)
