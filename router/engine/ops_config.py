"""The config sections of consolidation, buffering and replica health, checked like the rest of the file::

    consolidation:                 # router.engine.consolidate
      enabled: true
      max_waiters: 1000            # followers of one execution
      max_rows: 10000              # larger results are not shared
      max_bytes: 8388608           # the same for relayed bytes (PostgreSQL passthrough)
      large_ttl: 10                # seconds a too-large statement is run unshared
      tables: {"customer.audit_*": false}   # keyspace.table or glob -> on/off (first match; exact names first)
      users: {batch: false}
    buffering:                     # router.engine.buffering
      max_wait: 10                 # seconds one statement may wait for a paused shard
      max_requests: 1000           # statements waiting per shard
      max_pause: 30                # a pause resumes by itself after this long
    replica_health:                # router.backend.health
      check_interval: 1
      max_lag: 30                  # seconds behind before a replica is banned
      ban_seconds: 5
      timeout: 2
      fallback: primary            # or error: replica reads fail when no replica can take them
      users: {reporting: replica}  # default tablet type of a user's reads
"""
from __future__ import annotations

from typing import Any

from router.backend.health import ReplicaHealthConfig
from router.engine.buffering import BufferConfig
from router.engine.consolidate import ConsolidationConfig
from sharding.config import SectionContext
from sharding.yamldoc import DocChecker, describe, join_path

__all__ = ["check_buffering", "check_consolidation", "check_replica_health"]


def _number(c: DocChecker, value: Any, path: str, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        c.problem(path, f"expected a number in [{low:g}, {high:g}], got {describe(value)}")
        return None
    return float(value)


def _switches(c: DocChecker, value: Any, path: str, what: str) -> dict[str, bool] | None:
    if not isinstance(value, dict):
        c.problem(path, f"expected a mapping of {what} (or glob) to true/false, got {describe(value)}")
        return None
    out = {}
    for name, on in value.items():
        flag = c.boolean(on, join_path(path, name))
        if flag is not None:
            out[str(name)] = flag
    return out if len(out) == len(value) else None


def check_consolidation(c: DocChecker, value: Any, path: str, ctx: SectionContext) -> ConsolidationConfig | None:
    section = c.mapping(value, path, ["enabled", "max_waiters", "max_rows", "max_bytes", "large_ttl", "tables",
                                      "users"])
    if section is None:
        return None
    out: dict[str, Any] = {}
    problems = len(c.problems)
    if "enabled" in section:
        out["enabled"] = c.boolean(section["enabled"], join_path(path, "enabled"))
    for key, high in (("max_waiters", 1_000_000), ("max_rows", 100_000_000), ("max_bytes", 2**40)):
        if key in section:
            out[key] = c.integer(section[key], join_path(path, key), 0, high)
    if "large_ttl" in section:
        out["large_ttl"] = _number(c, section["large_ttl"], join_path(path, "large_ttl"), 0, 86400)
    if "tables" in section:
        out["tables"] = _switches(c, section["tables"], join_path(path, "tables"), "keyspace.table")
    if "users" in section:
        users = _switches(c, section["users"], join_path(path, "users"), "user name")
        for name in users or ():
            if "*" not in name and "?" not in name and name not in ctx.users:
                c.problem(join_path(path, "users", name), "no such user")
        out["users"] = users
    return ConsolidationConfig(**out) if len(c.problems) == problems else None


def check_buffering(c: DocChecker, value: Any, path: str, ctx: SectionContext) -> BufferConfig | None:
    section = c.mapping(value, path, ["max_wait", "max_requests", "max_pause"])
    if section is None:
        return None
    problems = len(c.problems)
    out: dict[str, Any] = {}
    for key in ("max_wait", "max_pause"):
        if key in section:
            out[key] = _number(c, section[key], join_path(path, key), 0, 3600)
    if "max_requests" in section:
        out["max_requests"] = c.integer(section["max_requests"], join_path(path, "max_requests"), 0, 1_000_000)
    return BufferConfig(**out) if len(c.problems) == problems else None


def check_replica_health(c: DocChecker, value: Any, path: str, ctx: SectionContext) -> ReplicaHealthConfig | None:
    section = c.mapping(value, path, ["check_interval", "max_lag", "ban_seconds", "timeout", "fallback", "users"])
    if section is None:
        return None
    problems = len(c.problems)
    out: dict[str, Any] = {}
    for key, low in (("check_interval", 0.01), ("max_lag", 0), ("ban_seconds", 0), ("timeout", 0.01)):
        if key in section:
            out[key] = _number(c, section[key], join_path(path, key), low, 86400)
    if "fallback" in section:
        if section["fallback"] not in ("primary", "error"):
            c.problem(join_path(path, "fallback"), f"expected primary or error, got {describe(section['fallback'])}")
        out["fallback"] = section["fallback"]
    if "users" in section:
        users = section["users"]
        if not isinstance(users, dict):
            c.problem(join_path(path, "users"), f"expected a mapping of user to tablet type, got {describe(users)}")
        else:
            for name, kind in users.items():
                if name not in ctx.users:
                    c.problem(join_path(path, "users", name), "no such user")
                if kind not in ("primary", "replica", "rdonly"):
                    c.problem(join_path(path, "users", name), f"expected primary, replica or rdonly, got "
                                                              f"{describe(kind)}")
            out["users"] = dict(users)
    return ReplicaHealthConfig(**out) if len(c.problems) == problems else None
