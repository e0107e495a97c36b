"""Structured log lines of the backend layer: one logger, fixed field names, never SQL text or credentials.

Fields (``extra=``): ``event``, ``keyspace``, ``shard``, ``role``, ``backend`` (``host:port``), ``conn_id``
(PostgreSQL backend pid / MySQL thread id), ``duration_ms``, ``error`` (an error *class* or code, never a server
message: those can quote row values), ``generation``, ``size``, ``in_use``, ``waiters``, ``delay_s``, ``reason``.
"""
from __future__ import annotations

import logging
from typing import Any

from router.backend.connection import BackendTarget

__all__ = ["logger", "log_event"]

logger = logging.getLogger("shardgate.backend")


def log_event(level: int, event: str, target: BackendTarget | None, **fields: Any) -> None:
    """Log ``event`` for ``target`` with fixed field names; the message repeats them for plain-text handlers."""
    if not logger.isEnabledFor(level):
        return
    extra: dict[str, Any] = {"event": event, **fields}
    if target is not None:
        extra.update(keyspace=target.keyspace, shard=target.shard, role=target.role)
    detail = " ".join(f"{key}={value}" for key, value in fields.items())
    logger.log(level, "%s %s %s", event, target or "-", detail, extra=extra)
