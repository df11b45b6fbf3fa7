"""Typed configuration loading: nested mappings, YAML files and `--set a.b=c` into trees of dataclasses.

Role in the flow: the mechanism under `config/job.py` (which names the sections); it knows no project
type. A mapping becomes a dataclass tree with unknown keys refused (the error lists the valid keys,
or names the new key of one that moved) and wrong types refused (the error names the dotted key).

Option sections. A section may hand part of its keys to the stage that owns them: a dataclass with a
class attribute `OPTION_SECTIONS = "options"` keeps every unknown key whose value is a mapping in that
dict field, untyped (`data.parquet.*`, `mixture.aioli.*`); the owner types them later with
`build_dataclass(TheirOptions, raw, "data.parquet.")`, the same checks and messages. Config never
imports its owners: a source or a strategy is one module in its own stage.

Field docs: the string literal written under a field is its documentation (`skillit-ray keys`).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

import yaml


def require(condition: bool, message: str) -> None:
    """Raise ValueError(message) unless the condition holds (every config check goes through here)."""
    if not condition:
        raise ValueError(message)


def choice(key: str, value: str, choices: tuple[str, ...] | list[str]) -> None:
    """`value` must be one of `choices`; the error names the key and lists them."""
    require(value in choices, f"{key}={value!r} is not valid; choose one of {', '.join(choices)}")


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file whose top level is a mapping; errors name the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist; pass an existing YAML file to --config")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"config file {path} is not valid YAML{where}: {problem}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"config file {path} must hold a mapping of sections, got {type(loaded).__name__}")
    return loaded


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set `section.key=value` in a nested dict; the value is parsed as YAML ("1e-3", "[1, 2]")."""
    if "=" not in override:
        raise ValueError(f"override {override!r} must look like section.key=value, e.g. train.steps=100")
    dotted_key, _, value_text = override.partition("=")
    keys = dotted_key.strip().split(".")
    if any(not key for key in keys):
        raise ValueError(f"override {override!r} has an empty key; use section.key=value")
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else ""
    except yaml.YAMLError as error:
        raise ValueError(f"override {override!r}: the value is not valid YAML ({error})") from None
    node = raw
    for key in keys[:-1]:
        existing = node.get(key)
        if existing is None:
            existing = node[key] = {}
        if not isinstance(existing, dict):
            raise ValueError(f"override {override!r}: {key} is a value, not a section")
        node = existing
    node[keys[-1]] = value


def build_dataclass(cls: type, raw: Any, prefix: str = "") -> Any:
    """An instance of dataclass `cls` from a nested mapping, refusing unknown keys and wrong types."""
    where = prefix.rstrip(".") or "top level"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    sections_field = getattr(cls, "OPTION_SECTIONS", None)
    field_names = [item.name for item in dataclasses.fields(cls) if item.name != sections_field]
    unknown = sorted(set(raw) - set(field_names))
    sections = {key: raw[key] or {} for key in unknown if sections_field and isinstance(raw[key], dict | None)}
    unknown = [key for key in unknown if key not in sections]
    if unknown:
        moved = getattr(cls, "MOVED_KEYS", {})
        hints_text = "; ".join(f"{prefix}{key} is now {moved[key]}" for key in unknown if key in moved)
        raise ValueError(
            f"unknown key(s) {', '.join(prefix + k for k in unknown)} in {where}"
            + (f" ({hints_text})" if hints_text else "")
            + f"; valid keys: {', '.join(field_names)}"
            + (f", or a mapping of options ({prefix}<name>.*)" if sections_field else "")
        )
    values = {name: _coerce(hints[name], raw[name], prefix + name) for name in field_names if name in raw}
    if sections_field:
        values[sections_field] = sections
    return cls(**values)


def _coerce(annotation: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(annotation):
        return build_dataclass(annotation, value, key + ".")
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _coerce(next(arg for arg in args if arg is not type(None)), value, key)
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{key} must be a list, got {value!r}")
        return [_coerce(args[0], item, f"{key}[{index}]") for index, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string; accept what float() accepts
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{key} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config annotation {annotation} for {key}")  # our bug, not the user's


def as_mapping(instance: Any) -> dict[str, Any]:
    """A dataclass tree as the nested mapping it was built from (option sections back in their section)."""
    mapping = {}
    sections_field = getattr(type(instance), "OPTION_SECTIONS", None)
    for item in dataclasses.fields(instance):
        value = getattr(instance, item.name)
        if item.name == sections_field:
            mapping.update({name: dict(options) for name, options in value.items()})
        elif dataclasses.is_dataclass(value):
            mapping[item.name] = as_mapping(value)
        else:
            mapping[item.name] = _copy(value)
    return mapping


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def is_path_key(key: str) -> bool:
    """Keys that name a file or directory: `path` and `*_path` (relative values become absolute on load)."""
    return key == "path" or key.endswith("_path")


def describe_fields(cls: type, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """(dotted key, type, default, docstring) of every leaf field of a dataclass tree (option sections left out)."""
    rows = []
    hints, docstrings, defaults = typing.get_type_hints(cls), field_docstrings(cls), cls()
    for item in dataclasses.fields(cls):
        if item.name == getattr(cls, "OPTION_SECTIONS", None):
            continue
        annotation = hints[item.name]
        if dataclasses.is_dataclass(annotation):
            rows.extend(describe_fields(annotation, prefix + item.name + "."))
            continue
        type_name = getattr(annotation, "__name__", None) if typing.get_origin(annotation) is None else None
        default = getattr(defaults, item.name)
        rows.append((prefix + item.name, type_name or str(annotation), default, docstrings.get(item.name, "")))
    return rows


def field_docstrings(cls: type) -> dict[str, str]:
    """Field name -> the string literal written right under the field in the class body."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docstrings = {}
    for statement, following in zip(body, body[1:]):
        is_field = isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
        is_docstring = isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
        if is_field and is_docstring and isinstance(following.value.value, str):
            docstrings[statement.target.id] = " ".join(following.value.value.split())
    return docstrings
