"""``shardgate demo``: a local sharded cluster on real servers, and a tour of how rows and queries route.

It starts PostgreSQL servers for two keyspaces — ``customer`` (sharded ``-80``/``80-`` by ``hash`` on
customer_id) and ``commerce`` (unsharded: sequences and the product reference source) — applies the sample schema,
loads sample rows on the shards their keyspace ids select, and shows the plans of a few queries with their target
shards. Everything runs on 127.0.0.1 in a temp dir and is removed on exit (Ctrl-C or SIGTERM).
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from importlib import resources
from typing import Any

EXIT_OK = 0

CUSTOMERS = [
    (1, "alice@example.com", "Alice"), (2, "bob@example.com", "Bob"), (3, "carol@example.com", "Carol"),
    (4, "dave@example.com", "Dave"), (5, "eve@example.com", "Eve"), (6, "frank@example.com", "Frank"),
    (7, "grace@example.com", "Grace"), (8, "heidi@example.com", "Heidi"),
]
PRODUCTS = [("SKU-1001", "Monitor", "189.00"), ("SKU-1002", "Keyboard", "49.50"), ("SKU-1003", "Mouse", "19.99")]
TOUR_QUERIES = [
    "SELECT * FROM customer WHERE customer_id = 4",
    "SELECT * FROM customer WHERE customer_id IN (1, 4, 6)",
    "SELECT name FROM customer",
    "SELECT c.name, p.description FROM customer c JOIN product p ON p.sku = 'SKU-1001' WHERE c.customer_id = 5",
    "SELECT * FROM commerce.product",
    "DELETE FROM customer WHERE customer_id = 8",
]


def _say(text: str = "") -> None:
    print(text, flush=True)


def load_vschema_doc() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("vschema.json").read_text(encoding="utf-8"))


def load_schema_sql() -> list[str]:
    text = resources.files(__package__).joinpath("schema.sql").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


class DemoCluster:
    """The demo's servers and databases: customer -80, customer 80-, commerce."""

    SHARDS = (("customer", "-80"), ("customer", "80-"), ("commerce", "0"))

    def __init__(self, root_dir: str | None = None) -> None:
        from shardgate.localdb import LocalCluster

        self.cluster = LocalCluster(postgres=len(self.SHARDS), mysql=0, root_dir=root_dir)
        self.dsns: dict[tuple[str, str], Any] = {}

    def start(self) -> None:
        self.cluster.start()
        for (keyspace, shard), server in zip(self.SHARDS, self.cluster.postgres, strict=True):
            name = f"{keyspace}_{'x' if shard == '0' else shard.replace('-', '_')}".strip("_")
            self.dsns[(keyspace, shard)] = server.create_database(name)

    def stop(self) -> None:
        self.cluster.destroy()

    def run(self, keyspace: str, shard: str, *statements: str) -> None:
        from shardgate.localdb import run_sql

        run_sql(self.dsns[(keyspace, shard)], *statements)

    def fetch(self, keyspace: str, shard: str, sql: str) -> list[tuple[Any, ...]]:
        from shardgate.localdb import _run_async
        from sharding import db

        async def go() -> list[tuple[Any, ...]]:
            conn = await db.connect(self.dsns[(keyspace, shard)])
            try:
                return await db.fetch_all(conn, sql)
            finally:
                await db.close(conn)

        return _run_async(go)


def _snapshot() -> Any:
    from sharding.snapshot import ClusterSnapshot
    from sharding.vschema import parse_vschema

    vschema = parse_vschema(load_vschema_doc(), source="demo vschema")
    return ClusterSnapshot.build(1, vschema, {"customer": ["-80", "80-"], "commerce": ["0"]})


