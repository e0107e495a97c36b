"""The oracle's cluster: one sharded keyspace over 4 shards, one unsharded keyspace, and the DDL of every table.

Keyspace ``shop`` (sharded, shards ``-40 40-80 80-c0 c0-``):

- ``customer``: primary vindex ``hash`` on ``customer_id`` (ids from the sequence ``main.customer_seq``), an owned
  ``lookup_unique`` on ``email`` (table ``main.customer_email_lkp``);
- ``orders``: primary vindex ``hash`` on ``customer_id`` (co-located with its customer), an owned
  ``lookup_unique`` on ``order_id`` (table ``main.orders_id_lkp``; ids from ``main.orders_seq``): a point query by
  ``order_id`` routes through the lookup;
- ``event``: primary vindex ``xxhash`` on ``event_id``, an owned non-unique ``consistent_lookup`` on ``tag``
  (table ``main.event_tag_lkp``); its ``customer_id`` is not a vindex column, so joins on it are off the vindex;
- ``item``: a reference table (every shard holds every row; writes go to all shards).

Keyspace ``main`` (unsharded): ``warehouse`` (data), the sequence tables and the lookup tables.

The reference database holds ``customer``, ``orders``, ``event``, ``item`` and ``warehouse`` (same names and
column types, same collation: C on PostgreSQL, utf8mb4_general_ci on MariaDB).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SHARDS = ("-40", "40-80", "80-c0", "c0-")
SHARDED = "shop"
UNSHARDED = "main"


@dataclass(frozen=True)
class ColumnDef:
    name: str
    kind: str  # "int" | "bigint" | "smallint" | "text" | "decimal" | "date"
    size: str = ""  # VARCHAR length, DECIMAL "p,s"
    nullable: bool = True

    def sql_type(self, engine: str) -> str:
        if self.kind == "text":
            coll = ' COLLATE "C"' if engine == "postgres" else " COLLATE utf8mb4_general_ci"
            return f"VARCHAR({self.size}){coll}"
        if self.kind == "decimal":
            return f"DECIMAL({self.size})"
        return {"int": "INT", "bigint": "BIGINT", "smallint": "SMALLINT", "date": "DATE"}[self.kind]


@dataclass(frozen=True)
class TableDef:
    name: str
    keyspace: str
    pk: str
    columns: tuple[ColumnDef, ...]
    auto_id: bool = False  # the router side omits the pk: the sequence fills it

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnDef:
        return next(c for c in self.columns if c.name == name)

    def of_kind(self, *kinds: str) -> list[str]:
        return [c.name for c in self.columns if c.kind in kinds]

    def ddl(self, engine: str) -> str:
        cols = ", ".join(f"{c.name} {c.sql_type(engine)}{'' if c.nullable else ' NOT NULL'}" for c in self.columns)
        return f"CREATE TABLE {self.name} ({cols}, PRIMARY KEY ({self.pk}))"


def _c(name: str, kind: str, size: str = "", nullable: bool = True) -> ColumnDef:
    return ColumnDef(name, kind, size, nullable)


CUSTOMER = TableDef("customer", SHARDED, "customer_id", (
    _c("customer_id", "bigint", nullable=False), _c("name", "text", "64", False), _c("email", "text", "96", False),
    _c("region", "text", "16"), _c("balance", "decimal", "12,2"), _c("score", "int"), _c("joined", "date"),
    _c("vip", "smallint", nullable=False)), auto_id=True)
ORDERS = TableDef("orders", SHARDED, "order_id", (
    _c("order_id", "bigint", nullable=False), _c("customer_id", "bigint", nullable=False), _c("item_id", "int"),
    _c("qty", "int", nullable=False), _c("amount", "decimal", "10,2"), _c("status", "text", "16", False),
    _c("note", "text", "128"), _c("placed", "date", nullable=False)), auto_id=True)
EVENT = TableDef("event", SHARDED, "event_id", (
    _c("event_id", "bigint", nullable=False), _c("customer_id", "bigint"), _c("tag", "text", "32", False),
    _c("kind", "text", "16", False), _c("weight", "int"), _c("cost", "decimal", "9,3"), _c("happened", "date"),
    _c("payload", "text", "128")))
ITEM = TableDef("item", SHARDED, "item_id", (
    _c("item_id", "int", nullable=False), _c("title", "text", "64", False), _c("category", "text", "16"),
    _c("price", "decimal", "8,2", False), _c("launched", "date")))
WAREHOUSE = TableDef("warehouse", UNSHARDED, "wh_id", (
    _c("wh_id", "int", nullable=False), _c("city", "text", "32", False), _c("region", "text", "16"),
    _c("capacity", "int"), _c("rent", "decimal", "10,2"), _c("opened", "date")))

TABLES: dict[str, TableDef] = {t.name: t for t in (CUSTOMER, ORDERS, EVENT, ITEM, WAREHOUSE)}
SEQUENCES = ("customer_seq", "orders_seq")


def _vschema_columns(table: TableDef, engine: str) -> list[dict[str, Any]]:
    """Declared columns: text columns carry their collation, so the planner knows how the shards compare them
    (PostgreSQL's C collation lets the router merge text keys by code point)."""
    out = []
    for c in table.columns:
        entry: dict[str, Any] = {"name": c.name, "type": {"int": "INT32", "bigint": "INT64", "smallint": "INT16",
                                                          "text": "VARCHAR", "decimal": "DECIMAL",
                                                          "date": "DATE"}[c.kind]}
        if c.kind == "text":
            entry["collation_name"] = "C" if engine == "postgres" else "utf8mb4_general_ci"
        out.append(entry)
    return out


def vschema(engine: str) -> dict[str, Any]:
    return {"keyspaces": {
        UNSHARDED: {"sharded": False, "tables": {
            "warehouse": {"columns": _vschema_columns(WAREHOUSE, engine)},
            "customer_seq": {"type": "sequence"}, "orders_seq": {"type": "sequence"},
            "customer_email_lkp": {}, "orders_id_lkp": {}, "event_tag_lkp": {}}},
        SHARDED: {
            "sharded": True,
            "vindexes": {
                "hash": {"type": "hash"},
                "xxhash": {"type": "xxhash"},
                "customer_email_vdx": {"type": "lookup_unique", "owner": "customer", "params": {
                    "table": f"{UNSHARDED}.customer_email_lkp", "from": "email", "to": "keyspace_id"}},
                "orders_id_vdx": {"type": "lookup_unique", "owner": "orders", "params": {
                    "table": f"{UNSHARDED}.orders_id_lkp", "from": "order_id", "to": "keyspace_id"}},
                "event_tag_vdx": {"type": "consistent_lookup", "owner": "event", "params": {
                    "table": f"{UNSHARDED}.event_tag_lkp", "from": "tag", "to": "keyspace_id"}},
            },
            "tables": {
                "customer": {"column_vindexes": [{"column": "customer_id", "name": "hash"},
                                                 {"column": "email", "name": "customer_email_vdx"}],
                             "auto_increment": {"column": "customer_id", "sequence": f"{UNSHARDED}.customer_seq"},
                             "columns": _vschema_columns(CUSTOMER, engine)},
                "orders": {"column_vindexes": [{"column": "customer_id", "name": "hash"},
                                               {"column": "order_id", "name": "orders_id_vdx"}],
                           "auto_increment": {"column": "order_id", "sequence": f"{UNSHARDED}.orders_seq"},
                           "columns": _vschema_columns(ORDERS, engine)},
                "event": {"column_vindexes": [{"column": "event_id", "name": "xxhash"},
                                              {"column": "tag", "name": "event_tag_vdx"}],
                          "columns": _vschema_columns(EVENT, engine)},
                "item": {"type": "reference", "columns": _vschema_columns(ITEM, engine)},
            },
        },
    }}


def shard_ddl(engine: str) -> list[str]:
    return [t.ddl(engine) for t in (CUSTOMER, ORDERS, EVENT, ITEM)]


def unsharded_ddl(engine: str) -> list[str]:
    binary = "BYTEA" if engine == "postgres" else "VARBINARY(16)"
    text = CUSTOMER.column("email").sql_type(engine)
    tag = EVENT.column("tag").sql_type(engine)
    out = [WAREHOUSE.ddl(engine)]
    for seq in SEQUENCES:
        out += [f"CREATE TABLE {seq} (id INT PRIMARY KEY, next_id BIGINT, cache BIGINT)",
                f"INSERT INTO {seq} (id, next_id, cache) VALUES (0, 1, 100)"]
    out += [f"CREATE TABLE customer_email_lkp (email {text} NOT NULL, keyspace_id {binary}, PRIMARY KEY (email))",
            f"CREATE TABLE orders_id_lkp (order_id BIGINT NOT NULL, keyspace_id {binary}, PRIMARY KEY (order_id))",
            f"CREATE TABLE event_tag_lkp (tag {tag} NOT NULL, keyspace_id {binary} NOT NULL, "
            "PRIMARY KEY (tag, keyspace_id))"]
    return out


def reference_ddl(engine: str) -> list[str]:
    return [t.ddl(engine) for t in TABLES.values()]
