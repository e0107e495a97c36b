"""Reading a JSON document the way protojson reads a Vitess proto, collecting every problem with its path.

``JsonReader`` is the base of the VSchema loader: field names in snake_case or lowerCamelCase, ``null`` as the
default, unknown fields as problems; each problem or warning is one ``path: message`` line, paths written as
``keyspaces.user.tables.orders.column_vindexes[0].name``. It only reads and reports; what the fields mean is the
loader's business.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["Fields", "JsonReader", "join", "kind"]

_PLAIN_KEY = re.compile(r"[^.\[\]\s\"']+")


def join(path: str, key: str) -> str:
    """``path.key``, or ``path["odd key"]`` when the key would make the path ambiguous."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


Fields = dict[str, tuple[Any, str]]
"""A JSON object's known fields: canonical (snake_case) name -> (value, path as written)."""


class JsonReader:
    """Typed readers over a JSON document that record problems instead of raising, so a load reports them all."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path or self.source}: {message}")

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(f"{path or self.source}: {message}")

    def obj(self, value: Any, path: str) -> dict[str, Any] | None:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"expected an object, got {kind(value)}")
            return None
        return value

    def fields(self, obj: Mapping[str, Any], path: str, names: tuple[str, ...]) -> Fields:
        aliases = {alias: n for n in names for alias in (n, _camel(n))}
        out: Fields = {}
        for key, value in obj.items():
            name = aliases.get(key)
            if name is None:
                self.problem(join(path, key), f"unknown field (expected one of: {', '.join(names)})")
            elif name in out:
                self.problem(join(path, key), f"given twice (also as {out[name][1].rsplit('.', 1)[-1]!r})")
            else:
                out[name] = (value, join(path, key))
        return out

    def string(self, f: Fields, name: str, parent: str, *, required: bool = False) -> str:
        value, path = f.get(name, (None, join(parent, name)))
        if value is None:
            if required:
                self.problem(path, "missing (required)")
            return ""
        if not isinstance(value, str):
            self.problem(path, f"expected a string, got {kind(value)}")
            return ""
        if required and not value:
            self.problem(path, "must not be empty")
        return value

    def boolean(self, f: Fields, name: str) -> bool:
        value, path = f.get(name, (None, ""))
        if value is None:
            return False
        if not isinstance(value, bool):
            self.problem(path, f"expected true or false, got {kind(value)}")
            return False
        return value

    def integer(self, f: Fields, name: str) -> int:
        value, path = f.get(name, (None, ""))
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(path, f"expected an integer, got {kind(value)}")
            return 0
        return value

    def array(self, f: Fields, name: str, parent: str) -> tuple[list[Any], str]:
        value, path = f.get(name, (None, join(parent, name)))
        if value is None:
            return [], path
        if not isinstance(value, list):
            self.problem(path, f"expected an array, got {kind(value)}")
            return [], path
        return value, path

    def strings(self, f: Fields, name: str, parent: str) -> tuple[str, ...]:
        items, path = self.array(f, name, parent)
        out: list[str] = []
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item:
                self.problem(f"{path}[{i}]", f"expected a non-empty string, got {kind(item)}")
            else:
                out.append(item)
        return tuple(out)

    def section(self, f: Fields, name: str, parent: str, names: tuple[str, ...]) -> tuple[Fields, str]:
        """A nested object's fields, or none when it is absent or not an object."""
        value, path = f.get(name, (None, join(parent, name)))
        obj = self.obj(value, path)
        return (self.fields(obj, path, names) if obj else {}), path
