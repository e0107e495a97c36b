"""After the writes: the router's own bookkeeping, read directly from the databases.

- every owned lookup table holds exactly one row per owner row (``from`` value, keyspace id of the row);
- every row of a sharded table sits on the shard its keyspace id selects;
- every shard's copy of the reference table equals the reference database's table.
"""
from __future__ import annotations

from typing import Any

from router.backend.result import ResultSet
from sharding import db
from sharding.vindexes import registry
from tests.integration.oracle import schema
from tests.support.backends import connected

_HASH = registry.create("hash", "hash", {})[0]
_XXHASH = registry.create("xxhash", "xxhash", {})[0]


def ksid(vindex: Any, value: Any) -> bytes:
    (dest,) = vindex.map([value])
    return bytes(dest.ksid)


async def _ref_rows(env: Any, sql: str) -> list[tuple[Any, ...]]:
    result = await env.ref.execute(sql)
    assert isinstance(result, ResultSet)
    return result.rows


async def check_lookup_tables(env: Any) -> list[Any]:
    from tests.integration.oracle.runner import Failure

    failures: list[Failure] = []

    def fail(what: str, detail: str) -> None:
        failures.append(Failure(env.engine, "dml", "lookup table", what, detail))

    expected = {
        "customer_email_lkp": {(e, ksid(_HASH, c)) for c, e in await _ref_rows(env, "SELECT customer_id, email FROM "
                                                                                   "customer")},
        "orders_id_lkp": {(o, ksid(_HASH, c)) for o, c in await _ref_rows(env, "SELECT order_id, customer_id FROM "
                                                                               "orders")},
        "event_tag_lkp": {(t, ksid(_XXHASH, e)) for e, t in await _ref_rows(env, "SELECT event_id, tag FROM event")},
    }
    async with connected(env.main_dsn) as conn:
        for table, want in expected.items():
            cols = {"customer_email_lkp": "email", "orders_id_lkp": "order_id", "event_tag_lkp": "tag"}[table]
            got = {(v, bytes(k)) for v, k in await db.fetch_all(conn, f"SELECT {cols}, keyspace_id FROM {table}")}
            if got != want:
                extra, missing = sorted(got - want, key=repr)[:5], sorted(want - got, key=repr)[:5]
                fail(f"SELECT {cols}, keyspace_id FROM {table}",
                     f"{len(got)} rows vs {len(want)} expected; extra {extra}; missing {missing}")
    async with connected(env.ref_dsn) as conn:
        ref_items = sorted(await db.fetch_all(conn, "SELECT * FROM item ORDER BY item_id"))
    snapshot = env.gw.snapshot
    for shard, dsn in env.shard_dsns.items():
        async with connected(dsn) as conn:
            for table, col, vindex in (("customer", "customer_id", _HASH), ("orders", "customer_id", _HASH),
                                       ("event", "event_id", _XXHASH)):
                for (value,) in await db.fetch_all(conn, f"SELECT {col} FROM {table}"):
                    home = snapshot.shard_for_ksid(schema.SHARDED, ksid(vindex, value)).name
                    if home != shard:
                        fail(f"SELECT {col} FROM {table}", f"{table} row {col}={value} is on shard {shard}, "
                                                           f"its keyspace id belongs to {home}")
            items = sorted(await db.fetch_all(conn, "SELECT * FROM item ORDER BY item_id"))
            if items != ref_items:
                fail("SELECT * FROM item", f"shard {shard}'s copy of the reference table differs "
                                           f"({len(items)} rows vs {len(ref_items)})")
    return failures
