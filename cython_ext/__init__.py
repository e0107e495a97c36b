"""shardgate's hot path: vindex hashes, keyspace-id to shard lookup, SQL fingerprinting.

Each compiled module ``cython_ext.<name>`` (from ``<name>.pyx``) has a pure-Python twin
``cython_ext.pure.<name>`` that gives identical answers; tests hold them to that. This package picks the compiled
modules once at import, or the twins when the extension is not built (or ``SHARDGATE_PURE=1``), and says which in
``IMPLEMENTATION``. It imports nothing else of shardgate's.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType

MODULES = ("hashing", "collation", "shardmap", "fingerprint")


def _load(name: str, pure: bool) -> ModuleType:
    if not pure:
        try:
            return importlib.import_module(f"cython_ext.{name}")
        except ImportError:
            pass
    return importlib.import_module(f"cython_ext.pure.{name}")


def _pick() -> tuple[str, dict[str, ModuleType]]:
    pure = os.environ.get("SHARDGATE_PURE") == "1"
    mods = {name: _load(name, pure) for name in MODULES}
    compiled = all(not m.__name__.startswith("cython_ext.pure.") for m in mods.values())
    return ("cython" if compiled else "python"), mods


IMPLEMENTATION, _MODULES = _pick()
hashing: ModuleType = _MODULES["hashing"]
collation: ModuleType = _MODULES["collation"]
shardmap: ModuleType = _MODULES["shardmap"]
fingerprint: ModuleType = _MODULES["fingerprint"]

__all__ = ["IMPLEMENTATION", "collation", "fingerprint", "hashing", "shardmap"]
