"""Real database servers for the test session (the fixtures in ``tests/conftest.py`` hand these out).

By default each engine's servers are started once per session from the installed binaries
(``shardgate.localdb``), in the background as soon as collection shows a test needs them, and destroyed when the
session ends. ``SHARDGATE_TEST_PG_DSNS`` / ``SHARDGATE_TEST_MYSQL_DSNS`` (comma-separated URLs) name servers
that are already running instead. ``SHARDGATE_TEST_PG_COUNT`` / ``SHARDGATE_TEST_MYSQL_COUNT`` raise the number
started (default 2 each).

Policy (DESIGN.md: real servers in tests): under ``CI=true`` a backend that cannot start fails the tests that need
it; elsewhere they skip, saying what is missing.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import NoReturn

import pytest

from shardgate import localdb
from shardgate.localdb import LocalCluster, LocalServer
from sharding import db
from sharding.errors import BackendUnavailableError, ConfigError

ENGINES: tuple[db.Engine, ...] = ("postgres", "mysql")
DEFAULT_COUNTS: dict[db.Engine, int] = {"postgres": 2, "mysql": 2}
COUNT_ENV: dict[db.Engine, str] = {"postgres": "SHARDGATE_TEST_PG_COUNT", "mysql": "SHARDGATE_TEST_MYSQL_COUNT"}
DSNS_ENV: dict[db.Engine, str] = {"postgres": "SHARDGATE_TEST_PG_DSNS", "mysql": "SHARDGATE_TEST_MYSQL_DSNS"}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def backend_unavailable(reason: str | BaseException) -> NoReturn:
    """Fail (under CI) or skip (elsewhere) the current test because a backend it needs is missing."""
    text = str(reason)
    if in_ci():
        pytest.fail(f"backend unavailable under CI=true: {text}", pytrace=False)
    pytest.skip(f"backend unavailable: {text}")


class ExternalServer:
    """A server someone else runs, named by an env DSN: the same read surface as a LocalServer, no lifecycle.

    Tests that stop or kill servers start their own ``shardgate.localdb`` instances instead.
    """

    def __init__(self, dsn: db.DSN, name: str) -> None:
        self.dsn = dsn
        self.name = name

    @property
    def engine(self) -> db.Engine:
        return self.dsn.engine

    @property
    def host(self) -> str:
        return self.dsn.host

    @property
    def port(self) -> int:
        return self.dsn.port

    @property
    def user(self) -> str:
        return self.dsn.user

    @property
    def password(self) -> str:
        return self.dsn.password

    @property
    def database(self) -> str:
        return self.dsn.database

    def dsn_for(self, database: str) -> db.DSN:
        return self.dsn.with_database(database)

    def create_database(self, name: str) -> db.DSN:
        return localdb.create_database(self.dsn, name)

    def drop_database(self, name: str) -> None:
        localdb.drop_database(self.dsn, name)

    def execute(self, *statements: str) -> None:
        localdb.run_sql(self.dsn, *statements)

    def __repr__(self) -> str:
        return f"<ExternalServer {self.name} {self.dsn}>"


DatabaseServer = LocalServer | ExternalServer


@dataclass(frozen=True)
class Backends:
    """What the ``backends`` fixture gives: both engines' servers."""

    postgres: list[DatabaseServer]
    mysql: list[DatabaseServer]


@contextlib.asynccontextmanager
async def connected(dsn: db.DSN) -> AsyncIterator[db.Connection]:
    """``async with connected(server.dsn) as conn:`` one connection through sharding.db, closed afterwards."""
    conn = await db.connect(dsn)
    try:
        yield conn
    finally:
        await db.close(conn)


def counts_from_env() -> dict[db.Engine, int]:
    counts = dict(DEFAULT_COUNTS)
    for engine, var in COUNT_ENV.items():
        if os.environ.get(var):
            counts[engine] = int(os.environ[var])
    return counts


def external_servers(engine: db.Engine) -> list[ExternalServer] | None:
    """The servers ``SHARDGATE_TEST_*_DSNS`` names, or None when it is unset."""
    raw = os.environ.get(DSNS_ENV[engine], "").strip()
    if not raw:
        return None
    servers = []
    for i, url in enumerate(u for u in raw.split(",") if u.strip()):
        dsn = db.DSN.parse(url)
        if dsn.engine != engine:
            raise ConfigError(f"{DSNS_ENV[engine]} entry {i} is a {dsn.engine} DSN, expected {engine}")
        servers.append(ExternalServer(dsn, f"{engine}-env{i}"))
    return servers


class BackendManager:
    """Starts each engine's servers at most once, in the background, and tears them all down at the end."""

    def __init__(self, counts: Mapping[db.Engine, int] | None = None) -> None:
        self.counts = dict(counts or counts_from_env())
        self._lock = threading.Lock()
        self._futures: dict[db.Engine, Future[list[DatabaseServer]]] = {}
        self._clusters: list[LocalCluster] = []
        self._pool = ThreadPoolExecutor(max_workers=len(ENGINES), thread_name_prefix="shardgate-backends")
        self._closed = False

    def prestart(self, engines: set[db.Engine]) -> None:
        """Begin starting these engines now (tests ask for them later through ``servers``)."""
        for engine in ENGINES:
            if engine in engines:
                self._future(engine)

    def servers(self, engine: db.Engine) -> list[DatabaseServer]:
        """This engine's servers, started if need be. BackendUnavailableError (cached) when they cannot start."""
        try:
            return self._future(engine).result()
        except BackendUnavailableError:
            raise
        except Exception as exc:  # a bad env DSN, a bug: still reported as "cannot have this backend"
            raise BackendUnavailableError(f"{engine} test servers: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)  # a start in progress finishes first
        for cluster in self._clusters:
            cluster.destroy()
        self._clusters.clear()

    def _future(self, engine: db.Engine) -> Future[list[DatabaseServer]]:
        with self._lock:
            if self._closed:
                raise BackendUnavailableError("the test session is over")
            if engine not in self._futures:
                self._futures[engine] = self._pool.submit(self._start, engine)
            return self._futures[engine]

    def _start(self, engine: db.Engine) -> list[DatabaseServer]:
        external = external_servers(engine)
        if external is not None:
            return list(external)
        n = self.counts[engine]
        cluster = LocalCluster(postgres=n if engine == "postgres" else 0, mysql=n if engine == "mysql" else 0)
        with self._lock:
            self._clusters.append(cluster)
        cluster.start()
        return list(cluster.servers)
