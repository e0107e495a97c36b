"""sysbench through the router (``python -m router.serve``, uvloop) on a sharded keyspace of real MariaDB.

The VSchema is made with VSchema DDL through the MySQL port: the sbtest tables are sharded by ``id`` with ``hash``.
``sysbench oltp_read_write prepare`` creates and loads them through the router, once with ``--auto-inc=off``
(sysbench sends the ids) and once with the default ``--auto-inc=on``, where the ids come from a sequence made with
``ALTER VSCHEMA ADD SEQUENCE`` and ``ADD AUTO_INCREMENT``. Then ``oltp_point_select``, ``oltp_read_only`` and
``oltp_read_write`` run for a few seconds each, with zero errors (sysbench uses server-side prepared statements:
the binary protocol).
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.support.backends import DatabaseServer
from tests.support.mysql_frontend import RouterProcess, make_config_doc

pytestmark = [pytest.mark.backend, pytest.mark.timeout(240),
              pytest.mark.skipif((shutil.which("sysbench") is None or shutil.which("mysql") is None)
                                 and os.environ.get("CI") != "true", reason="sysbench or mysql not installed")]

TABLES = 2
TABLE_SIZE = 2000
RUN_SECONDS = 3


@pytest.fixture(params=["auto_inc_off", "sequence"])
def router(request: pytest.FixtureRequest, mysql_cluster: list[DatabaseServer]) -> Iterator[tuple[RouterProcess,
                                                                                                   str]]:
    doc, names = asyncio.run(make_config_doc(mysql_cluster))
    r = RouterProcess(doc).start()
    try:
        yield r, request.param
    finally:
        code = r.stop()
        out = r.output()
        for server, name in names:
            try:
                server.drop_database(name)
            except Exception:
                pass
        assert code == 0, out[-3000:]
        assert "Traceback" not in out and "internal error" not in out, out[-3000:]


def _mysql(port: int, sql: str) -> str:
    proc = subprocess.run(["mysql", "-h127.0.0.1", f"-P{port}", "-udemo", "-pdemo", "customer", "--batch", "-e", sql],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _sysbench(port: int, test: str, command: str, *extra: str) -> str:
    args = ["sysbench", test, "--db-driver=mysql", "--mysql-host=127.0.0.1", f"--mysql-port={port}",
            "--mysql-user=demo", "--mysql-password=demo", "--mysql-db=customer", f"--tables={TABLES}",
            f"--table-size={TABLE_SIZE}", *extra, command]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "FATAL" not in out, out[-4000:]
    return out


def _stats(out: str) -> dict[str, float]:
    found = {}
    for key, pattern in [("transactions", r"transactions:\s+(\d+)"), ("queries", r"queries:\s+(\d+)"),
                         ("ignored_errors", r"ignored errors:\s+(\d+)"), ("reconnects", r"reconnects:\s+(\d+)"),
                         ("p95_ms", r"95th percentile:\s+([\d.]+)")]:
        m = re.search(pattern, out)
        assert m is not None, f"no {key} in:\n{out[-3000:]}"
        found[key] = float(m.group(1))
    return found


def test_sysbench_prepare_and_run(router: tuple[RouterProcess, str]) -> None:
    r, mode = router
    ddl = []
    for i in range(1, TABLES + 1):
        ddl.append(f"ALTER VSCHEMA ON sbtest{i} ADD VINDEX hash(id) USING hash")
        if mode == "sequence":
            ddl.append(f"ALTER VSCHEMA ADD SEQUENCE main.sbtest{i}_seq")
            ddl.append(f"ALTER VSCHEMA ON customer.sbtest{i} ADD AUTO_INCREMENT id USING main.sbtest{i}_seq")
    _mysql(r.port, "; ".join(ddl))

    auto_inc = "--auto-inc=off" if mode == "auto_inc_off" else "--auto-inc=on"
    _sysbench(r.port, "oltp_read_write", "prepare", auto_inc)
    counts = _mysql(r.port, "; ".join(f"SELECT COUNT(*), MIN(id), MAX(id) FROM sbtest{i}"
                                      for i in range(1, TABLES + 1)))
    rows = [line.split("\t") for line in counts.splitlines() if line and line[0].isdigit()]
    assert [int(n) for n, _, _ in rows] == [TABLE_SIZE] * TABLES
    # sysbench's ids, or the sequences' (each starts at 1): the run phase reads ids 1..table-size
    assert all((int(lo), int(hi)) == (1, TABLE_SIZE) for _, lo, hi in rows), rows
    # the rows are spread over both shards, as the hash vindex says
    plan = _mysql(r.port, "VEXPLAIN PLAN SELECT c FROM sbtest1 WHERE id = 7")
    assert '\\"Variant\\": \\"EqualUnique\\"' in plan or '"Variant": "EqualUnique"' in plan

    for test in ("oltp_point_select", "oltp_read_only", "oltp_read_write"):
        # uniform ids: sysbench's default "special" distribution piles the writes onto a few rows, and two
        # transactions that lock rows on two shards in opposite orders wait for each other until InnoDB's lock
        # wait timeout (no shard sees the whole cycle; Vitess has the same limit)
        out = _sysbench(r.port, test, "run", f"--time={RUN_SECONDS}", "--threads=4", "--rand-type=uniform")
        stats = _stats(out)
        assert stats["transactions"] > 0, out
        assert stats["ignored_errors"] == 0 and stats["reconnects"] == 0, out
    _sysbench(r.port, "oltp_read_write", "cleanup")
