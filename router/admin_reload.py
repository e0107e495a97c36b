"""``RELOAD`` and ``SHOW SHARDGATE RULES`` (admin console, both protocols), SIGHUP, and what they apply.

``ConfigReloader.reload()`` reads the config file again (``router.config_sections.load_config``: strict, every
problem reported) and, only when it is valid, swaps in

- users: new logins use the new verifiers and roles (the frontends' user tables); sessions already open keep their
  login, and their next admin statement is judged by the new roles;
- ACLs and query rules (``gateway.access``, one ``AccessPolicy`` assignment): every open session's next statement
  is judged by them;
- the VSchema and the backends (shard addresses): a new ``ClusterSnapshot`` is installed through the gateway's
  snapshot machinery (``PoolSet.apply``: unchanged pools keep their warm connections, removed ones drain); with a
  topology store the VSchema follows the store instead, so a changed VSchema in the file is reported, not applied.

Client connections stay open throughout. A config with problems changes nothing: RELOAD fails with them (one per
line, ``ConfigError``: MySQL 1105 / PostgreSQL F0000) and SIGHUP logs them. Reloads run one at a time.

``RELOAD`` answers one row per part (``item``, ``change``) and the new config's warnings as notes. It reloads the
worker that runs it; with several workers it also signals the parent process, which passes SIGHUP to every worker.
The statements are parsed by ``router.planner.special`` (as ``Show`` kinds ``shardgate_reload`` and
``shardgate_rules``) and answered by ``router.engine.session`` through ``reload_statement``.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router.access import AccessPolicy
from router.planner.plan import Plan
from sharding.config import ClusterConfig
from sharding.errors import ConfigError
from sharding.snapshot import ClusterSnapshot
from sharding.topology.vschema_store import shards_from_config

__all__ = ["RELOAD_SHOWS", "ConfigReloader", "ReloadReport", "reload_statement", "reloader_of",
           "replicas_serve"]

log = logging.getLogger("shardgate.reload")
RELOAD_SHOWS = frozenset({"shardgate_rules", "shardgate_reload"})

UsersSink = Callable[[ClusterConfig], None]


@dataclass
class ReloadReport:
    """What a reload changed: ``rows`` (item, change) and the new config's warnings."""

    rows: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class ConfigReloader:
    """Re-reads ``path`` and applies it to ``gateway`` and the registered frontends (see the module docstring)."""

    def __init__(self, gateway: Any, path: str | os.PathLike[str]) -> None:
        self.gateway = gateway
        self.path = Path(path)
        self.signal_parent = False  # a worker of several: RELOAD also asks the parent to SIGHUP the others
        self._sinks: list[UsersSink] = []
        self._lock = asyncio.Lock()

    def attach_frontend(self, frontend: Any) -> None:
        """Keep a frontend's user table in step: a ``PgFrontend`` (``policy.users``) or a ``MysqlListener``
        (``frontend.config``, which its logins read)."""
        if hasattr(frontend, "policy"):
            policy = frontend.policy

            def pg_users(config: ClusterConfig) -> None:
                policy.users = {u.name: u for u in config.users}

            self._sinks.append(pg_users)
        elif hasattr(getattr(frontend, "frontend", None), "config"):
            inner = frontend.frontend

            def mysql_users(config: ClusterConfig) -> None:
                inner.config = config

            self._sinks.append(mysql_users)
        else:
            raise TypeError(f"cannot keep the users of {type(frontend).__name__} up to date")

    async def reload(self) -> ReloadReport:
        """Apply the file; ``ConfigError`` listing its problems (nothing changed) when it is not valid."""
        from router.config_sections import load_config  # not at import: it imports the engine, which imports us

        async with self._lock:
            try:
                new = await asyncio.to_thread(load_config, self.path)
            except ConfigError as exc:
                problems = exc.problems
                raise ConfigError("RELOAD failed; the running config is kept:\n" + "\n".join(problems),
                                  problems=problems) from None
            return await self._apply(new)

    async def reload_logged(self) -> None:
        """SIGHUP: reload, logging the outcome (a signal has nobody to answer)."""
        try:
            report = await self.reload()
        except ConfigError as exc:
            log.error("reload failed; the running config is kept: %s", "; ".join(exc.problems),
                      extra={"event": "reload_failed", "problems": exc.problems})
            return
        except Exception:
            log.exception("reload failed; the running config is kept")
            return
        for warning in report.warnings:
            log.warning("%s", warning)
        log.info("reloaded %s: %s", self.path, ", ".join(f"{k} {v}" for k, v in report.rows),
                 extra={"event": "reloaded", "changes": dict(report.rows)})

    async def _apply(self, new: ClusterConfig) -> ReloadReport:
        gw = self.gateway
        old: ClusterConfig = gw.config
        report = ReloadReport(warnings=list(new.warnings))
        vschema_changed = new.vschema.to_json() != old.vschema.to_json()
        old_shards, new_shards = shards_from_config(old), shards_from_config(new)
        backends_changed = new_shards != old_shards
        # Build (and so check) the new snapshot before anything is swapped.
        snapshot: ClusterSnapshot | None = None
        topology = getattr(gw, "_topology", False)
        if (vschema_changed and not topology) or backends_changed:
            current = gw.snapshot
            base = gw._vschema_version if getattr(gw, "_vschema_version", None) is not None else current.version
            vschema = current.vschema if topology else new.vschema
            snapshot = ClusterSnapshot.build(base + 1, vschema, new_shards)
        if snapshot is not None:
            await gw._install(snapshot)
        gw.config = new
        gw.access = AccessPolicy.of(new)
        for sink in self._sinks:
            sink(new)
        if snapshot is not None and vschema_changed and getattr(gw, "track_schema", False):
            try:
                await gw.reload_schema()
            except Exception as exc:  # the swap went through; the schema is read again after the next DDL
                report.warnings.append(f"reading the shards' schema after the reload failed: {type(exc).__name__}")
        policy: AccessPolicy = gw.access
        report.rows = [
            ("users", f"{len(new.users)}{' (changed)' if new.users != old.users else ''}"),
            ("acl", "none" if policy.acl is None else
             f"{len(policy.acl.keyspaces)} keyspaces{' (changed)' if _acl_changed(old, new) else ''}"),
            ("rules", f"{len(policy.rules)}{' (changed)' if _rules_changed(old, new) else ''}"),
            ("vschema", ("changed in the file; not applied: the topology store is followed (ALTER VSCHEMA)"
                         if topology else "changed") if vschema_changed else "unchanged"),
            ("backends", "changed" if backends_changed else "unchanged"),
        ]
        return report


