"""The topology store: where routers read the VSchema and shard maps, and workflows keep their state.

``open_store(config)`` gives the store the cluster config names (``topology:`` section); the embedded
``FileTopologyStore`` is the default.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from sharding.errors import ConfigError
from sharding.topology.file import FileTopologyStore
from sharding.topology.store import Entry, EventKind, Lease, TopologyStore, Versioned, WatchEvent

if TYPE_CHECKING:
    from sharding.config import ClusterConfig, TopologyConfig

__all__ = ["Entry", "EventKind", "FileTopologyStore", "Lease", "TopologyStore", "Versioned", "WatchEvent",
           "open_store"]


def open_store(config: ClusterConfig | TopologyConfig) -> TopologyStore:
    """The topology store a cluster config (or its ``topology`` section) names."""
    topo = cast("TopologyConfig", getattr(config, "topology", config))
    if topo.store == "file":
        return FileTopologyStore(Path(topo.path), poll_interval=topo.poll_interval)
    raise ConfigError(f"topology store {topo.store!r} is not available; use 'file'")
