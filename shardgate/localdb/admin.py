"""Admin statements (run_sql, create/drop database) for local and already-running servers alike.

Blocking calls that work from sync code and from inside a running event loop.
"""
from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sharding import db

_DB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
_T = TypeVar("_T")


def _run_async(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion on a private loop in a helper thread.

    Safe from sync code and from inside a running loop alike, and it never touches the caller's current loop
    (``asyncio.run`` in the main thread would reset the loop pytest-asyncio installed).
    """
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            box["value"] = asyncio.run(factory())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=runner, name="shardgate-localdb-admin", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


# --- admin statements, for local and already-running servers alike ------------------------------------------------
def run_sql(dsn: db.DSN, *statements: str) -> None:
    """Run statements on one connection, blocking (from sync code or from inside a running loop)."""

    async def run() -> None:
        conn = await db.connect(dsn)
        try:
            for sql in statements:
                await db.execute(conn, sql)
        finally:
            await db.close(conn)

    _run_async(run)


def create_database(dsn: db.DSN, name: str) -> db.DSN:
    """Create database ``name`` on the server ``dsn`` names, unless it exists; returns the DSN for it."""
    _check_db_name(name)

    async def run() -> None:
        # Log in to a database that surely exists: the DSN's own may be the one being created.
        conn = await db.connect(dsn.with_database("postgres" if dsn.engine == "postgres" else ""))
        try:
            if dsn.engine == "mysql":
                await db.execute(conn, f"CREATE DATABASE IF NOT EXISTS `{name}`")
            elif not await db.fetch_all(conn, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
                await db.execute(conn, f'CREATE DATABASE "{name}"')
        finally:
            await db.close(conn)

    _run_async(run)
    return dsn.with_database(name)


def drop_database(dsn: db.DSN, name: str) -> None:
    """Drop database ``name`` if it exists (PostgreSQL: disconnecting its sessions first)."""
    _check_db_name(name)
    if dsn.engine == "mysql":
        # A session (or a prepared XA transaction) still holding locks there would make DROP wait for long.
        run_sql(dsn.with_database(""), "SET SESSION lock_wait_timeout = 10, innodb_lock_wait_timeout = 10",
                f"DROP DATABASE IF EXISTS `{name}`")
    else:
        run_sql(dsn.with_database("postgres"), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _check_db_name(name: str) -> None:
    if not _DB_NAME.match(name):
        raise ValueError(f"database name {name!r}: use letters, digits and '_' (at most 63)")
