"""The demo's scripted tour: real queries through the router, over both wire protocols, checked as they run.

Each step prints the statement, the plan the router reports for it (``VEXPLAIN PLAN``: operators, keyspace,
vindex, target shards) and the result. Every result is checked, so a tour that finishes proves the router
answered correctly; ``TourFailed`` names the first wrong answer. PostgreSQL clients use asyncpg on keyspace
``customer``, MySQL clients aiomysql on ``customer_mysql`` (both runtime dependencies of shardgate).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shardgate.demo import data
from shardgate.demo.runner import say

Rows = list[tuple[Any, ...]]
USER, PASSWORD = data.DEMO_USER, data.DEMO_PASSWORD


class TourFailed(Exception):
    """A query through the router gave a wrong answer."""


@dataclass(frozen=True)
class Step:
    title: str
    sql: str
    check: Callable[[Rows], bool]
    expected: str  # what ``check`` accepts, for the failure message
    lookup_email: str | None = None  # show the lookup row the router reads first


def _ids(rows: Rows) -> list[int]:
    return [int(r[0]) for r in rows]


STEPS = (
    Step("Count across both shards: a scatter, summed by the router", "SELECT count(*) FROM customer",
         lambda rows: _ids(rows) == [len(data.CUSTOMERS)], f"[({len(data.CUSTOMERS)},)]"),
    Step("Point select: the hash vindex on customer_id picks one shard",
         "SELECT customer_id, email, name FROM customer WHERE customer_id = 4",
         lambda rows: [tuple(r) for r in rows] == [(4, "dave@example.com", "Dave")], "customer 4, Dave"),
    Step("Lookup vindex: the email's keyspace id comes from the lookup table, then one shard is read",
         "SELECT order_id, customer_id, sku FROM corder WHERE email = 'carol@example.com'",
         lambda rows: [tuple(r) for r in rows] == [(300, 3, "SKU-1001")], "order 300 of customer 3",
         lookup_email="carol@example.com"),
    Step("Reference table: every shard holds product, so any one shard answers",
         "SELECT sku, description, price FROM product ORDER BY sku",
         lambda rows: [(r[0], r[1], Decimal(str(r[2]))) for r in rows]
         == [(s, d, Decimal(p)) for s, d, p in data.PRODUCTS], "the 3 products"),
    Step("Join with the reference table, on the customer's own shard",
         "SELECT c.name, p.description FROM customer c JOIN product p ON p.sku = 'SKU-1002' "
         "WHERE c.customer_id = 5",
         lambda rows: [tuple(r) for r in rows] == [("Eve", "Keyboard")], "Eve, Keyboard"),
    Step("Scatter ORDER BY ... LIMIT: each shard sorts, the router merges and cuts",
         "SELECT customer_id, name FROM customer ORDER BY customer_id DESC LIMIT 3",
         lambda rows: _ids(rows) == [8, 7, 6], "customers 8, 7, 6"),
)
# Carol orders from her work address: a new lookup row (a second row for one email and keyspace id would trip
# the engine's consistent_lookup, which does not yet accept a duplicate that maps to the same keyspace id).
INSERT_SQL = ("INSERT INTO corder (customer_id, email, sku, price) "
              "VALUES (3, 'carol.work@example.com', 'SKU-1003', 19.99)")
LOOKUP_AFTER = "SELECT order_id, customer_id, sku FROM corder WHERE email = 'carol.work@example.com'"
FIRST_SEQUENCE_ID = 1000  # corder_seq's next_id in the sample schema


# --- printing ----------------------------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    return "NULL" if value is None else str(value)


def format_table(columns: Sequence[str], rows: Rows, indent: str = "    ") -> list[str]:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)),
             "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    lines.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return [indent + line.rstrip() for line in lines]


def summarize_plan(doc: dict[str, Any]) -> list[str]:
    """The operator tree of a VEXPLAIN PLAN document, one line per operator, with keyspace and shards."""
    lines: list[str] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        text = " ".join(str(p) for p in (node.get("OperatorType", "?"), node.get("Variant")) if p)
        keyspace = (node.get("Keyspace") or {}).get("Name")
        if keyspace:
            text += f" on {keyspace}"
        if node.get("Vindex"):
            text += f" by vindex {node['Vindex']}"
        shards = node.get("Shards")
        if isinstance(shards, list):
            text += f" -> shard{'' if len(shards) == 1 else 's'} {', '.join(shards)}"
        elif shards:
            text += f" -> {shards}"
        if node.get("AutoIncrement"):
            text += "; id from a sequence"
        for owned in node.get("OwnedLookups") or ():
            text += f"; writes lookup {str(owned).split(':', 1)[0]}"
        lines.append("    " + "  " * depth + text)
        for kid in node.get("Inputs") or ():
            walk(kid, depth + 1)

    walk(doc.get("Instructions", doc), 0)
    return lines


# --- the two clients ---------------------------------------------------------------------------------------------
class _Client:
    protocol = ""

    async def query(self, sql: str) -> tuple[list[str], Rows]:
        raise NotImplementedError

    async def write(self, sql: str) -> str:
        """Run a write; returns what the protocol reports (status, or the new id)."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class _PgClient(_Client):
    protocol = "postgres"

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @classmethod
    async def connect(cls, host: str, port: int, database: str) -> _PgClient:
        import asyncpg

        return cls(await asyncpg.connect(host=host, port=port, user=USER, password=PASSWORD, database=database,
                                         timeout=30))

    async def query(self, sql: str) -> tuple[list[str], Rows]:
        stmt = await self.conn.prepare(sql)
        rows = await stmt.fetch()
        return [a.name for a in stmt.get_attributes()], [tuple(r) for r in rows]

    async def write(self, sql: str) -> str:
        return str(await self.conn.execute(sql))

    async def close(self) -> None:
        await self.conn.close(timeout=5)


