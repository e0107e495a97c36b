"""MySQL 8.0 and PostgreSQL 16 in containers (testcontainers), reached through ``sharding.db``.

Collected only with ``SHARDGATE_TEST_DOCKER=1`` (tests/conftest.py deselects ``docker`` tests otherwise). When
enabled and no Docker engine answers, the tests skip, or fail under ``CI=true``.
"""
from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from sharding import db
from tests.support.backends import backend_unavailable, connected

pytestmark = [pytest.mark.docker, pytest.mark.backend, pytest.mark.timeout(600)]

ENGINES = {
    # engine: (image, container port, expected version prefix)
    "mysql": ("mysql:8.0", 3306, "8.0."),
    "postgres": ("postgres:16", 5432, "16."),
}


@pytest.fixture(scope="module")
def docker_engine() -> None:
    try:
        import docker

        docker.from_env(timeout=10).ping()
    except Exception as exc:
        backend_unavailable(f"no Docker engine answers ({type(exc).__name__}: {exc})")


def _container(engine: str) -> Any:
    image, port, _ = ENGINES[engine]
    if engine == "mysql":
        from testcontainers.mysql import MySqlContainer

        container = MySqlContainer(image, username="shardgate", password="sg-docker-pw", dbname="shardgate")
    else:
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer(image, username="shardgate", password="sg-docker-pw", dbname="shardgate",
                                      driver=None)
    if not os.environ.get("DOCKER_HOST", "").startswith(("tcp:", "ssh:")):
        container.ports[str(port)] = ("127.0.0.1", None)  # loopback only, random host port
    return container


@pytest.mark.parametrize("engine", sorted(ENGINES))
async def test_container_smoke_query_through_sharding_db(docker_engine: None, engine: str) -> None:
    image, port, version_prefix = ENGINES[engine]
    container = _container(engine)
    try:
        await asyncio.to_thread(container.start)
    except Exception as exc:
        backend_unavailable(f"cannot start {image}: {type(exc).__name__}: {exc}")
    try:
        host = container.get_container_host_ip()
        dsn = db.DSN(engine=engine,  # type: ignore[arg-type]
                     host="127.0.0.1" if host == "localhost" else host,
                     port=int(container.get_exposed_port(port)), database="shardgate", user="shardgate",
                     password="sg-docker-pw")
        result = await db.probe(dsn, timeout=30)
        assert result.ok, result
        assert result.server_version and result.server_version.startswith(version_prefix), result
        async with connected(dsn) as conn:
            await db.execute(conn, "CREATE TABLE smoke (id int PRIMARY KEY, s varchar(10))")
            await db.execute(conn, "INSERT INTO smoke VALUES (1, '\u2713')")
            assert await db.fetch_all(conn, "SELECT id, s FROM smoke") == [(1, "\u2713")]
    finally:
        await asyncio.to_thread(container.stop)