def _acl_changed(old: ClusterConfig, new: ClusterConfig) -> bool:
    a, b = old.sections.get("acl"), new.sections.get("acl")
    if a is None or b is None:
        return (a is None) != (b is None)
    return (dict(a.keyspaces), dict(a.groups), a.default) != (dict(b.keyspaces), dict(b.groups), b.default)


def _rules_changed(old: ClusterConfig, new: ClusterConfig) -> bool:
    a, b = old.sections.get("rules"), new.sections.get("rules")
    return (a.rules if a is not None else ()) != (b.rules if b is not None else ())


def reloader_of(gateway: Any) -> ConfigReloader:
    """The gateway's reloader, made on first use when its config came from a file."""
    reloader = getattr(gateway, "reloader", None)
    if reloader is not None:
        return reloader  # type: ignore[no-any-return]
    source = Path(gateway.config.source)
    if not source.is_file():
        raise ConfigError("RELOAD needs a config file, and this router was started from a document in memory")
    reloader = ConfigReloader(gateway, source)
    gateway.reloader = reloader
    return reloader


async def reload_statement(session: Any, kind: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]], list[str]]:
    """The answer of ``SHOW SHARDGATE RULES`` or ``RELOAD`` for ``session`` (whose admin role is checked by the
    caller): column names, rows, notes."""
    host = session.host
    if kind == "shardgate_rules":
        policy = getattr(host, "access", None)
        rules = policy.rules.describe() if policy is not None else []
        return ("#", "name", "match", "action"), [tuple(r) for r in rules], []
    reloader = reloader_of(host)
    report = await reloader.reload()
    if reloader.signal_parent:
        os.kill(os.getppid(), signal.SIGHUP)  # the parent passes it to every worker (this one reloads again: a no-op)
    return ("item", "change"), list(report.rows), report.warnings


def replicas_serve(plan: Plan, snapshot: ClusterSnapshot) -> bool:
    """Whether a rule's ``route: replica`` can send ``plan`` to replicas: a read whose every keyspace has a replica
    on every shard (otherwise it stays on the primary rather than failing)."""
    if plan.kind != "select" or not plan.tables:
        return False
    for keyspace in {t.partition(".")[0] for t in plan.tables}:
        try:
            shards = snapshot.shards(keyspace)
        except Exception:
            return False
        if not shards or not all(s.backends.get("replica") for s in shards):
            return False
    return True
