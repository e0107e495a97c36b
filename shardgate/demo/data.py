"""What the demo cluster holds: its shards, the sample schema and rows, the VSchema and the router config (pure).

Two copies of one application, one per engine: keyspaces ``customer`` (sharded ``-80``/``80-``) and ``commerce``
(unsharded) on PostgreSQL, ``customer_mysql`` and ``commerce_mysql`` on MariaDB. Sample rows are placed by the
keyspace id the ``hash`` vindex gives their customer_id, exactly where the router would put them.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

DEMO_USER = "demo"
DEMO_PASSWORD = "demo"
PASSWORD_ENV = "SHARDGATE_DEMO_BACKEND_PASSWORD"  # the shards' password, read by the router at connect time

CUSTOMERS = [
    (1, "alice@example.com", "Alice"), (2, "bob@example.com", "Bob"), (3, "carol@example.com", "Carol"),
    (4, "dave@example.com", "Dave"), (5, "eve@example.com", "Eve"), (6, "frank@example.com", "Frank"),
    (7, "grace@example.com", "Grace"), (8, "heidi@example.com", "Heidi"),
]
PRODUCTS = [("SKU-1001", "Monitor", "189.00"), ("SKU-1002", "Keyboard", "49.50"), ("SKU-1003", "Mouse", "19.99")]
# One order per customer (order_id = customer_id * 100), for SKU-1001.
ORDERS = [(cid * 100, cid, email, "SKU-1001", "189.00") for cid, email, _ in CUSTOMERS]


@dataclass(frozen=True)
class DemoShard:
    keyspace: str
    shard: str
    engine: str  # "postgres" | "mysql"
    database: str

    @property
    def sharded(self) -> bool:
        return self.shard != "0"

    @property
    def label(self) -> str:
        return f"{self.keyspace}/{self.shard}"


SHARDS = (
    DemoShard("customer", "-80", "postgres", "customer_00_80"),
    DemoShard("customer", "80-", "postgres", "customer_80_ff"),
    DemoShard("commerce", "0", "postgres", "commerce"),
    DemoShard("customer_mysql", "-80", "mysql", "customer_mysql_00_80"),
    DemoShard("customer_mysql", "80-", "mysql", "customer_mysql_80_ff"),
    DemoShard("commerce_mysql", "0", "mysql", "commerce_mysql"),
)
# The sharded keyspace of each engine and the unsharded one beside it.
KEYSPACES = {"postgres": ("customer", "commerce"), "mysql": ("customer_mysql", "commerce_mysql")}


def load_vschema_doc() -> dict[str, Any]:
    """All four keyspaces: vschema.json holds the PostgreSQL pair; the MySQL pair is the same with renamed
    keyspaces (and the sequence, lookup and reference sources that name them)."""
    base = json.loads(resources.files(__package__).joinpath("vschema.json").read_text(encoding="utf-8"))
    keyspaces = dict(base["keyspaces"])
    sharded, unsharded = KEYSPACES["mysql"]
    text = json.dumps({"customer": base["keyspaces"]["customer"], "commerce": base["keyspaces"]["commerce"]})
    renamed = json.loads(text.replace('"commerce.', f'"{unsharded}.'))
    keyspaces[sharded] = renamed["customer"]
    keyspaces[unsharded] = renamed["commerce"]
    return {"keyspaces": copy.deepcopy(keyspaces)}


def schema_statements(engine: str, sharded: bool) -> list[str]:
    """The DDL (and sequence rows) of one keyspace kind, from ``postgres.sql`` or ``mysql.sql``."""
    text = resources.files(__package__).joinpath(f"{engine}.sql").read_text(encoding="utf-8")
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("-- section:"):
            current = sections.setdefault(stripped.split(":", 1)[1].strip(), [])
        elif stripped and not stripped.startswith("--"):
            current.append(line)
    body = "\n".join(sections["sharded" if sharded else "unsharded"])
    return [s.strip() for s in body.split(";") if s.strip()]


def snapshot() -> Any:
    """A cluster snapshot of the demo's VSchema and shards (to place the sample rows)."""
    from sharding.snapshot import ClusterSnapshot
    from sharding.vschema import parse_vschema

    vschema = parse_vschema(load_vschema_doc(), source="demo vschema")
    shards: dict[str, list[str]] = {}
    for s in SHARDS:
        shards.setdefault(s.keyspace, []).append(s.shard)
    return ClusterSnapshot.build(1, vschema, shards)