class _MysqlClient(_Client):
    protocol = "mysql"

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @classmethod
    async def connect(cls, host: str, port: int, database: str) -> _MysqlClient:
        import aiomysql

        return cls(await aiomysql.connect(host=host, port=port, user=USER, password=PASSWORD, db=database,
                                          autocommit=True, charset="utf8mb4", connect_timeout=30))

    async def query(self, sql: str) -> tuple[list[str], Rows]:
        async with self.conn.cursor() as cur:
            await cur.execute(sql)
            rows = await cur.fetchall()
            return [d[0] for d in cur.description or ()], [tuple(r) for r in rows]

    async def write(self, sql: str) -> str:
        async with self.conn.cursor() as cur:
            await cur.execute(sql)
            return f"{cur.rowcount} row inserted, LAST_INSERT_ID() = {cur.lastrowid}"

    async def close(self) -> None:
        self.conn.close()


# --- the tour ----------------------------------------------------------------------------------------------------
async def _explain(client: _Client, sql: str) -> None:
    _, rows = await client.query(f"VEXPLAIN PLAN {sql}")
    if len(rows) != 1 or len(rows[0]) != 1:
        raise TourFailed(f"VEXPLAIN PLAN {sql}: expected one row with one column, got {rows!r}")
    for line in summarize_plan(json.loads(rows[0][0])):
        say(line)


async def _show_lookup(client: _Client, tour: _Tour, email: str) -> None:
    """What the router reads first for a lookup vindex: the email's keyspace id, hence the shard."""
    _, rows = await client.query(f"SELECT keyspace_id FROM {tour.unsharded}.corder_email_lookup "
                                 f"WHERE email = '{email}'")
    for (ksid,) in rows:
        shard = tour.snap.shard_for_ksid(tour.keyspace, bytes(ksid)).name
        say(f"      {tour.unsharded}.corder_email_lookup: {email} -> keyspace id {bytes(ksid).hex()} "
            f"-> {tour.keyspace}/{shard}")


