"""A sharded cluster of in-memory SQLite databases, to check that a plan means what its query means.

``Cluster(rows)`` places each table's rows the way the router would (a sharded table's row on the shard of its
primary vindex value, a reference table's rows on every shard of its keyspace, an unsharded keyspace on its one
shard) and keeps a single database holding everything. ``await cluster.routed(sql)`` plans the statement and runs
the plan with the real engine against the shards; ``cluster.direct(sql)`` runs it on the single database. The two
must return the same multiset of rows (the same list when the query orders its rows completely).

SQLite reads the MySQL dialect the planner writes for these queries (backquoted names, ``TRUE``/``FALSE``, IN
lists, EXISTS, LIMIT, UNION); ``weight_string`` is registered as the value's UTF-8 bytes, which is SQLite's own
(binary) text order. Text columns are reported with a binary collation for the same reason.
"""
from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from router.backend.connection import BackendTarget
from router.backend.result import Column, ExecResult, ResultSet, Row, TypeCode
from router.engine.context import Limits
from router.engine.run import run
from router.planner import Planner, SessionView
from sharding.snapshot import ClusterSnapshot
from sharding.vindexes import registry
from sharding.vschema import parse_vschema

TEXT = {"type": "VARCHAR", "collation_name": "utf8mb4_bin"}
INT = {"type": "INT64"}
COLUMNS = {
    "product": ("sku", "price"), "promo": ("sku", "pct"), "customer": ("id", "name", "region"),
    "orders": ("id", "customer_id", "sku", "qty"), "item": ("id", "order_id", "sku", "note"),
    "region": ("code", "label"),
}
_TEXT_COLUMNS = {"sku", "name", "region", "note", "code", "label"}


def _table(name: str, **extra: Any) -> dict[str, Any]:
    cols = [{"name": c, **(TEXT if c in _TEXT_COLUMNS else INT)} for c in COLUMNS[name]]
    return {"columns": cols, "column_list_authoritative": True, **extra}


VSCHEMA: dict[str, Any] = {
    "keyspaces": {
        "main": {"sharded": False, "tables": {"product": _table("product"), "promo": _table("promo")}},
        "ks": {
            "sharded": True,
            "vindexes": {"hash": {"type": "hash"}},
            "tables": {
                "customer": _table("customer", column_vindexes=[{"column": "id", "name": "hash"}]),
                "orders": _table("orders", column_vindexes=[{"column": "customer_id", "name": "hash"}]),
                "item": _table("item", column_vindexes=[{"column": "id", "name": "hash"}]),
                "region": _table("region", type="reference"),
            },
        },
    }
}
SHARDS = {"main": ["0"], "ks": ["-80", "80-"]}
PRIMARY = {"customer": "id", "orders": "customer_id", "item": "id"}
KEYSPACE = {"product": "main", "promo": "main", "customer": "ks", "orders": "ks", "item": "ks", "region": "ks"}


def snapshot() -> ClusterSnapshot:
    return ClusterSnapshot.build(1, parse_vschema(VSCHEMA), SHARDS)


def _weight_string(v: Any) -> Any:
    if v is None:
        return None
    return str(v).encode() if not isinstance(v, bytes) else v


def _connect() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.create_function("weight_string", 1, _weight_string, deterministic=True)
    for table, cols in COLUMNS.items():
        conn.execute(f"CREATE TABLE {table} ({', '.join(cols)})")
    return conn


def _type(values: Sequence[Any]) -> TypeCode:
    for v in values:
        if isinstance(v, bool) or isinstance(v, int):
            return TypeCode.BIGINT
        if isinstance(v, float):
            return TypeCode.DOUBLE
        if isinstance(v, bytes):
            return TypeCode.VARBINARY
        if isinstance(v, str):
            return TypeCode.VARCHAR
    return TypeCode.BIGINT


class _Stream:
    def __init__(self, columns: tuple[Column, ...], rows: list[Row], batch: int) -> None:
        self.columns, self._rows, self._batch = columns, rows, batch

    def __aiter__(self) -> AsyncIterator[list[Row]]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[list[Row]]:
        for start in range(0, len(self._rows), self._batch):
            yield self._rows[start:start + self._batch]


@dataclass
class Call:
    shard: str
    sql: str


