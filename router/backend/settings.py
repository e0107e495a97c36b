"""The statements that put a backend session's settings in a wanted state (transaction pooling).

A session's settings (``SET time_zone = '+02:00'``, ``SET search_path = app``) live in the router; each backend
connection remembers what it has in effect (``AdapterBase.applied``), and a checkout for a session sends only the
difference, in one statement: MySQL ``SET SESSION a = x, SESSION b = DEFAULT``; PostgreSQL ``SET a = x; RESET b``
(one simple-query message). Values arrive as SQL text already rendered by ``router.engine.session_state``; names
are checked here to be plain identifiers, so nothing else can ride along.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from sharding.errors import InvalidValueError

__all__ = ["UNKNOWN", "settings_sql"]

UNKNOWN = "\0unknown"  # a value text no rendering produces: the setting's state on the server is not known
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.$]{0,62}")


def settings_sql(engine: str, changes: Mapping[str, str | None]) -> str:
    """One statement applying ``changes`` (name -> value text, or None for the default)."""
    for name in changes:
        if not _NAME.fullmatch(name):
            raise InvalidValueError(f"invalid setting name {name!r}")
    if engine == "mysql":
        return "SET " + ", ".join(f"SESSION {name} = {'DEFAULT' if value is None else value}"
                                  for name, value in changes.items())
    return "; ".join(f"RESET {name}" if value is None else f"SET {name} = {value}"
                     for name, value in changes.items())
