"""YAML documents for shardgate's config files: a strict loader and a checker that collects every problem.

``load_yaml`` is PyYAML's safe loader with two changes that keep typos and YAML 1.1 surprises from passing
silently: mapping keys are always the text as written (``-80:``, ``0:`` and ``on:`` stay strings), and a
duplicate key is an error with its line and column. Syntax errors become ``ConfigError`` lines
``FILE:LINE:COLUMN: problem`` that never quote the offending line (it may hold a secret).

``DocChecker`` walks a loaded document and collects ``FILE: key.path: problem`` lines, so a user sees every
problem of a file at once.
"""
from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from sharding.errors import ConfigError

__all__ = ["DocChecker", "describe", "join_path", "load_yaml", "suggest"]

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads every mapping key as a string and refuses duplicate keys (YAML merge keys ``<<``
    still work: a key written out overrides the same key merged in)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:  # type: ignore[override]
        seen: set[str] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(None, None, "mapping keys must be plain scalars",
                                                        key_node.start_mark)
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key_node.value!r}",
                                                        key_node.start_mark)
            seen.add(key_node.value)
        self.flatten_mapping(node)  # merged pairs first, then the node's own
        # The key's text as written: "-80", "0" and "on" stay strings instead of becoming numbers or booleans.
        return {key_node.value: self.construct_object(value_node, deep=deep) for key_node, value_node in node.value}


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML (or JSON); ``ConfigError`` with ``FILE:LINE:COLUMN: problem`` on a syntax error."""
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        # The problem only: PyYAML's own str() quotes the offending line, which may hold a secret.
        line = f"{where}: {kind}: {exc.problem or exc.context}"
        raise ConfigError(line, problems=[line]) from None
    except yaml.YAMLError as exc:
        line = f"{source}: YAML error: {exc}"
        raise ConfigError(line, problems=[line]) from None



def join_path(path: str, *keys: str | int) -> str:
    """``path`` extended by ``keys``: ``users[1].verifiers.md5``; odd keys as ``["a b"]``."""
    for key in keys:
        if isinstance(key, int):
            path += f"[{key}]"
        elif _PLAIN_KEY.fullmatch(key):
            path += f".{key}" if path else key
        else:
            path += f"[{key!r}]"
    return path


class DocChecker:
    """Collects problems and warnings as ``FILE: key.path: problem`` lines."""

    def __init__(self, source: str, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def problem(self, path: str, text: str) -> None:
        self.problems.append(f"{self.source}: {path}: {text}" if path else f"{self.source}: {text}")

    def warn(self, path: str, text: str) -> None:
        self.warnings.append(f"{self.source}: {path}: {text}" if path else f"{self.source}: {text}")

    def mapping(self, value: Any, path: str, allowed: Iterable[str], *, required: Iterable[str] = (),
                hints: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """``value`` if it is a mapping with only ``allowed`` keys; problems for unknown and missing keys.

        ``hints`` gives a specific message for a known-bad key (e.g. ``password``) instead of "unknown key".
        """
        if not isinstance(value, dict):
            self.problem(path, f"expected a mapping, got {describe(value)}")
            return None
        allowed = list(allowed)
        for key in value:
            if key in allowed:
                continue
            if hints and key in hints:
                self.problem(join_path(path, key), hints[key])
                continue
            self.problem(join_path(path, key), f"unknown key{suggest(key, allowed)}")
        for key in required:
            if key not in value:
                self.problem(path, f"missing required key {key!r}")
        return value

    def string(self, value: Any, path: str, *, pattern: re.Pattern[str] | None = None, what: str = "",
               echo: bool = True) -> str | None:
        if not isinstance(value, str) or not value:
            self.problem(path, f"expected a non-empty string, got {describe(value)}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.problem(path, f"{f'{value!r} is ' if echo else ''}not a valid {what}")
            return None
        return value

    def integer(self, value: Any, path: str, low: int, high: int) -> int | None:
        if not isinstance(value, int) or isinstance(value, bool):
            self.problem(path, f"expected an integer, got {describe(value)}")
            return None
        if not low <= value <= high:
            self.problem(path, f"{value} is out of range {low}..{high}")
            return None
        return value

    def boolean(self, value: Any, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.problem(path, f"expected true or false, got {describe(value)}")
            return None
        return value

    def file(self, value: Any, path: str, *, must_exist: bool = True) -> Path | None:
        text = self.string(value, path)
        if text is None:
            return None
        resolved = (self.base_dir / text) if not os.path.isabs(text) else Path(text)
        if must_exist and not resolved.is_file():
            self.problem(path, f"file not found: {resolved}")
            return None
        return resolved


def suggest(word: str, choices: Iterable[str], *, what: str = "expected one of") -> str:
    """``"; did you mean 'x'?"`` for a near miss, else ``"; expected one of: a, b"``."""
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; {what}: {', '.join(choices)}"


def describe(value: Any) -> str:
    """What ``value`` is, for messages (never the value itself: it may be a secret)."""
    if value is None:
        return "nothing"
    if isinstance(value, dict | list | str) and not value:
        return "an empty " + ("mapping" if isinstance(value, dict) else "list" if isinstance(value, list) else "string")
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)
