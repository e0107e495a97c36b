"""Observability and control of ``shardgate serve`` (a subprocess, both listeners, real PostgreSQL shards):
``/metrics`` counters moving with the statements run over both protocols, ``/ready`` and ``/live``, the admin
console (``SHOW SHARDGATE POOLS | CLIENTS | QUERIES | STATS``) for admins only, and JSON log lines that show
fingerprints, never literals or credentials."""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pymysql
import pytest
import yaml

from sharding.auth import MD5, MYSQL_NATIVE, SCRAM_SHA_256, make_user_entry
from tests.support.backends import DatabaseServer
from tests.support.pg_router import ROOT, Cluster, make_cluster

pytestmark = [pytest.mark.backend, pytest.mark.timeout(180)]

PASSWORDS = {"app": "app-Pa55-word", "plain": "plain-Pa55-word"}
SECRET = "hunter2-S3CRET-literal"  # a value clients send; it must never reach the log


class Serve:
    """``python -m router.serve`` with both listeners and the HTTP port on free ports, JSON logs at DEBUG."""

    def __init__(self, doc: dict[str, Any], *extra: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sg-observability-"))
        self.config = self.dir / "cluster.yaml"
        self.config.write_text(yaml.safe_dump(doc), encoding="utf-8")
        self.config.chmod(0o600)
        self.extra = extra
        self.ready = self.dir / "ready.json"
        self.log = self.dir / "router.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, Any] = {}

    def start(self, timeout: float = 60) -> Serve:
        cmd = [sys.executable, "-m", "router.serve", "--config", str(self.config), "--pg-listen", "127.0.0.1:0",
               "--mysql-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--ready-file", str(self.ready),
               "--drain-timeout", "5", "--log-level", "debug", *self.extra]  # --log-format json: the default
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy(),
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready.exists():
                self.ports = json.loads(self.ready.read_text())
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the router did not start: {self.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        return proc.returncode

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def http(self, path: str, port: int | None = None) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port or self.ports['metrics']}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metrics(self) -> dict[str, float]:
        status, text = self.http("/metrics")
        assert status == 200
        return parse_metrics(text)


def parse_metrics(text: str) -> dict[str, float]:
    """``name{labels}`` (labels sorted) -> value, from the Prometheus text format."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        assert m is not None, line
        labels = ",".join(sorted(re.findall(r'\w+="(?:[^"\\]|\\.)*"', m.group(2) or "")))
        out[f"{m.group(1)}{{{labels}}}"] = float(m.group(3))
    return out


def key(name: str, **labels: str) -> str:
    return name + "{" + ",".join(sorted(f'{k}="{v}"' for k, v in labels.items())) + "}"


def delta(after: dict[str, float], before: dict[str, float], name: str, **labels: str) -> float:
    k = key(name, **labels)
    return after.get(k, 0.0) - before.get(k, 0.0)


@pytest.fixture(scope="module")
async def cluster(pg_cluster: list[DatabaseServer]) -> AsyncIterator[Cluster]:
    c = await make_cluster(pg_cluster)
    c.doc["users"] = [make_user_entry("app", PASSWORDS["app"], roles=["admin"], methods=[SCRAM_SHA_256,
                                                                                         MYSQL_NATIVE]),
                      make_user_entry("plain", PASSWORDS["plain"], methods=[MD5, MYSQL_NATIVE])]
    yield c
    await asyncio.to_thread(c.drop)


@pytest.fixture(scope="module")
def serve(cluster: Cluster) -> Iterator[Serve]:
    s = Serve(cluster.doc).start()
    yield s
    assert s.stop() == 0, s.log.read_text(errors="replace")[-3000:]
    s.cleanup()


async def pg(serve: Serve, user: str = "app") -> Any:
    return await asyncpg.connect(host="127.0.0.1", port=serve.ports["postgres"], user=user,
                                 password=PASSWORDS[user], database="customer")


def my(serve: Serve, user: str = "app") -> Any:
    return pymysql.connect(host="127.0.0.1", port=serve.ports["mysql"], user=user, password=PASSWORDS[user],
                           database="customer", autocommit=True)


def my_query(conn: Any, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with conn.cursor() as cur:
        cur.execute(sql)
        names = [d[0] for d in cur.description or ()]
        return names, list(cur.fetchall())


# --- HTTP endpoints --------------------------------------------------------------------------------------------
def test_ready_and_live(serve: Serve) -> None:
    status, body = serve.http("/ready")
    assert status == 200, body
    assert json.loads(body) == {"ready": True, "problems": []}
    status, body = serve.http("/live")
    assert status == 200 and json.loads(body)["live"] is True
    assert serve.http("/nothing")[0] == 404
    m = serve.metrics()
    for shard in ("-80", "80-"):  # the readiness probe opened a connection per keyspace at least
        assert key("shardgate_pool_max_size", keyspace="customer", shard=shard, role="primary") in m
    assert m[key("shardgate_worker_info", worker="0", workers="1")] == 1


def test_each_worker_serves_its_own_metrics(cluster: Cluster) -> None:
    s = Serve(cluster.doc, "--workers", "2").start()
    try:
        ports = s.ports["metrics"]
        assert len(ports) == 2 and len(set(ports)) == 2, s.ports
        for worker, port in enumerate(ports):
            status, text = s.http("/metrics", port)
            assert status == 200
            assert parse_metrics(text)[key("shardgate_worker_info", worker=str(worker), workers="2")] == 1
            assert s.http("/ready", port)[0] == 200 and s.http("/live", port)[0] == 200
    finally:
        assert s.stop() == 0, s.log.read_text(errors="replace")[-3000:]
        s.cleanup()


async def test_counters_move_with_statements_over_both_protocols(serve: Serve) -> None:
    conn = await pg(serve)
    mconn = await asyncio.to_thread(my, serve)
    try:
        before = serve.metrics()
        assert before[key("shardgate_client_connections", protocol="postgres")] >= 1
        assert before[key("shardgate_client_connections", protocol="mysql")] >= 1
        for i in range(3):
            await conn.execute("INSERT INTO customer (customer_id, name) VALUES ($1, $2)", 900 + i, f"m{i}")
        assert len(await conn.fetch("SELECT customer_id FROM customer WHERE customer_id >= 900 AND "
                                    "customer_id < 903")) == 3  # a scatter: both shards
        for i in range(2):
            await asyncio.to_thread(my_query, mconn, f"SELECT name FROM customer WHERE customer_id = {900 + i}")
        with pytest.raises(pymysql.err.ProgrammingError):
            await asyncio.to_thread(my_query, mconn, "SELEKT nothing")
        after = serve.metrics()
    finally:
        await conn.close()
        await asyncio.to_thread(mconn.close)
    assert delta(after, before, "shardgate_queries_total", protocol="postgres", kind="insert", keyspace="customer",
                 outcome="ok") == 3
    assert delta(after, before, "shardgate_queries_total", protocol="postgres", kind="select", keyspace="customer",
                 outcome="ok") == 1
    assert delta(after, before, "shardgate_queries_total", protocol="mysql", kind="select", keyspace="customer",
                 outcome="ok") == 2
    assert delta(after, before, "shardgate_queries_total", protocol="mysql", kind="other", keyspace="customer",
                 outcome="error") == 1
    assert delta(after, before, "shardgate_errors_total", protocol="mysql", code="SG2001") == 1
    assert delta(after, before, "shardgate_rows_returned_total", protocol="postgres", kind="select") == 3
    assert delta(after, before, "shardgate_rows_returned_total", protocol="mysql", kind="select") == 2
    assert delta(after, before, "shardgate_query_duration_seconds_count", protocol="postgres", kind="insert") == 3
    # per shard: 3 inserts + 2 point reads, each on one shard, and the scatter on both
    per_shard = {s: delta(after, before, "shardgate_shard_queries_total", keyspace="customer", shard=s,
                          role="primary", outcome="ok") for s in ("-80", "80-")}
    assert sum(per_shard.values()) == 3 + 2 + 2 and min(per_shard.values()) >= 1
    assert delta(after, before, "shardgate_pool_acquired_total", keyspace="customer", shard="-80",
                 role="primary") >= 1


# --- admin console -----------------------------------------------------------------------------------------------
async def test_admin_console_over_both_protocols(serve: Serve) -> None:
    conn = await pg(serve)
    sleeper = await pg(serve)
    mconn = await asyncio.to_thread(my, serve)
    try:
        # POOLS: one row per pool, the same over both protocols
        pools = await conn.fetch("SHOW SHARDGATE POOLS")
        assert {(r["keyspace"], r["shard"], r["role"]) for r in pools} >= {
            ("customer", "-80", "primary"), ("customer", "80-", "primary"), ("commerce", "0", "primary")}
        names, mrows = await asyncio.to_thread(my_query, mconn, "SHOW SHARDGATE POOLS")
        assert names[:6] == ["keyspace", "shard", "role", "size", "idle", "in_use"]
        assert {r[:3] for r in mrows} == {(r["keyspace"], r["shard"], r["role"]) for r in pools}
        assert all(int(r[3]) <= int(r[8]) for r in mrows)  # size <= max_size
        # CLIENTS: both sessions, each with its protocol and its client's address
        names, clients = await asyncio.to_thread(my_query, mconn, "SHOW SHARDGATE CLIENTS")
        rows = [dict(zip(names, r, strict=True)) for r in clients]
        my_port = (await asyncio.to_thread(lambda: mconn._sock.getsockname()))[1]
        assert any(r["protocol"] == "mysql" and r["client"] == f"127.0.0.1:{my_port}" and r["user"] == "app"
                   and r["state"] == "active" for r in rows)
        pg_port = conn._transport.get_extra_info("sockname")[1]
        assert any(r["protocol"] == "postgres" and r["client"] == f"127.0.0.1:{pg_port}" for r in rows)
        # QUERIES: a statement running on another session, by fingerprint, with its shards
        await conn.execute("INSERT INTO customer (customer_id, name) VALUES (4242, 'sleepy')")
        slow = asyncio.ensure_future(sleeper.fetch("SELECT pg_sleep(1.5), customer_id FROM customer "
                                                   f"WHERE customer_id = 4242 AND name <> '{SECRET}'"))
        running: list[Any] = []
        for _ in range(50):
            await asyncio.sleep(0.05)
            running = [r for r in await conn.fetch("SHOW SHARDGATE QUERIES") if "pg_sleep" in r["statement"]]
            if running:
                break
        assert running, "the sleeping statement was not listed"
        assert SECRET not in running[0]["statement"] and running[0]["shards"] in ("customer/-80", "customer/80-")
        assert running[0]["elapsed_ms"] > 0
        await slow
        # STATS: per fingerprint, with the calls just made
        stats = await conn.fetch("SHOW SHARDGATE STATS LIKE '%pg_sleep%'")
        assert len(stats) == 1 and stats[0]["calls"] >= 1 and stats[0]["max_ms"] >= 1400
        assert SECRET not in stats[0]["statement"]
        names, mstats = await asyncio.to_thread(my_query, mconn, "SHOW SHARDGATE STATS")
        assert names[:4] == ["statement", "fingerprint_id", "kind", "calls"] and len(mstats) >= 2
        # the simple query protocol (psql's) as well
        async with await psycopg.AsyncConnection.connect(
                host="127.0.0.1", port=serve.ports["postgres"], user="app", password=PASSWORDS["app"],
                dbname="customer", cursor_factory=psycopg.AsyncClientCursor) as simple:
            cur = await simple.execute("SHOW SHARDGATE POOLS LIKE 'customer'")
            assert [d.name for d in cur.description or ()][:3] == ["keyspace", "shard", "role"]
            assert sorted(r[1] for r in await cur.fetchall()) == ["-80", "80-"]
    finally:
        await conn.close()
        await sleeper.close()
        await asyncio.to_thread(mconn.close)


async def test_admin_console_is_denied_to_other_users(serve: Serve) -> None:
    conn = await pg(serve, "plain")
    mconn = await asyncio.to_thread(my, serve, "plain")
    try:
        for what in ("POOLS", "CLIENTS", "QUERIES", "STATS"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="admin role"):
                await conn.fetch(f"SHOW SHARDGATE {what}")
            with pytest.raises(pymysql.err.OperationalError) as info:
                await asyncio.to_thread(my_query, mconn, f"SHOW SHARDGATE {what}")
            assert info.value.args[0] == 1142
        assert await conn.fetchval("SELECT 1") == 1  # the session goes on
    finally:
        await conn.close()
        await asyncio.to_thread(mconn.close)


# --- logs ----------------------------------------------------------------------------------------------------------
async def test_json_logs_show_fingerprints_never_literals_or_passwords(serve: Serve) -> None:
    conn = await pg(serve)
    mconn = await asyncio.to_thread(my, serve)
    try:
        await conn.execute(f"INSERT INTO customer (customer_id, name) VALUES (7001, '{SECRET}')")
        with pytest.raises(asyncpg.UniqueViolationError):  # the shard's message quotes the key: not logged
            await conn.execute(f"INSERT INTO customer (customer_id, name) VALUES (7001, '{SECRET}')")
        await conn.fetch("SELECT name FROM customer WHERE name = $1", SECRET)
        await asyncio.to_thread(my_query, mconn, f"SELECT count(*) FROM customer WHERE name = '{SECRET}'")
        with pytest.raises(pymysql.err.ProgrammingError):
            await asyncio.to_thread(my_query, mconn, f"SELECT '{SECRET}' FRM customer")
    finally:
        await conn.close()
        await asyncio.to_thread(mconn.close)
    await asyncio.sleep(0.2)
    text = serve.log.read_text(errors="replace")
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is one JSON object
    assert SECRET not in text
    for password in PASSWORDS.values():
        assert password not in text
    queries = [d for d in lines if d.get("event") == "query"]
    inserts = [d for d in queries if d["kind"] == "insert" and "customer" in d["fingerprint"]
               and d["protocol"] == "postgres"]
    assert any(d["outcome"] == "ok" for d in inserts)
    failed = [d for d in inserts if d["outcome"] == "error"]
    assert failed and failed[-1]["level"] == "info" and failed[-1]["error_code"] == "SG4002"
    assert all({"ts", "level", "logger", "fingerprint_id", "duration_ms", "user", "shards"} <= d.keys()
               for d in queries)
    assert any(d["protocol"] == "mysql" and d["outcome"] == "error" and d["error_code"] == "SG2001"
               for d in queries)
