"""A shardgate router for PostgreSQL-frontend tests, over the session's real PostgreSQL servers.

``make_cluster(servers)`` creates the databases of a small cluster — keyspace ``customer`` sharded ``-80`` (first
server) / ``80-`` (second), keyspace ``commerce`` unsharded (first server) — loads the schema, and returns a
config document. ``InProcessRouter`` runs the gateway and the PostgreSQL listener in the test's event loop (its
metrics are then readable); ``RouterProcess`` runs ``python -m router.serve`` as a subprocess (the real entry
point, uvloop, signals).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sharding import db
from sharding.auth import make_user_entry
from sharding.config import parse_config
from tests.support.backends import DatabaseServer, connected

ROOT = Path(__file__).resolve().parents[2]
USERS = {"app": "app-secret", "plain": "plain-pw"}  # app: admin, SCRAM; plain: md5, not admin

CUSTOMER_SCHEMA = [
    "CREATE TABLE customer (customer_id bigint PRIMARY KEY, name text NOT NULL, balance numeric(12,2) DEFAULT 0, "
    "created timestamptz DEFAULT now(), u uuid, j jsonb, b bytea, f float8, d date, ok bool)",
    "CREATE TABLE corder (order_id bigint PRIMARY KEY, customer_id bigint NOT NULL, sku text, qty int)",
]
COMMERCE_SCHEMA = [
    "CREATE TABLE product (sku text PRIMARY KEY, description text, price numeric(10,2))",
    "CREATE TABLE order_seq (id int PRIMARY KEY, next_id bigint, cache bigint)",
    "INSERT INTO order_seq VALUES (0, 1000, 100)",
    "INSERT INTO product VALUES ('SKU-1', 'Monitor', 189.00), ('SKU-2', 'Keyboard', 49.50)",
]
VSCHEMA = {
    "keyspaces": {
        "commerce": {"sharded": False, "tables": {"product": {}, "order_seq": {"type": "sequence"}}},
        "customer": {
            "sharded": True,
            "vindexes": {"hash": {"type": "hash"}},
            "tables": {
                "customer": {"column_vindexes": [{"column": "customer_id", "name": "hash"}]},
                "corder": {"column_vindexes": [{"column": "customer_id", "name": "hash"}],
                           "auto_increment": {"column": "order_id", "sequence": "commerce.order_seq"}},
            },
        },
    }
}


@dataclass
class Cluster:
    doc: dict[str, Any]
    dsns: dict[str, db.DSN]  # "customer/-80", "customer/80-", "commerce/0"
    names: list[tuple[DatabaseServer, str]] = field(default_factory=list)

    def drop(self) -> None:
        for server, name in self.names:
            with contextlib.suppress(Exception):
                server.drop_database(name)


async def make_cluster(servers: list[DatabaseServer], *, tag: str | None = None, schema: bool = True) -> Cluster:
    tag = tag or secrets.token_hex(3)
    layout = {"customer/-80": (servers[0], f"pgfe_{tag}_c0"), "customer/80-": (servers[1 % len(servers)],
                                                                              f"pgfe_{tag}_c1"),
              "commerce/0": (servers[0], f"pgfe_{tag}_m")}
    cluster = Cluster({}, {})
    keyspaces: dict[str, Any] = {}
    for key, (server, name) in layout.items():
        dsn = await asyncio.to_thread(server.create_database, name)
        cluster.names.append((server, name))
        cluster.dsns[key] = dsn
        var = f"SG_PGFE_PW_{dsn.port}"
        os.environ[var] = dsn.password
        ks, shard = key.split("/")
        keyspaces.setdefault(ks, {"shards": {}})["shards"][shard] = {
            "engine": "postgres", "host": dsn.host, "port": dsn.port, "database": dsn.database, "user": dsn.user,
            "password_env": var}
        if schema:
            async with connected(dsn) as conn:
                for sql in CUSTOMER_SCHEMA if ks == "customer" else COMMERCE_SCHEMA:
                    await db.execute(conn, sql)
    cluster.doc = {
        "users": [make_user_entry("app", USERS["app"], roles=["admin"]),
                  make_user_entry("plain", USERS["plain"], methods=["md5"])],
        "keyspaces": keyspaces,
        "vschema": VSCHEMA,
    }
    return cluster


class InProcessRouter:
    """Gateway + PostgreSQL listener on a free port, in this event loop."""

    def __init__(self, doc: dict[str, Any], **options: Any) -> None:
        self.config = parse_config(doc, source="<test>")
        self.options = options
        self.gateway: Any = None
        self.frontend: Any = None

    async def start(self) -> InProcessRouter:
        from router.frontend.postgres.server import FrontendOptions, PgFrontend
        from router.gateway import Gateway

        self.gateway = Gateway(self.config)
        await self.gateway.start()
        opts = FrontendOptions(port=0)
        for k, v in self.options.items():
            setattr(opts, k, v)
        self.frontend = await PgFrontend(self.gateway, opts, self.config.users).start()
        return self

    @property
    def port(self) -> int:
        return int(self.frontend.port)

    def dsn(self, user: str = "app", database: str = "customer", **extra: str) -> str:
        parts = {"host": "127.0.0.1", "port": str(self.port), "user": user, "password": USERS.get(user, ""),
                 "dbname": database, **extra}
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def url(self, user: str = "app", database: str = "customer") -> str:
        return f"postgresql://{user}:{USERS.get(user, '')}@127.0.0.1:{self.port}/{database}"

    async def close(self) -> None:
        if self.frontend is not None:
            await self.frontend.close(5)
        if self.gateway is not None:
            await self.gateway.close()


class RouterProcess:
    """``python -m router.serve --config …`` in a subprocess; ``start()`` waits for its ready file."""

    def __init__(self, doc: dict[str, Any], *, workers: int = 1, extra: tuple[str, ...] = ()) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pgfe-router-"))
        self.config_path = self.dir / "cluster.yaml"
        self.config_path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        self.config_path.chmod(0o600)
        self.ready = self.dir / "ready.json"
        self.log = self.dir / "router.log"
        self.workers = workers
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, timeout: float = 60) -> RouterProcess:
        cmd = [sys.executable, "-m", "router.serve", "--config", str(self.config_path), "--pg-listen",
               "127.0.0.1:0", "--no-mysql", "--ready-file", str(self.ready), "--workers", str(self.workers),
               "--drain-timeout", "5", *self.extra]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(),
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready.exists():
                self.port = int(json.loads(self.ready.read_text())["postgres"])
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the router did not start: {self.log.read_text(errors='replace')[-3000:]}")

    def stop(self, timeout: float = 15) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        return proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