def keyspace_id(customer_id: int) -> bytes:
    from sharding.vindexes import registry

    vindex = registry.create("hash", "hash", {})[0]
    (dest,) = vindex.map([customer_id])  # type: ignore[attr-defined]
    return bytes(dest.ksid)


def placement(snap: Any, keyspace: str) -> dict[str, list[int]]:
    """Shard name -> the sample customer ids it holds."""
    placed: dict[str, list[int]] = {}
    for cid, _, _ in CUSTOMERS:
        placed.setdefault(snap.shard_for_ksid(keyspace, keyspace_id(cid)).name, []).append(cid)
    return placed


def _binary(engine: str, raw: bytes) -> str:
    return f"decode('{raw.hex()}', 'hex')" if engine == "postgres" else f"X'{raw.hex()}'"


def sample_rows(snap: Any, shard: DemoShard) -> list[str]:
    """INSERTs of the sample rows that belong on ``shard``: customers and orders by keyspace id, the reference
    table everywhere, and the lookup rows of every order in the unsharded keyspace."""
    out = ["INSERT INTO product (sku, description, price) VALUES "
           + ", ".join(f"('{sku}', '{desc}', {price})" for sku, desc, price in PRODUCTS)]
    if not shard.sharded:
        lookups = [f"('{email}', {_binary(shard.engine, keyspace_id(cid))})" for _, cid, email, _, _ in ORDERS]
        out.append("INSERT INTO corder_email_lookup (email, keyspace_id) VALUES " + ", ".join(lookups))
        return out
    sharded_ks = KEYSPACES[shard.engine][0]
    mine = {cid for cid in placement(snap, sharded_ks).get(shard.shard, [])}
    customers = [f"({cid}, '{email}', '{name}')" for cid, email, name in CUSTOMERS if cid in mine]
    orders = [f"({oid}, {cid}, '{email}', '{sku}', {price})" for oid, cid, email, sku, price in ORDERS if cid in mine]
    if customers:
        out.append("INSERT INTO customer (customer_id, email, name) VALUES " + ", ".join(customers))
        out.append("INSERT INTO corder (order_id, customer_id, email, sku, price) VALUES " + ", ".join(orders))
    return out


def config_doc(servers: dict[str, Any], *, backend_user: dict[str, str]) -> dict[str, Any]:
    """The router's cluster config: ``servers`` maps each shard label to its server (host, port), and
    ``backend_user`` each engine to the login the router uses on the shards (password from ``PASSWORD_ENV``)."""
    from sharding.auth import MYSQL_NATIVE, SCRAM_SHA_256, make_user_entry

    keyspaces: dict[str, Any] = {}
    for s in SHARDS:
        server = servers[s.label]
        keyspaces.setdefault(s.keyspace, {"shards": {}})["shards"][s.shard] = {
            "engine": s.engine, "host": server.host, "port": server.port, "database": s.database,
            "user": backend_user[s.engine], "password_env": PASSWORD_ENV}
    # mysql_native_password for MySQL clients: it needs neither TLS nor RSA key retrieval.
    user = make_user_entry(DEMO_USER, DEMO_PASSWORD, roles=["admin"], methods=[SCRAM_SHA_256, MYSQL_NATIVE])
    return {"users": [user], "keyspaces": keyspaces, "vschema": load_vschema_doc()}
