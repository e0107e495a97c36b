"""Vindex types by name, as Vitess's ``vindexes.Register`` / ``CreateVindex``.

Each built-in vindex module registers its types when imported; the registry imports them all the first time it
is asked for a type, so importing ``sharding.vindexes.registry`` alone is enough. An unknown type or a bad or
missing required parameter is an error; an unknown parameter is only a warning, as in Vitess (a typo is worth
pointing out, but an old VSchema must keep loading).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

from sharding.errors import InternalError, VSchemaError
from sharding.vindexes.base import ParamValidating, ParamWarning, Vindex

__all__ = ["Factory", "create", "known_types", "register", "unregister"]

Factory = Callable[[str, Mapping[str, str]], Vindex]
"""``factory(name, params) -> vindex``; raises ``VSchemaError`` (see ``base.param_error``) for bad params."""

_BUILTIN_MODULES = (
    "hash",
    "xxhash",
    "numeric",
    "reverse_bits",
    "binary",
    "binary_md5",
    "unicode_loose_md5",
    "unicode_loose_xxhash",
    "null",
    "numeric_static_map",
    "region_experimental",
    "multicol",
    "cfc",
    "lookup",
    "lookup_hash",
    "lookup_unicodeloosemd5_hash",
    "consistent_lookup",
)

_factories: dict[str, Factory] = {}
_builtins_loaded = False


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        for module in _BUILTIN_MODULES:  # each registers its types on import (once: imports are cached)
            importlib.import_module(f"sharding.vindexes.{module}")
        _builtins_loaded = True


def register(type_name: str, factory: Factory) -> None:
    """Make ``type_name`` creatable. Registering a name twice is a bug (Vitess panics)."""
    if type_name in _factories:
        raise InternalError(f"vindex type {type_name!r} is already registered")
    _factories[type_name] = factory


def unregister(type_name: str) -> None:
    """Forget a type registered by a test or plugin; built-in types come back only with a new process."""
    _factories.pop(type_name, None)


def known_types() -> list[str]:
    """Every registered vindex type, sorted."""
    _load_builtins()
    return sorted(_factories)


def create(type_name: str, name: str, params: Mapping[str, str] | None = None) -> tuple[Vindex, list[ParamWarning]]:
    """A vindex of ``type_name`` called ``name``, and warnings about its parameters (unknown ones, mostly).

    Raises ``VSchemaError`` for an unknown type or a bad or missing required parameter; its ``problems`` are
    paths relative to the vindex definition (``type: ...``, ``params.region_bytes: ...``).
    """
    _load_builtins()
    factory = _factories.get(type_name)
    if factory is None:
        line = f"type: unknown vindex type {type_name!r}"
        raise VSchemaError(f"vindex {name!r}: {line}", problems=[line])
    vindex = factory(name, dict(params or {}))
    warnings = list(vindex.param_warnings()) if isinstance(vindex, ParamValidating) else []
    return vindex, warnings
