"""Session-wide test policy and the real-database fixtures.

Fixtures (types in ``tests.support.backends``):

- ``pg_cluster`` / ``mysql_cluster`` (session): ``list[DatabaseServer]``, the PostgreSQL 15 / MariaDB servers of this
  session (2 each by default). Each has ``.dsn`` (a ``sharding.db.DSN``), ``.create_database(name)``,
  ``.execute(*sql)``. They are shared: a test that stops, kills or restarts servers starts its own
  ``shardgate.localdb.LocalCluster`` (as ``tests/integration/test_backends.py`` does).
- ``backends`` (session): ``Backends(postgres=[...], mysql=[...])``, both engines.
- ``pg_databases`` / ``mysql_databases`` (function): ``list[DSN]``, one new empty database per server, named after
  the test and dropped after it: the usual starting point of a sharded test.

Policy:

- Servers start once per session, in the background as soon as collection shows a test needs them.
- Under ``CI=true`` a backend that cannot start fails the tests that need it, and every skip becomes a failure;
  elsewhere they skip with the reason.
- ``@pytest.mark.docker`` tests are deselected unless ``SHARDGATE_TEST_DOCKER=1``.
- Every ``async def`` test runs under an asyncio timeout (``ASYNC_TEST_TIMEOUT`` s by default, or just under its
  ``@pytest.mark.timeout(N)``), so a hung await fails that test and the session's event loop survives.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import re
import secrets
import signal
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from sharding import db
from sharding.errors import BackendUnavailableError
from tests.support.backends import BackendManager, Backends, DatabaseServer, backend_unavailable, in_ci

ASYNC_TEST_TIMEOUT = float(os.environ.get("SHARDGATE_TEST_ASYNC_TIMEOUT", "120"))

_PG_FIXTURES = frozenset({"pg_cluster", "pg_databases", "backends"})
_MYSQL_FIXTURES = frozenset({"mysql_cluster", "mysql_databases", "backends"})

_manager: BackendManager | None = None
_SKIPS_FAILED_AT_COLLECTION = pytest.StashKey[int]()


def _backend_manager() -> BackendManager:
    global _manager
    if _manager is None:
        _manager = BackendManager()
    return _manager


# --- session hooks ----------------------------------------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SKIPS_FAILED_AT_COLLECTION] = 0
    # A SIGTERM (CI cancelling the job) unwinds like Ctrl-C, so session teardown stops the servers we started.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm_to_keyboard_interrupt)


def _sigterm_to_keyboard_interrupt(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    docker_enabled = os.environ.get("SHARDGATE_TEST_DOCKER") == "1"
    keep, deselected = [], []
    for item in items:
        if not docker_enabled and item.get_closest_marker("docker"):
            deselected.append(item)
            continue
        keep.append(item)
        names = set(getattr(item, "fixturenames", ()))
        if names & (_PG_FIXTURES | _MYSQL_FIXTURES) and not item.get_closest_marker("backend"):
            item.add_marker(pytest.mark.backend)
        if isinstance(item, pytest.Function):
            _add_async_timeout(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the servers the selected tests need now, so they boot while the first tests run."""
    if session.config.option.collectonly:
        return
    engines: set[db.Engine] = set()
    for item in session.items:
        names = set(getattr(item, "fixturenames", ()))
        if names & _PG_FIXTURES:
            engines.add("postgres")
        if names & _MYSQL_FIXTURES:
            engines.add("mysql")
    if engines:
        _backend_manager().prestart(engines)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _manager
    if _manager is not None:
        _manager.close()
        _manager = None


# --- CI: no skips -------------------------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every skip is a failure: {_skip_reason(report)}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector
                               ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if in_ci() and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"module skipped under CI=true, where every skip is a failure: {_skip_reason(report)}"
        collector.config.stash[_SKIPS_FAILED_AT_COLLECTION] += 1
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    """Those collection failures fail the run, but unlike real collection errors they do not stop it."""
    converted = session.config.stash.get(_SKIPS_FAILED_AT_COLLECTION, 0)
    session.testsfailed -= converted
    try:
        return (yield)
    finally:
        session.testsfailed += converted


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


# --- a timeout for every async test ---------------------------------------------------------------------------
def _add_async_timeout(item: pytest.Function) -> None:
    func = item.obj
    if not inspect.iscoroutinefunction(func) or getattr(func, "_shardgate_timeout", None):
        return
    marker = item.get_closest_marker("timeout")
    if marker is not None and (marker.args or "timeout" in marker.kwargs):
        limit = float(marker.args[0] if marker.args else marker.kwargs["timeout"]) * 0.95
    else:
        limit = ASYNC_TEST_TIMEOUT
    if limit <= 0:
        return

    @functools.wraps(func)
    async def with_timeout(*args: Any, **kwargs: Any) -> Any:
        scope = asyncio.timeout(limit)
        try:
            async with scope:
                return await func(*args, **kwargs)
        except TimeoutError:
            if not scope.expired():
                raise  # the test's own timeout, not ours
        pytest.fail(f"async test still running after {limit:g} s (asyncio timeout; raise it with "
                    "@pytest.mark.timeout(N))", pytrace=False)

    with_timeout._shardgate_timeout = limit  # type: ignore[attr-defined]
    item.obj = with_timeout


# --- real databases -------------------------------------------------------------------------------------------
def _servers(engine: db.Engine) -> list[DatabaseServer]:
    try:
        return _backend_manager().servers(engine)
    except Exception as exc:
        error = exc
    backend_unavailable(error)  # outside the except block: the report shows the reason, not a traceback chain


@pytest.fixture(scope="session")
def pg_cluster() -> list[DatabaseServer]:
    """The session's PostgreSQL servers (``SHARDGATE_TEST_PG_DSNS`` names running ones instead)."""
    return _servers("postgres")


@pytest.fixture(scope="session")
def mysql_cluster() -> list[DatabaseServer]:
    """The session's MariaDB servers (``SHARDGATE_TEST_MYSQL_DSNS`` names running ones instead)."""
    return _servers("mysql")


@pytest.fixture(scope="session")
def backends(pg_cluster: list[DatabaseServer], mysql_cluster: list[DatabaseServer]) -> Backends:
    return Backends(postgres=pg_cluster, mysql=mysql_cluster)


def _fresh_databases(servers: list[DatabaseServer], request: pytest.FixtureRequest) -> Iterator[list[db.DSN]]:
    stem = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower()).strip("_")[:40]
    name = f"t_{stem}_{secrets.token_hex(3)}"
    dsns = [server.create_database(name) for server in servers]
    yield dsns
    for server in servers:
        with contextlib.suppress(BackendUnavailableError):  # a test may have left its server stopped
            server.drop_database(name)


@pytest.fixture
def pg_databases(pg_cluster: list[DatabaseServer], request: pytest.FixtureRequest) -> Iterator[list[db.DSN]]:
    """One new database per PostgreSQL server, named after the test, dropped afterwards."""
    yield from _fresh_databases(pg_cluster, request)


@pytest.fixture
def mysql_databases(mysql_cluster: list[DatabaseServer], request: pytest.FixtureRequest) -> Iterator[list[db.DSN]]:
    """One new database per MariaDB server, named after the test, dropped afterwards."""
    yield from _fresh_databases(mysql_cluster, request)
