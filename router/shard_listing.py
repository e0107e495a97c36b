"""``SHOW SHARDGATE SHARDS``: one row per shard and role, the same columns over both protocols."""
from __future__ import annotations

from typing import Any

from sharding.snapshot import ClusterSnapshot

__all__ = ["SHARD_COLUMNS", "shard_rows"]

SHARD_COLUMNS = ("keyspace", "shard", "key_range", "engine", "backend", "role", "health")


def _backend_text(spec: Any) -> tuple[str, str]:
    items = spec if isinstance(spec, (list, tuple)) else [spec]
    engines, addrs = [], []
    for item in items:
        engines.append(str(getattr(item, "engine", "?")))
        host, port = getattr(item, "host", "?"), getattr(item, "port", "?")
        addrs.append(f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}")
    return ",".join(dict.fromkeys(engines)), ",".join(addrs)


def shard_rows(snapshot: ClusterSnapshot, pools: Any | None) -> list[tuple[str, ...]]:
    """keyspace, shard, key range, engine, backend host:port, role, health (from the pool: ``serving`` or
    ``down``; ``not serving`` when no pool exists for it, ``unknown`` without pools)."""
    rows = []
    for ks_name in sorted(snapshot.keyspaces):
        for shard in snapshot.keyspaces[ks_name].shards:
            for role, spec in sorted(shard.backends.items()):
                engine, backend = _backend_text(spec)
                if pools is None:
                    health = "unknown"
                else:
                    try:
                        health = "down" if pools.pool(ks_name, shard.name, role).stats().down else "serving"
                    except Exception:  # no pool for this target (e.g. a role without servers)
                        health = "not serving"
                key_range = str(shard.key_range) if "-" in shard.name else "-"
                rows.append((ks_name, shard.name, key_range, engine, backend, role, health))
    return rows