class Cluster:
    """The shards (one SQLite database each), the single reference database, and an ``ExecutionContext``."""

    def __init__(self, rows: Mapping[str, Sequence[tuple[Any, ...]]], snap: ClusterSnapshot | None = None,
                 limits: Limits | None = None, dialect: str = "mysql") -> None:
        self.dialect = dialect  # the client's and the shards' (SQLite reads what the planner writes for both)
        self.snapshot = snap or snapshot()
        self.limits = limits or Limits(batch_rows=3, join_batch_rows=4)
        self.whole = _connect()
        self.shards: dict[str, sqlite3.Connection] = {
            f"{ks}/{shard}": _connect() for ks, shards in SHARDS.items() for shard in shards}
        self.calls: list[Call] = []
        hash_vindex = registry.create("hash", "hash", {})[0]
        for table, table_rows in rows.items():
            cols = COLUMNS[table]
            marks = ", ".join("?" for _ in cols)
            insert = f"INSERT INTO {table} VALUES ({marks})"
            self.whole.executemany(insert, table_rows)
            ks = KEYSPACE[table]
            for row in table_rows:
                if ks == "main":
                    targets = ["main/0"]
                elif table in PRIMARY:
                    (dest,) = hash_vindex.map([row[cols.index(PRIMARY[table])]])  # type: ignore[attr-defined]
                    targets = [f"ks/{self.snapshot.shard_for_ksid('ks', dest.ksid).name}"]
                else:
                    targets = [f"ks/{s}" for s in SHARDS["ks"]]
                for t in targets:
                    self.shards[t].execute(insert, row)

    # --- ExecutionContext -----------------------------------------------------------------------------------
    def backend_dialect(self, keyspace: str) -> str:
        return self.dialect

    def _query(self, target: BackendTarget, sql: str, params: Sequence[Any] | None = None
               ) -> tuple[tuple[Column, ...], list[Row]]:
        self.calls.append(Call(target.shard_name, sql))
        try:
            if params is not None:  # PostgreSQL ``$n`` placeholders: SQLite's ``?n``
                cur = self.shards[target.shard_name].execute(re.sub(r"\$(\d+)", r"?\1", sql), tuple(params))
            else:
                cur = self.shards[target.shard_name].execute(sql)
        except sqlite3.Error as exc:
            raise AssertionError(f"shard {target.shard_name} rejected {sql!r}: {exc}") from None
        rows = [tuple(r) for r in cur.fetchall()]
        names = [d[0] for d in cur.description or ()]
        columns = tuple(Column(name=n, type=_type([r[i] for r in rows]), engine="mysql", backend_type=8,
                               backend_type_name="sqlite", collation="utf8mb4_bin", charset="utf8mb4")
                        for i, n in enumerate(names))
        return columns, rows

    @contextlib.asynccontextmanager
    async def stream(self, target: BackendTarget, sql: str, *, timeout: float | None = None
                     ) -> AsyncIterator[_Stream]:
        columns, rows = self._query(target, sql)
        yield _Stream(columns, rows, self.limits.batch_rows)

    async def execute(self, target: BackendTarget, sql: str, *, timeout: float | None = None,
                      params: Sequence[Any] | None = None) -> ResultSet | ExecResult:
        columns, rows = self._query(target, sql, params)
        return ResultSet(columns=columns, rows=rows)

    async def reserve_ids(self, keyspace: str, table: str, count: int) -> int:
        raise AssertionError("no sequences here")

    # --- running ------------------------------------------------------------------------------------------
    async def routed(self, sql: str, planner: Planner | None = None, params: Any = None) -> list[tuple[Any, ...]]:
        planner = planner or Planner()
        bound = planner.plan(sql, SessionView(dialect=self.dialect), self.snapshot, params)
        ex = run(bound, self, self.snapshot, dialect=self.dialect, limits=self.limits)
        return [tuple(r) for r in await ex.fetchall()]

    def direct(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.whole.execute(sql).fetchall()]


def normalize(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows comparable across the two paths: booleans as integers (SQLite has no boolean type)."""
    return [tuple(int(v) if isinstance(v, bool) else v for v in r) for r in rows]


def sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is not None, type(v).__name__, v) for v in row)


# --- data and checks ------------------------------------------------------------------------------------------
def datasets() -> Any:
    """A hypothesis strategy of table contents: small value ranges so that joins match, NULLs and duplicates."""
    from hypothesis import strategies as st

    small = st.integers(1, 10)
    maybe_small = st.one_of(st.none(), small)
    names = st.sampled_from(["ann", "bob", "cid", None])
    regions = st.sampled_from(["eu", "us", "ap", None])
    skus = st.sampled_from(["a", "b", "c", "d", None])
    notes = st.sampled_from(["x", "y", None])
    return st.fixed_dictionaries({
        "customer": st.lists(st.tuples(small, names, regions), max_size=8),
        "orders": st.lists(st.tuples(small, small, skus, st.one_of(st.none(), st.integers(1, 3))), max_size=10),
        "item": st.lists(st.tuples(small, maybe_small, skus, notes), max_size=10),
        "region": st.lists(st.tuples(regions, st.sampled_from(["Europe", "States", None])), max_size=4),
        "product": st.lists(st.tuples(skus, st.one_of(st.none(), st.integers(1, 30))), max_size=5),
        "promo": st.lists(st.tuples(skus, st.integers(1, 9)), max_size=3),
    })


def without_nulls(data: Mapping[str, Sequence[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    return {t: [r for r in rows if None not in r] for t, rows in data.items()}


def check(cluster: Cluster, sql: str, planner: Planner, keys: int = 0) -> None:
    """The plan of ``sql`` returns on the shards what ``sql`` returns on the single database: the same multiset of
    rows; with ``keys``, the statement orders by its first ``keys`` columns, whose sequence must match too (rows
    tied on them may come in any order). With a LIMIT, only the ordered keys (or, unordered, the row count)."""
    import asyncio

    got = normalize(asyncio.run(cluster.routed(sql, planner)))
    want = normalize(cluster.direct(sql))
    limited = " limit " in sql.lower()
    if keys:
        assert [r[:keys] for r in got] == [r[:keys] for r in want], f"{sql}\n  routed: {got}\n  direct: {want}"
    if limited:
        assert len(got) == len(want), f"{sql}\n  routed: {got}\n  direct: {want}"
        return
    assert sorted(got, key=sort_key) == sorted(want, key=sort_key), (
        f"{sql}\n  routed: {sorted(got, key=sort_key)}\n  direct: {sorted(want, key=sort_key)}")