@dataclass(frozen=True)
class _Tour:
    keyspace: str
    unsharded: str
    snap: Any


async def _step(client: _Client, tour: _Tour, step: Step) -> Rows:
    say(f"  {step.title}")
    say(f"    {tour.keyspace}> {step.sql}")
    await _explain(client, step.sql)
    if step.lookup_email:
        await _show_lookup(client, tour, step.lookup_email)
    columns, rows = await client.query(step.sql)
    for line in format_table(columns, rows):
        say(line)
    if not step.check(rows):
        raise TourFailed(f"[{client.protocol}] {step.sql}: expected {step.expected}, got {rows!r}")
    say()
    return rows


async def _placement(connect: Callable[[str], Any], keyspace: str, snap: Any) -> None:
    """Which customers each shard holds, read through the router with shard-targeted sessions (``ks:shard``)."""
    expected = data.placement(snap, keyspace)
    for shard in sorted(expected):
        client = await connect(f"{keyspace}:{shard}")
        try:
            _, rows = await client.query("SELECT customer_id FROM customer ORDER BY customer_id")
        finally:
            await client.close()
        say(f"  {keyspace}/{shard} holds customer_id {_ids(rows)}")
        if _ids(rows) != sorted(expected[shard]):
            raise TourFailed(f"{keyspace}/{shard} holds {_ids(rows)}, expected {sorted(expected[shard])}")
    say()


async def _protocol_tour(client: _Client, connect: Callable[[str], Any], keyspace: str, unsharded: str,
                         snap: Any, show_shards: bool) -> None:
    if show_shards:
        say("  The shards behind the router (SHOW SHARDGATE SHARDS):")
        columns, rows = await client.query("SHOW SHARDGATE SHARDS")
        for line in format_table(columns, rows):
            say(line)
        if {(r[0], r[1]) for r in rows} != {(s.keyspace, s.shard) for s in data.SHARDS}:
            raise TourFailed(f"SHOW SHARDGATE SHARDS lists {rows!r}")
        say()
    await _placement(connect, keyspace, snap)
    tour = _Tour(keyspace, unsharded, snap)
    for step in STEPS:
        await _step(client, tour, step)
    say(f"  Insert without order_id: the id comes from the sequence {unsharded}.corder_seq, and the row's email "
        f"goes into the lookup table {unsharded}.corder_email_lookup")
    say(f"    {keyspace}> {INSERT_SQL}")
    await _explain(client, INSERT_SQL)
    say(f"    {await client.write(INSERT_SQL)}")
    say()
    await _step(client, tour, Step(
        "The lookup by the new email finds the new order on Carol's shard", LOOKUP_AFTER,
        lambda rows: len(rows) == 1 and rows[0][0] >= FIRST_SEQUENCE_ID and tuple(rows[0][1:]) == (3, "SKU-1003"),
        f"one order of customer 3 with an id >= {FIRST_SEQUENCE_ID}", lookup_email="carol.work@example.com"))


async def run_tour(host: str, pg_port: int, my_port: int, snap: Any) -> None:
    """Both halves of the tour; raises ``TourFailed`` (or a client error) at the first wrong answer."""
    halves: list[tuple[str, Callable[[str], Any], str, str]] = [
        ("PostgreSQL protocol (asyncpg)", lambda db: _PgClient.connect(host, pg_port, db), *data.KEYSPACES["postgres"]),
        ("MySQL protocol (aiomysql)", lambda db: _MysqlClient.connect(host, my_port, db), *data.KEYSPACES["mysql"]),
    ]
    for i, (title, connect, keyspace, unsharded) in enumerate(halves):
        port = pg_port if i == 0 else my_port
        say(f"=== {title}: {host}:{port}, user {USER}, database {keyspace} ===")
        client = await connect(keyspace)
        try:
            await _protocol_tour(client, connect, keyspace, unsharded, snap, show_shards=i == 0)
        finally:
            await client.close()
