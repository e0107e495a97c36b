"""The router: frontends, planner, engine and backend pools.

``router.connect(config)`` opens the embeddable gateway (``async with router.connect(cfg) as gw``); it is
imported lazily so that ``import router.planner`` stays light.
"""
from __future__ import annotations

from typing import Any

__all__ = ["connect"]


def __getattr__(name: str) -> Any:
    if name == "connect":
        from router.gateway import connect

        return connect
    raise AttributeError(f"module 'router' has no attribute {name!r}")