def _load(demo: DemoCluster, snapshot: Any) -> dict[str, list[int]]:
    """Schema everywhere, then each customer row on the shard its keyspace id selects."""
    from sharding.vindexes import registry

    schema = load_schema_sql()
    for keyspace, shard in DemoCluster.SHARDS:
        demo.run(keyspace, shard, *schema)
    products = [f"INSERT INTO product VALUES ('{s}', '{d}', {p})" for s, d, p in PRODUCTS]
    for keyspace, shard in DemoCluster.SHARDS:  # the reference table lives on every shard
        demo.run(keyspace, shard, *products)
    vindex = registry.create("hash", "hash", {})[0]
    placed: dict[str, list[int]] = {"-80": [], "80-": []}
    for cid, email, name in CUSTOMERS:
        (dest,) = vindex.map([cid])  # type: ignore[attr-defined]
        shard = snapshot.shard_for_ksid("customer", dest.ksid).name
        demo.run("customer", shard, f"INSERT INTO customer VALUES ({cid}, '{email}', '{name}')",
                 f"INSERT INTO corder VALUES ({cid * 100}, {cid}, '{email}', 'SKU-1001', 189.00)")
        placed[shard].append(cid)
    return placed


def _tour(demo: DemoCluster, snapshot: Any, placed: dict[str, list[int]]) -> None:
    from router.planner import Planner, SessionView
    from router.planner.explain import explain
    from sharding.vindexes import registry

    vindex = registry.create("hash", "hash", {})[0]
    _say("How customer rows route (hash vindex on customer_id, Vitess keyspace ids):")
    for cid, _, name in CUSTOMERS:
        (dest,) = vindex.map([cid])  # type: ignore[attr-defined]
        shard = snapshot.shard_for_ksid("customer", dest.ksid).name
        _say(f"  customer_id={cid:<3} {name:<6} keyspace id {dest.ksid.hex()}  ->  customer/{shard}")
    _say()
    for shard, ids in placed.items():
        rows = demo.fetch("customer", shard, "SELECT customer_id FROM customer ORDER BY customer_id")
        _say(f"  customer/{shard} holds customer_id {[r[0] for r in rows]} (expected {sorted(ids)})")
        if sorted(r[0] for r in rows) != sorted(ids):
            raise SystemExit(f"demo: shard {shard} holds the wrong rows")
    _say()
    _say("Plans (shardgate plan; the router that runs them comes with the frontends):")
    planner = Planner()
    session = SessionView(dialect="postgres", keyspace="customer")
    for sql in TOUR_QUERIES:
        try:
            out = explain(planner.plan(sql, session, snapshot), snapshot, dialect="postgres")
            top = out["Instructions"]
            shards = top.get("Shards", [i.get("Shards") for i in top.get("Inputs", [])])
            _say(f"  {sql}\n    -> {top['OperatorType']} {top.get('Variant', '')} shards={shards}")
        except Exception as exc:  # a tour line that cannot plan yet says so and the tour goes on
            _say(f"  {sql}\n    -> not planned: {exc}")
    _say()


def run_demo(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    demo = DemoCluster(root_dir=args.dir)
    started = time.monotonic()
    try:
        _say("Starting local PostgreSQL servers (customer -80, customer 80-, commerce)...")
        demo.start()
        snapshot = _snapshot()
        placed = _load(demo, snapshot)
        _say(f"Cluster up with sample data in {time.monotonic() - started:.1f}s.\n")
        if not args.keep_running:
            _tour(demo, snapshot, placed)
        if args.tour_only:
            return EXIT_OK
        _say("Connect to a shard directly (throwaway local servers):")
        for (keyspace, shard), server in zip(DemoCluster.SHARDS, demo.cluster.postgres, strict=True):
            dsn = demo.dsns[(keyspace, shard)]
            _say(f"  {keyspace}/{shard}: PGPASSWORD={server.password} psql -h {dsn.host} -p {dsn.port} "
                 f"-U {dsn.user} {dsn.database}")
        _say("\nRunning; press Ctrl-C to stop and remove everything.")
        while not stop.wait(1.0):
            pass
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        _say("Stopping the demo servers...")
        demo.stop()
        sys.stdout.flush()
