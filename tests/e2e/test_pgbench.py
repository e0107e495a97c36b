"""pgbench through the router (``python -m router.serve``, uvloop) on a sharded keyspace of real PostgreSQL.

VSchema DDL shards the pgbench tables by their ids (accounts by aid, history by aid, branches by bid, tellers by
tid), ``pgbench -i`` creates and loads them through the router (DDL fan-out, COPY routed row by row, VACUUM on
every shard), then ``-S`` and the TPC-B-like script run with ``-M simple``, ``-M extended`` and ``-M prepared``
with zero failed transactions. Short, bounded runs.
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from sharding import db
from tests.support.backends import DatabaseServer, connected
from tests.support.pg_router import USERS, Cluster, RouterProcess, make_cluster

pytestmark = [pytest.mark.backend, pytest.mark.timeout(240),
              pytest.mark.skipif(shutil.which("pgbench") is None and os.environ.get("CI") != "true",
                                 reason="pgbench not installed")]

VSCHEMA_DDL = """
ALTER VSCHEMA ON pgbench_accounts ADD VINDEX hash(aid) USING hash;
ALTER VSCHEMA ON pgbench_history ADD VINDEX hash(aid) USING hash;
ALTER VSCHEMA ON pgbench_branches ADD VINDEX hash(bid) USING hash;
ALTER VSCHEMA ON pgbench_tellers ADD VINDEX hash(tid) USING hash;
"""


@pytest.fixture(scope="module")
def cluster(pg_cluster: list[DatabaseServer]) -> Iterator[Cluster]:
    c = asyncio.run(make_cluster(pg_cluster))
    yield c
    c.drop()


@pytest.fixture(scope="module")
def router(cluster: Cluster) -> Iterator[RouterProcess]:
    r = RouterProcess(cluster.doc).start()
    yield r
    code = r.stop()
    out = r.output()
    assert code == 0, out[-3000:]
    assert "internal errors" not in out, out[-3000:]


def _env() -> dict[str, str]:
    return {**os.environ, "PGPASSWORD": USERS["app"], "PGCONNECT_TIMEOUT": "10"}


def _run(args: list[str], timeout: float = 120) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=_env(), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    return out


def _count(cluster: Cluster, shard: str, table: str) -> int:
    async def go() -> int:
        async with connected(cluster.dsns[f"customer/{shard}"]) as conn:
            return int((await db.fetch_all(conn, f"SELECT count(*) FROM {table}"))[0][0])

    return asyncio.run(go())


def test_pgbench_init_and_runs(router: RouterProcess, cluster: Cluster) -> None:
    conn = ["-h", "127.0.0.1", "-p", str(router.port), "-U", "app"]
    _run(["psql", "-X", "-v", "ON_ERROR_STOP=1", *conn, "-d", "customer", "-c", VSCHEMA_DDL])
    out = _run(["pgbench", "-i", "-s", "1", *conn, "customer"])
    assert "done in" in out, out
    a, b = _count(cluster, "-80", "pgbench_accounts"), _count(cluster, "80-", "pgbench_accounts")
    assert a + b == 100_000 and 40_000 < a < 60_000, (a, b)
    assert _count(cluster, "-80", "pgbench_tellers") + _count(cluster, "80-", "pgbench_tellers") == 10
    for mode in ("simple", "extended", "prepared"):
        for script in (["-S"], []):
            out = _run(["pgbench", *conn, *script, "-M", mode, "-c", "4", "-j", "2", "-T", "1", "-n", "customer"])
            failed = re.search(r"number of failed transactions: (\d+)", out)
            tps = re.search(r"tps = ([0-9.]+)", out)
            assert failed is not None and failed.group(1) == "0", out
            assert tps is not None and float(tps.group(1)) > 10, out
            assert "error" not in out.lower(), out
    # the TPC-B runs wrote history rows on both shards, and balances still add up across shards
    sums = _run(["psql", "-X", "-At", *conn, "-d", "customer", "-c", "SELECT sum(abalance) FROM pgbench_accounts",
                 "-c", "SELECT sum(delta) FROM pgbench_history", "-c", "SELECT sum(tbalance) FROM pgbench_tellers",
                 "-c", "SELECT count(*) FROM pgbench_history"]).split()
    assert sums[0] == sums[1] == sums[2] and int(sums[3]) > 0, sums
