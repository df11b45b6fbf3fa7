"""Generic loading of typed dataclass configs: nested dicts, YAML files and `--set a.b=c` overrides.

Role in the flow: used by `config.py` (which defines the project's sections) and nothing else. It
knows no project type: it turns a nested mapping into a tree of dataclasses, rejecting unknown keys
(the error lists the valid ones) and wrong types (the error names the dotted key), and it reads each
field's docstring (the string literal under the field, as `config.py` writes them) for `skillit-ray keys`.
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
    """An instance of dataclass `cls` from a nested mapping, rejecting unknown keys and wrong types."""
    where = prefix.rstrip(".") or "top level"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    field_names = [item.name for item in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(field_names))
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(prefix + k for k in unknown)} in {where}; valid keys: {', '.join(field_names)}"
        )
    values = {name: _coerce(hints[name], raw[name], prefix + name) for name in field_names if name in raw}
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


def dotted_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key of a dataclass tree, in declaration order."""
    keys = []
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[item.name]):
            keys.extend(dotted_keys(hints[item.name], prefix + item.name + "."))
        else:
            keys.append(prefix + item.name)
    return keys


def describe_fields(cls: type, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """(dotted key, type, default, docstring) of every leaf field of a dataclass tree."""
    rows = []
    hints, docstrings, defaults = typing.get_type_hints(cls), field_docstrings(cls), cls()
    for item in dataclasses.fields(cls):
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
