"""The query corpus: fixed families, each with a minimum count, generated from one seed per (family, engine) so a
failure reproduces and adding a family does not change the others.

Rules every generator follows (they make the reference database's answer the only right one):

- every ORDER BY is total: it ends with the primary key(s) of the rows it orders (or with every group key /
  every DISTINCT column, which are unique per output row);
- LIMIT/OFFSET only under such an ORDER BY, also inside subqueries;
- nothing whose answer the server may choose: no non-aggregated columns outside GROUP BY, no division by a
  column that may be 0, no float arithmetic. Where MariaDB's utf8mb4_general_ci lets the server pick any of
  several equal texts (DISTINCT, GROUP BY, MIN/MAX of text), the query says so (``ci_text``) and text compares by
  collation weight there;
- a query with no top-level ORDER BY compares as a multiset (``ordered=False``).
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.integration.oracle import schema
from tests.integration.oracle.data import Dataset, literal

# family -> minimum count per engine (the corpus is at least their sum; the issue asks for >= 2,000 in all)
FAMILIES: dict[str, int] = {
    "point": 200,
    "in": 180,
    "range": 160,
    "scatter": 160,
    "order_limit": 240,
    "aggregate": 240,
    "distinct": 150,
    "join_vindex": 160,
    "join_off_vindex": 160,
    "subquery": 180,
    "union": 60,  # beyond the list
    "dml": 170,
}


@dataclass(frozen=True)
class Query:
    """One statement. ``sql`` goes to the router (with ``params`` bound, if any); ``ref_sql`` (default: ``sql``)
    to the reference database; ``{id0}``, ``{id1}``… in it stand for the ids the router's sequence gave the rows
    (its insert id, +1, …). ``write``: compare affected rows, after running ``session`` on both sides (a
    transaction); otherwise compare rows (in order when ``ordered``; text by collation weight when ``ci_text``)."""

    family: str
    sql: str
    ordered: bool = False
    ci_text: bool = False
    params: tuple[Any, ...] | None = None
    ref_sql: str | None = None
    write: bool = False
    session: tuple[str, ...] = ()  # statements run first in the same router session (and on the reference)

    @property
    def reference_sql(self) -> str:
        return self.ref_sql if self.ref_sql is not None else self.sql


@dataclass
class Case:
    """What the runner executes in order: one read, or one write followed by the reads that check it."""

    family: str
    steps: list[Query] = field(default_factory=list)


class Gen:
    """Helpers over the data for one engine and one random stream."""

    def __init__(self, data: Dataset, engine: str, rng: random.Random) -> None:
        self.data, self.engine, self.rng = data, engine, rng
        self.pg = engine == "postgres"

    # --- values ------------------------------------------------------------------------------------------------
    def lit(self, v: Any) -> str:
        return literal(v, self.engine)

    def pick(self, table: str, column: str, missing: Any = None, p_missing: float = 0.0) -> Any:
        if missing is not None and self.rng.random() < p_missing:
            return missing
        return self.rng.choice(self.data.values(table, column))

    def picks(self, table: str, column: str, k: int) -> list[Any]:
        vals = self.data.values(table, column)
        return [self.rng.choice(vals) for _ in range(k)]

    def cid(self) -> int:
        return int(self.pick("customer", "customer_id", missing=99999, p_missing=0.05))

    def oid(self) -> int:
        return int(self.pick("orders", "order_id", missing=88888, p_missing=0.05))

    def eid(self) -> int:
        return int(self.pick("event", "event_id", missing=424242, p_missing=0.05))

    def in_list(self, values: list[Any]) -> str:
        return "(" + ", ".join(self.lit(v) for v in values) + ")"

    def choice(self, seq: Any) -> Any:
        return self.rng.choice(seq)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def cols(self, table: str, alias: str = "", k: int | None = None, star: float = 0.15) -> str:
        t = schema.TABLES[table]
        if not alias and self.chance(star):
            return "*"
        names = list(t.column_names)
        k = k or self.rng.randint(1, len(names))
        chosen = sorted(self.rng.sample(range(len(names)), k))
        pre = f"{alias}." if alias else ""
        return ", ".join(pre + names[i] for i in chosen)

    def direction(self) -> str:
        return self.choice(("", " ASC", " DESC"))

    def nulls(self) -> str:
        """PostgreSQL only: an explicit NULLS FIRST/LAST now and then."""
        if self.pg and self.chance(0.25):
            return self.choice((" NULLS FIRST", " NULLS LAST"))
        return ""

    def order_by(self, table: str, alias: str = "", n_keys: int | None = None) -> str:
        """A total ORDER BY: 0-2 keys from the table, then its primary key (in a random direction)."""
        t = schema.TABLES[table]
        pre = f"{alias}." if alias else ""
        keys = [c for c in t.column_names if c != t.pk]
        n = self.rng.randint(0, 2) if n_keys is None else n_keys
        parts = [f"{pre}{k}{self.direction()}{self.nulls()}" for k in self.rng.sample(keys, n)]
        parts.append(f"{pre}{t.pk}{self.direction()}")
        return " ORDER BY " + ", ".join(parts)

    def limit(self, p: float = 0.7) -> str:
        if not self.chance(p):
            return ""
        count = self.choice((0, 1, 2, 3, 5, 7, 10, 15, 25, 60, 1000))
        if self.chance(0.4):
            return f" LIMIT {count} OFFSET {self.choice((0, 1, 2, 4, 9, 30, 500))}"
        return f" LIMIT {count}"

    def bind(self, sql_parts: list[str], values: list[Any]) -> tuple[str, tuple[Any, ...], str]:
        """Join ``sql_parts`` around placeholders for ``values``: the router text (``?`` / ``$n``), the params,
        and the reference text with literals."""
        router, ref = [sql_parts[0]], [sql_parts[0]]
        for i, (v, part) in enumerate(zip(values, sql_parts[1:], strict=True)):
            router.append(f"${i + 1}" if self.pg else "?")
            router.append(part)
            ref.append(self.lit(v))
            ref.append(part)
        return "".join(router), tuple(values), "".join(ref)

    # --- predicates ---------------------------------------------------------------------------------------------
    def filter_on(self, table: str, alias: str = "") -> str:
        """A predicate on a non-vindex column of ``table`` (scatter)."""
        pre = f"{alias}." if alias else ""
        r = self.rng
        if table == "customer":
            opts: list[Callable[[], str]] = [
                lambda: f"{pre}region = {self.lit(self.pick('customer', 'region'))}",
                lambda: f"{pre}region IS NULL",
                lambda: f"{pre}score > {r.randrange(0, 100)}",
                lambda: f"{pre}score IS NULL",
                lambda: f"{pre}vip = {r.randrange(2)}",
                lambda: f"{pre}balance < {self.lit(self.pick('customer', 'balance'))}",
                lambda: f"{pre}joined >= {self.lit(self.pick('customer', 'joined'))}",
                lambda: f"{pre}name = {self.lit(self.pick('customer', 'name'))}",
            ]
        elif table == "orders":
            opts = [
                lambda: f"{pre}status = {self.lit(self.choice(('new', 'paid', 'shipped', 'returned')))}",
                lambda: f"{pre}qty >= {r.randrange(1, 10)}",
                lambda: f"{pre}amount > {self.lit(self.pick('orders', 'amount'))}",
                lambda: f"{pre}note IS NOT NULL",
                lambda: f"{pre}note = {self.lit(self.pick('orders', 'note'))}",  # quotes, backslash, tab, emoji
                lambda: f"{pre}item_id IS NULL",
                lambda: f"{pre}placed < {self.lit(self.pick('orders', 'placed'))}",
            ]
        elif table == "event":
            opts = [
                lambda: f"{pre}kind = {self.lit(self.pick('event', 'kind'))}",
                lambda: f"{pre}weight < {r.randrange(-50, 200)}",
                lambda: f"{pre}cost IS NULL",
                lambda: f"{pre}happened > {self.lit(self.pick('event', 'happened'))}",
                lambda: f"{pre}customer_id IS NOT NULL",
                lambda: f"{pre}payload IN ({self.lit(self.pick('event', 'payload'))}, "
                        f"{self.lit(self.pick('event', 'payload'))})",
            ]
        elif table == "item":
            opts = [lambda: f"{pre}category = {self.lit(self.pick('item', 'category'))}",
                    lambda: f"{pre}price > {self.lit(self.pick('item', 'price'))}",
                    lambda: f"{pre}launched IS NULL"]
        else:
            opts = [lambda: f"{pre}capacity > {r.randrange(100, 5000)}", lambda: f"{pre}region IS NOT NULL",
                    lambda: f"{pre}rent < {self.lit(self.pick('warehouse', 'rent'))}"]
        return self.choice(opts)()


# --- the families --------------------------------------------------------------------------------------------
_POINT_TARGETS = (
    # (table, column, value picker, weight)
    ("customer", "customer_id", "cid", 4), ("customer", "email", "email", 2), ("orders", "order_id", "oid", 3),
    ("orders", "customer_id", "cid", 2), ("event", "event_id", "eid", 3), ("event", "tag", "tag", 2),
    ("item", "item_id", "item", 1), ("warehouse", "wh_id", "wh", 1),
)


_MISSING = {"cid": 99999, "oid": 88888, "eid": 7, "email": "nobody@example.com", "tag": "no-such-tag", "item": 777,
            "wh": 555}


def _value(g: Gen, kind: str) -> Any:
    if kind == "cid":
        return g.cid()
    if kind == "oid":
        return g.oid()
    if kind == "eid":
        return g.eid()
    if kind == "email":
        return g.pick("customer", "email", missing="nobody@example.com", p_missing=0.05)
    if kind == "tag":
        return g.pick("event", "tag", missing="no-such-tag", p_missing=0.05)
    if kind == "item":
        return g.pick("item", "item_id", missing=777, p_missing=0.05)
    return g.pick("warehouse", "wh_id", missing=555, p_missing=0.05)


def _weighted(g: Gen, options: tuple[Any, ...]) -> Any:
    return g.rng.choices(options, weights=[o[-1] for o in options])[0]


def gen_point(g: Gen) -> Query:
    table, column, kind, _ = _weighted(g, _POINT_TARGETS)
    value = _value(g, kind)
    if isinstance(value, str) and g.chance(0.15):
        value = g.choice((value.upper(), value.title(), value.lower()))
    cols = g.cols(table)
    if g.chance(0.06):  # provably empty: no shard at all
        other = _value(g, kind)
        where = g.choice((f"{column} = NULL", f"{column} = {g.lit(value)} AND {column} = {g.lit(other)}",
                          f"{column} IN (NULL)"))
        return Query("point", f"SELECT {cols} FROM {table} WHERE {where}")
    if g.chance(0.08):  # a scalar aggregate of one point (a missing one too: still one row)
        num = [c for c in _AGG_ARGS[table] if c in _NUMERIC]
        point = value if g.chance(0.5) else _MISSING[kind]
        return Query("point", f"SELECT COUNT(*), MAX({g.choice(num)}) FROM {table} WHERE {column} = {g.lit(point)}")
    extra = f" AND {g.filter_on(table)}" if g.chance(0.25) else ""
    if g.chance(0.3):  # bind parameters instead of a literal
        sql, params, ref = g.bind([f"SELECT {cols} FROM {table} WHERE {column} = ", extra], [value])
        return Query("point", sql, params=params, ref_sql=ref)
    ordered = g.chance(0.3)
    order = g.order_by(table) if ordered else ""
    return Query("point", f"SELECT {cols} FROM {table} WHERE {column} = {g.lit(value)}{extra}{order}", ordered)


def gen_in(g: Gen) -> Query:
    table, column, kind, _ = _weighted(g, _POINT_TARGETS)
    n = g.rng.randint(1, 12)
    values = [_value(g, kind) for _ in range(n)]
    cols = g.cols(table)
    form = g.rng.random()
    if form < 0.55:
        where = f"{column} IN {g.in_list(values)}"
    elif form < 0.65:
        where = f"{column} IN {g.in_list([*values, None])}"
    elif form < 0.75:
        where = f"({column} IN {g.in_list(values)} OR {column} = {g.lit(_value(g, kind))})"
    elif form < 0.8:
        where = f"{column} NOT IN {g.in_list(values)}"
    elif form < 0.85 and table in ("customer", "orders"):
        pairs = [(g.cid(), g.rng.randrange(2)) for _ in range(g.rng.randint(1, 5))]
        other = "vip" if table == "customer" else "qty"
        where = f"(customer_id, {other}) IN (" + ", ".join(f"({a}, {b})" for a, b in pairs) + ")"
    else:
        if table == "customer":
            where = f"region IN {g.in_list(g.picks('customer', 'region', 3))}"
        elif table == "orders":
            where = f"status IN {g.in_list(g.rng.sample(('new', 'paid', 'shipped', 'returned', 'x'), 2))}"
        elif table == "event":
            where = f"kind IN {g.in_list(g.picks('event', 'kind', 2))}"
        else:
            where = f"{column} IN {g.in_list(values)}"
    if g.chance(0.25):
        where += f" AND {g.filter_on(table)}"
    if g.chance(0.2) and form < 0.55:
        sql, params, ref = g.bind([f"SELECT {cols} FROM {table} WHERE {column} IN ("]
                                  + [", "] * (len(values) - 1) + [")"], values)
        return Query("in", sql, params=params, ref_sql=ref)
    ordered = g.chance(0.35)
    order = g.order_by(table) + g.limit(0.4) if ordered else ""
    return Query("in", f"SELECT {cols} FROM {table} WHERE {where}{order}", ordered)


_RANGE_COLUMNS = (
    ("customer", "customer_id"), ("customer", "balance"), ("customer", "score"), ("customer", "joined"),
    ("orders", "order_id"), ("orders", "amount"), ("orders", "placed"), ("orders", "qty"), ("event", "event_id"),
    ("event", "cost"), ("event", "happened"), ("event", "weight"), ("item", "price"), ("warehouse", "capacity"),
    ("warehouse", "opened"), ("customer", "name"), ("event", "tag"),
)


def gen_range(g: Gen) -> Query:
    table, column = g.choice(_RANGE_COLUMNS)
    a, b = sorted(g.picks(table, column, 2), key=lambda v: (v is None, v))
    form = g.rng.random()
    if form < 0.35:
        where = f"{column} BETWEEN {g.lit(a)} AND {g.lit(b)}"
    elif form < 0.5:
        where = f"{column} NOT BETWEEN {g.lit(a)} AND {g.lit(b)}"
    elif form < 0.75:
        where = f"{column} {g.choice(('<', '<=', '>', '>='))} {g.lit(a)}"
    else:
        where = f"{column} > {g.lit(a)} AND {column} <= {g.lit(b)}"
    if g.chance(0.2):
        where += f" AND {g.filter_on(table)}"
    cols = g.cols(table)
    ordered = g.chance(0.4)
    order = g.order_by(table) + g.limit(0.5) if ordered else ""
    return Query("range", f"SELECT {cols} FROM {table} WHERE {where}{order}", ordered)


def _expressions(g: Gen, table: str) -> list[str]:
    """Select-list expressions the shards compute (each row's own values)."""
    return {
        "customer": ["UPPER(name)", "LOWER(region)", "COALESCE(score, -1)", "balance * 2", "score + vip",
                     "CASE WHEN score > 50 THEN 'hi' ELSE 'lo' END", "EXTRACT(YEAR FROM joined)",
                     "CONCAT(name, '/', COALESCE(region, '?'))", "ABS(balance)", "score % 7"],
        "orders": ["qty * amount", "amount - 1.5", "COALESCE(note, 'none')", "EXTRACT(MONTH FROM placed)",
                   "qty % 3", "CASE status WHEN 'paid' THEN 1 ELSE 0 END", "UPPER(status)"],
        "event": ["weight * 2", "COALESCE(cost, 0)", "CONCAT(kind, ':', tag)", "EXTRACT(DAY FROM happened)",
                  "ABS(weight)"],
        "item": ["price * 3", "UPPER(title)", "COALESCE(category, '-')"],
        "warehouse": ["capacity + 1", "COALESCE(rent, 0)", "LOWER(city)"],
    }[table]


_TEXT_EXPRESSIONS = {"UPPER(name)", "LOWER(region)", "CASE WHEN score > 50 THEN 'hi' ELSE 'lo' END",
                     "CONCAT(name, '/', COALESCE(region, '?'))", "COALESCE(note, 'none')", "UPPER(status)",
                     "CONCAT(kind, ':', tag)", "UPPER(title)", "COALESCE(category, '-')", "LOWER(city)",
                     "UPPER(region)"}


def order_key(g: Gen, expr: str) -> str:
    """An ORDER BY / DISTINCT key. PostgreSQL: text computed from C-collated columns is C too (collation derivation,
    which the planner follows for UPPER, LOWER, CONCAT, COALESCE…); text of literals only (a CASE of constants) has
    the database's default collation, so it says ``COLLATE "C"`` explicitly (the documented way), as others do at
    random."""
    if g.pg and expr in _TEXT_EXPRESSIONS and (expr.startswith("CASE") or g.chance(0.5)):
        return f'{expr} COLLATE "C"'
    return expr


def gen_scatter(g: Gen) -> Query:
    table = g.choice(("customer", "customer", "orders", "orders", "event", "event", "item", "warehouse"))
    form = g.rng.random()
    t = schema.TABLES[table]
    if form < 0.45:
        where = " WHERE " + g.filter_on(table)
        if g.chance(0.3):
            where += f" {g.choice(('AND', 'OR'))} {g.filter_on(table)}"
    elif form < 0.6:
        where = ""
    elif form < 0.75:
        col = g.choice(t.of_kind("text"))
        prefix = str(g.pick(table, col))[:2].replace("%", "").replace("_", "")
        where = f" WHERE {col} LIKE {g.lit(prefix + '%')}"
    elif form < 0.85 and table in ("customer", "orders"):
        where = f" WHERE customer_id = {g.cid()} OR {g.filter_on(table)}"
    else:
        where = f" WHERE NOT ({g.filter_on(table)})"
    exprs = g.rng.sample(_expressions(g, table), g.rng.randint(1, 3))
    select = ", ".join([t.pk, *[f"{e} AS x{i}" for i, e in enumerate(exprs)]]) if g.chance(0.5) else g.cols(table)
    return Query("scatter", f"SELECT {select} FROM {table}{where}")


def gen_order_limit(g: Gen) -> Query:
    table = g.choice(("customer", "customer", "orders", "orders", "event", "event", "item", "warehouse"))
    t = schema.TABLES[table]
    form = g.rng.random()
    where = ""
    if g.chance(0.35):
        where = " WHERE " + g.filter_on(table)
    elif g.chance(0.2) and table in ("customer", "orders"):
        where = f" WHERE customer_id IN {g.in_list([g.cid() for _ in range(4)])}"
    elif g.chance(0.15) and table == "event":
        where = f" WHERE tag = {g.lit(g.pick('event', 'tag'))}"
    cols = g.cols(table)
    if form < 0.6:
        order = g.order_by(table)
    elif form < 0.75:  # an expression key
        expr = order_key(g, g.choice(_expressions(g, table)))
        order = f" ORDER BY {expr}{g.direction()}, {t.pk}{g.direction()}"
    elif form < 0.85:  # a position or an alias
        cols = f"{t.pk}, {g.choice([c for c in t.column_names if c != t.pk])} AS k"
        order = g.choice((f" ORDER BY 2{g.direction()}, 1{g.direction()}", f" ORDER BY k{g.direction()}, 1"))
    else:  # a key not in the select list
        cols = g.choice([c for c in t.column_names if c != t.pk])
        order = g.order_by(table, n_keys=1)
    if g.chance(0.12):  # LIMIT / OFFSET as bind parameters
        count, offset = g.rng.randint(0, 12), g.rng.randint(0, 20)
        sql, params, ref = g.bind([f"SELECT {cols} FROM {table}{where}{order} LIMIT ", " OFFSET ", ""],
                                  [count, offset])
        return Query("order_limit", sql, True, params=params, ref_sql=ref)
    if not g.pg and g.chance(0.05):  # MySQL: LIMIT offset, count
        return Query("order_limit", f"SELECT {cols} FROM {table}{where}{order} LIMIT {g.rng.randint(0, 40)}, "
                                    f"{g.rng.randint(0, 12)}", True)
    if g.pg and g.chance(0.05):  # PostgreSQL: OFFSET without LIMIT
        return Query("order_limit", f"SELECT {cols} FROM {table}{where}{order} OFFSET {g.rng.randint(0, 300)}", True)
    return Query("order_limit", f"SELECT {cols} FROM {table}{where}{order}{g.limit(0.85)}", True)


_GROUP_KEYS = {
    "customer": ["region", "vip", "score", "joined", "name", "EXTRACT(YEAR FROM joined)", "score % 4"],
    "orders": ["status", "customer_id", "item_id", "qty", "placed", "EXTRACT(MONTH FROM placed)"],
    "event": ["kind", "tag", "customer_id", "happened", "weight % 5"],
    "item": ["category"],
    "warehouse": ["region"],
}
_AGG_ARGS = {
    "customer": ["balance", "score", "joined", "vip", "name", "customer_id"],
    "orders": ["amount", "qty", "placed", "order_id", "status"],
    "event": ["cost", "weight", "happened", "event_id"],
    "item": ["price", "item_id", "launched"],
    "warehouse": ["capacity", "rent", "opened"],
}
_TEXT_COLUMNS = {c.name for t in schema.TABLES.values() for c in t.columns if c.kind == "text"}
_NUMERIC = {c.name for t in schema.TABLES.values() for c in t.columns if c.kind in ("int", "bigint", "smallint",
                                                                                      "decimal")}


def _aggregates(g: Gen, table: str, n: int) -> tuple[list[str], bool]:
    """``n`` aggregates; DISTINCT ones all over one argument (across shards, aggregates with DISTINCT on different
    expressions are unsupported, as in Vitess: VT12001 "only one DISTINCT aggregation is allowed")."""
    out, ci = [], False
    distinct_arg = g.choice(_AGG_ARGS[table])
    for _ in range(n):
        arg = g.choice(_AGG_ARGS[table])
        if arg in _NUMERIC:
            fn = g.choice(("COUNT(*)", "COUNT({})", "SUM({})", "MIN({})", "MAX({})", "AVG({})", "COUNT(DISTINCT {})",
                           "SUM(DISTINCT {})"))
        else:
            fn = g.choice(("COUNT(*)", "COUNT({})", "MIN({})", "MAX({})", "COUNT(DISTINCT {})"))
            ci = ci or (arg in _TEXT_COLUMNS and fn.startswith(("MIN", "MAX")))
        if "DISTINCT" in fn:
            arg = distinct_arg
            ci = ci or arg in _TEXT_COLUMNS
            if arg not in _NUMERIC:
                fn = "COUNT(DISTINCT {})"
        out.append(fn.format(arg))
    return out, ci


_AGG_EXTRAS = (
    # (sql, ordered, ci_text): expressions over aggregates, unaliased columns (named by each database's rules),
    # CASE over an aggregate, a derived aggregate joined back on the vindex
    ("SELECT region, COUNT(*) + 1, SUM(balance) * 2 FROM customer GROUP BY region ORDER BY region", True, True),
    ("SELECT vip, CASE WHEN COUNT(*) > {n} THEN 'many' ELSE 'few' END AS size FROM customer GROUP BY vip", False,
     False),
    ("SELECT status, MAX(placed), MIN(amount) FROM orders GROUP BY status HAVING MAX(placed) > DATE '2023-06-01' "
     "ORDER BY status DESC", True, True),
    ("SELECT c.region, d.n FROM customer c JOIN (SELECT customer_id, COUNT(*) AS n FROM orders GROUP BY customer_id) "
     "d ON d.customer_id = c.customer_id WHERE c.customer_id IN ({ids}) ORDER BY c.customer_id", True, False),
    ("SELECT customer_id, score * 2 FROM customer WHERE score IS NOT NULL ORDER BY score * 2 DESC, customer_id "
     "LIMIT {n}", True, False),
    ("SELECT kind, AVG(weight), COUNT(DISTINCT customer_id) FROM event GROUP BY kind ORDER BY kind", True, True),
    ("SELECT EXTRACT(YEAR FROM happened) AS y, SUM(cost) FROM event WHERE happened IS NOT NULL GROUP BY "
     "EXTRACT(YEAR FROM happened) ORDER BY y", True, False),
    ("SELECT COALESCE(SUM(amount), 0) AS s, COALESCE(MAX(qty), -1) AS m FROM orders WHERE order_id < {n} - 20",
     False, False),  # over no row too: the router's COALESCE is typed as the database's
    ("SELECT d.s, COUNT(*), MAX(d.a) FROM (SELECT status AS s, amount AS a FROM orders WHERE order_id > {n}) d "
     "GROUP BY d.s ORDER BY d.s", True, True),  # grouped over a derived table merged into the route
)


def gen_aggregate(g: Gen) -> Query:
    if g.chance(0.12):
        sql, ordered, ci = g.choice(_AGG_EXTRAS)
        sql = sql.format(n=g.rng.randint(1, 40), ids=", ".join(str(g.cid()) for _ in range(5)))
        return Query("aggregate", sql, ordered, ci)
    table = g.choice(("customer", "customer", "orders", "orders", "event", "event", "item", "warehouse"))
    aggs, ci = _aggregates(g, table, g.rng.randint(1, 3))
    where = ""
    if g.chance(0.35):
        where = " WHERE " + g.filter_on(table)
    elif g.chance(0.15) and table in ("customer", "orders"):
        where = f" WHERE customer_id = {g.cid()}"
    if g.chance(0.04):  # over no row at all
        where = g.choice((" WHERE 1 = 0", f" WHERE {schema.TABLES[table].pk} < -5"))
    if g.chance(0.25):  # scalar aggregate
        return Query("aggregate", f"SELECT {', '.join(aggs)} FROM {table}{where}", False, ci)
    keys = g.rng.sample(_GROUP_KEYS[table], min(len(_GROUP_KEYS[table]), g.rng.randint(1, 2)))
    ci = ci or any(k in _TEXT_COLUMNS for k in keys)
    select = ", ".join([*[f"{k} AS g{i}" for i, k in enumerate(keys)], *[f"{a} AS a{i}" for i, a in enumerate(aggs)]])
    group = " GROUP BY " + ", ".join(keys)
    having = ""
    if g.chance(0.35):
        hagg = g.choice(("COUNT(*)", *[a for a in aggs if a.startswith(("COUNT", "SUM"))]))
        having = f" HAVING {hagg} {g.choice(('>', '>=', '<', '='))} {g.rng.randint(0, 6)}"
        if g.chance(0.3):
            num = [c for c in _AGG_ARGS[table] if c in _NUMERIC]
            having += f" AND MAX({g.choice(num)}) IS NOT NULL"
    order, limit = "", ""
    if g.chance(0.55):
        parts = [f"g{i}{g.direction()}{g.nulls()}" for i in range(len(keys))]
        if g.chance(0.3):
            parts.insert(0, f"a0{g.direction()}{g.nulls()}")
        order = " ORDER BY " + ", ".join(parts)
        limit = g.limit(0.5)
    return Query("aggregate", f"SELECT {select} FROM {table}{where}{group}{having}{order}{limit}", bool(order), ci)


_DISTINCT_COLUMNS = {
    "customer": ["region", "vip", "score", "name", "joined", "EXTRACT(YEAR FROM joined)", "score % 5", "UPPER(region)"],
    "orders": ["status", "customer_id", "item_id", "qty", "placed"],
    "event": ["kind", "tag", "customer_id", "happened", "weight % 3"],
    "item": ["category", "price"],
    "warehouse": ["region"],
}


def gen_distinct(g: Gen) -> Query:
    table = g.choice(("customer", "customer", "orders", "orders", "event", "event", "item", "warehouse"))
    cols = g.rng.sample(_DISTINCT_COLUMNS[table], min(len(_DISTINCT_COLUMNS[table]), g.rng.randint(1, 3)))
    ci = any(c in _TEXT_COLUMNS or "UPPER" in c for c in cols)
    where = ""
    if g.chance(0.3):
        where = " WHERE " + g.filter_on(table)
    elif g.chance(0.1) and table in ("customer", "orders"):
        where = f" WHERE customer_id IN {g.in_list([g.cid() for _ in range(5)])}"
    if g.chance(0.15):
        return Query("distinct", f"SELECT COUNT(DISTINCT {cols[0]}) FROM {table}{where}", False, ci)
    select = ", ".join(f"{order_key(g, c)} AS d{i}" for i, c in enumerate(cols))
    if g.chance(0.5):
        order = " ORDER BY " + ", ".join(f"d{i}{g.direction()}{g.nulls()}" for i in range(len(cols)))
        return Query("distinct", f"SELECT DISTINCT {select} FROM {table}{where}{order}{g.limit(0.5)}", True, ci)
    return Query("distinct", f"SELECT DISTINCT {select} FROM {table}{where}", False, ci)


def gen_join_vindex(g: Gen) -> Query:
    """Joins the shards can do: on the shared vindex column, with a reference table, or of a table with itself
    on its vindex."""
    form = g.rng.random()
    if form < 0.55:
        left = g.choice(("JOIN", "JOIN", "LEFT JOIN"))
        base = f"FROM customer c {left} orders o ON o.customer_id = c.customer_id"
        sel = ", ".join([g.cols("customer", "c", g.rng.randint(1, 3)), g.cols("orders", "o", g.rng.randint(1, 3))])
        pks = ["c.customer_id", "o.order_id"]
        tables = ("customer", "orders")
    elif form < 0.8:
        base = f"FROM orders o {g.choice(('JOIN', 'LEFT JOIN'))} item i ON i.item_id = o.item_id"
        sel = ", ".join([g.cols("orders", "o", g.rng.randint(1, 3)), g.cols("item", "i", g.rng.randint(1, 2))])
        pks = ["o.order_id"]
        tables = ("orders", "item")
    elif form < 0.85:
        base = "FROM customer c JOIN orders o ON o.customer_id = c.customer_id JOIN item i ON i.item_id = o.item_id"
        sel = ", ".join([g.cols("customer", "c", 1), g.cols("orders", "o", 2), g.cols("item", "i", 1)])
        pks = ["c.customer_id", "o.order_id"]
        tables = ("customer", "orders")
    elif form < 0.92:
        base = "FROM event e JOIN item i ON i.item_id = e.weight"
        sel = ", ".join([g.cols("event", "e", 2), g.cols("item", "i", 2)])
        pks = ["e.event_id"]
        tables = ("event", "item")
    else:
        base = "FROM event e1 JOIN event e2 ON e2.event_id = e1.event_id"
        sel = "e1.event_id, e1.tag, e2.kind, e2.weight"
        pks = ["e1.event_id"]
        tables = ("event", "event")
    conds = []
    if g.chance(0.3) and tables[0] in ("customer", "orders"):
        alias = "c" if tables[0] == "customer" else "o"
        conds.append(g.choice((f"{alias}.customer_id = {g.cid()}",
                               f"{alias}.customer_id IN {g.in_list([g.cid() for _ in range(4)])}")))
    if g.chance(0.5):
        alias = "c" if tables[0] == "customer" else ("o" if tables[0] == "orders" else "e" if tables[1] == "item"
                                                                                    else "e1")
        conds.append(g.filter_on(tables[0], alias))
    where = (" WHERE " + " AND ".join(conds)) if conds else ""
    if g.chance(0.25) and tables == ("customer", "orders"):
        agg = g.choice(("COUNT(*)", "SUM(o.amount)", "MAX(o.placed)", "COUNT(o.order_id)", "AVG(o.qty)"))
        key = g.choice(("c.region", "c.vip", "o.status", "c.customer_id"))
        ordered = g.chance(0.5)
        return Query("join_vindex", f"SELECT {key} AS k, {agg} AS a {base}{where} GROUP BY {key}"
                     + (" ORDER BY k" if ordered else ""), ordered, ci_text=key in ("c.region", "o.status"))
    if g.chance(0.5):
        order = " ORDER BY " + ", ".join(f"{p}{g.direction()}" for p in pks)
        return Query("join_vindex", f"SELECT {sel} {base}{where}{order}{g.limit(0.6)}", True)
    return Query("join_vindex", f"SELECT {sel} {base}{where}")


def narrow(g: Gen, table: str, alias: str) -> str:
    """A selective predicate on the left side of a join the router runs as a nested loop: each left row costs a
    right-side query (on every shard when the right side is a scatter), so most joins start from a few rows."""
    if table == "customer":
        return g.choice((f"{alias}.customer_id IN {g.in_list([g.cid() for _ in range(g.rng.randint(1, 8))])}",
                         f"{alias}.score > {g.rng.randint(85, 98)}", f"{alias}.customer_id = {g.cid()}",
                         f"{alias}.region = {g.lit(g.pick('customer', 'region'))} AND {alias}.vip = 1 AND "
                         f"{alias}.score < {g.rng.randint(20, 60)}"))
    if table == "event":
        return g.choice((f"{alias}.tag = {g.lit(g.pick('event', 'tag'))}",
                         f"{alias}.tag IN {g.in_list(g.picks('event', 'tag', 2))}",
                         f"{alias}.kind = {g.lit(g.pick('event', 'kind'))} AND {alias}.weight < "
                         f"-{g.rng.randint(20, 45)}",
                         f"{alias}.event_id IN {g.in_list(g.picks('event', 'event_id', g.rng.randint(1, 8)))}",
                         f"{alias}.weight > {g.rng.randint(185, 199)}"))
    if table == "orders":
        return g.choice((f"{alias}.customer_id IN {g.in_list([g.cid() for _ in range(g.rng.randint(1, 6))])}",
                         f"{alias}.order_id IN {g.in_list([g.oid() for _ in range(g.rng.randint(1, 8))])}",
                         f"{alias}.qty = {g.rng.randint(1, 9)} AND {alias}.status = 'returned'"))
    return g.filter_on(table, alias)


_CROSS_EXPRESSIONS = (
    "c.score + e.weight", "e.weight - c.vip", "c.balance - e.cost", "e.cost * c.vip", "COALESCE(e.cost, c.balance)",
    "e.weight * c.score", "CASE WHEN e.weight > c.score THEN 1 ELSE 0 END", "c.balance + e.weight",
    "COALESCE(e.weight, c.score, -1)", "(c.score + e.weight) % 7", "-e.cost + c.balance", "c.customer_id + e.event_id",
)


def gen_join_off_vindex(g: Gen) -> Query:
    """Joins the router must do: across vindexes (nested loop with join variables, or hash join), across
    keyspaces (sharded with unsharded)."""
    form = g.rng.random()
    if form < 0.35:
        left = g.choice(("JOIN", "JOIN", "LEFT JOIN"))
        base = f"FROM customer c {left} event e ON e.customer_id = c.customer_id"
        sel = ", ".join([g.cols("customer", "c", g.rng.randint(1, 2)), g.cols("event", "e", g.rng.randint(1, 3))])
        pks = ["c.customer_id", "e.event_id"]
        first = ("customer", "c")
    elif form < 0.55:
        left = g.choice(("JOIN", "LEFT JOIN"))
        base = f"FROM event e {left} customer c ON c.customer_id = e.customer_id"
        sel = ", ".join([g.cols("event", "e", g.rng.randint(1, 2)), g.cols("customer", "c", g.rng.randint(1, 2))])
        pks = ["e.event_id", "c.customer_id"]
        first = ("event", "e")
    elif form < 0.7:
        base = "FROM orders o JOIN event e ON e.customer_id = o.customer_id AND e.weight > o.qty"
        sel = "o.order_id, o.qty, e.event_id, e.weight"
        pks = ["o.order_id", "e.event_id"]
        first = ("orders", "o")
    elif form < 0.85:
        left = g.choice(("JOIN", "LEFT JOIN"))
        base = f"FROM customer c {left} warehouse w ON w.region = c.region"
        sel = ", ".join([g.cols("customer", "c", g.rng.randint(1, 2)), g.cols("warehouse", "w", g.rng.randint(1, 2))])
        pks = ["c.customer_id", "w.wh_id"]
        first = ("customer", "c")
    else:
        base = "FROM warehouse w JOIN orders o ON o.qty = w.wh_id"
        sel = "w.wh_id, w.city, o.order_id, o.status"
        pks = ["w.wh_id", "o.order_id"]
        first = ("warehouse", "w")
    conds = []
    if first[0] != "warehouse":
        conds.append(narrow(g, *first))
    if "event e" in base and first[0] != "event":
        # The planner may read the event side first (Vitess's cost model: a scatter, then a unique-vindex lookup
        # per row beats IN-then-scatter), so that side is narrowed too.
        conds.append(narrow(g, "event", "e"))
    if g.chance(0.4):
        conds.append(g.filter_on(*first))
    where = (" WHERE " + " AND ".join(conds)) if conds else ""
    roll = g.rng.random()
    if roll < 0.2 and first[0] in ("customer", "event"):
        key = g.choice(("c.vip", "e.kind", "c.region")) if "event e" in base else g.choice(("c.vip", "c.region"))
        agg = g.choice(("COUNT(*)", "COUNT(e.event_id)", "SUM(e.weight)", "MAX(e.happened)", "AVG(e.weight)",
                        "AVG(e.cost)", "COUNT(DISTINCT e.kind)", "SUM(e.cost)")) if "event e" in base \
            else g.choice(("COUNT(*)", "SUM(c.score)", "MIN(c.balance)", "AVG(c.balance)", "AVG(c.score)"))
        ordered = g.chance(0.5)
        having = g.choice(("", "", " HAVING COUNT(*) > 1", f" HAVING {agg} IS NOT NULL",
                           " HAVING MIN(c.customer_id) < 150"))
        return Query("join_off_vindex", f"SELECT {key} AS k, {agg} AS a {base}{where} GROUP BY {key}{having}"
                     + (" ORDER BY k" if ordered else ""), ordered, ci_text=key in ("e.kind", "c.region"))
    if roll < 0.3 and "event e" in base and "customer c" in base:
        # Expressions over both sides: the router computes them (arithmetic, CASE, COALESCE as each database does)
        exprs = g.rng.sample(_CROSS_EXPRESSIONS, g.rng.randint(1, 3))
        select = ", ".join(f"{e} AS x{i}" for i, e in enumerate(exprs))
        if g.chance(0.5):
            order = f" ORDER BY x0{g.direction()}, c.customer_id, e.event_id"
            return Query("join_off_vindex", f"SELECT {select} {base}{where}{order}{g.limit(0.4)}", True)
        return Query("join_off_vindex", f"SELECT {select} {base}{where}")
    if roll < 0.38:
        col = pks[-1]
        return Query("join_off_vindex", f"SELECT DISTINCT {col} AS d {base}{where} ORDER BY d", True)
    if roll < 0.7:
        order = " ORDER BY " + ", ".join(f"{p}{g.direction()}" for p in pks)
        return Query("join_off_vindex", f"SELECT {sel} {base}{where}{order}{g.limit(0.5)}", True)
    return Query("join_off_vindex", f"SELECT {sel} {base}{where}")


def gen_subquery(g: Gen) -> Query:
    form = g.rng.randrange(25)
    cols = g.cols("customer", "c", g.rng.randint(1, 3))
    status = g.lit(g.choice(("new", "paid", "shipped", "returned")))
    kind = g.lit(g.pick("event", "kind"))
    pk = "c.customer_id"
    if form == 0:
        sql = f"SELECT {cols} FROM customer c WHERE c.customer_id IN (SELECT o.customer_id FROM orders o WHERE " \
              f"o.status = {status})"
    elif form == 1:
        sql = f"SELECT {cols} FROM customer c WHERE c.customer_id NOT IN (SELECT e.customer_id FROM event e WHERE " \
              f"e.customer_id IS NOT NULL AND e.kind = {kind})"
    elif form == 2:
        sql = f"SELECT {cols} FROM customer c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = " \
              f"c.customer_id AND o.qty > {g.rng.randint(1, 9)})"
    elif form == 3:
        sql = f"SELECT {cols} FROM customer c WHERE {narrow(g, 'customer', 'c')} AND {g.choice(('', 'NOT '))}EXISTS " \
              f"(SELECT 1 FROM event e WHERE e.customer_id = c.customer_id AND e.kind = {kind})"
    elif form == 4:
        col = g.choice(("balance", "score"))
        sql = f"SELECT {cols} FROM customer c WHERE c.{col} > (SELECT AVG({col}) FROM customer WHERE " \
              f"{g.filter_on('customer')})"
    elif form == 5:
        sql = f"SELECT c.customer_id, (SELECT COUNT(*) FROM orders o WHERE o.customer_id = c.customer_id) AS n " \
              f"FROM customer c WHERE {g.filter_on('customer', 'c')}"
    elif form == 6:
        key = g.choice(("region", "vip", "score % 3"))
        sql = f"SELECT d.k, d.n FROM (SELECT {key} AS k, COUNT(*) AS n FROM customer GROUP BY {key}) d " \
              f"WHERE d.n > {g.rng.randint(0, 30)}"
        ordered = g.chance(0.5)
        return Query("subquery", sql + (" ORDER BY d.k" if ordered else ""), ordered, ci_text=key == "region")
    elif form == 7:
        sql = f"SELECT o.order_id, o.item_id FROM orders o WHERE o.item_id IN (SELECT i.item_id FROM item i WHERE " \
              f"i.category = {g.lit(g.pick('item', 'category'))})"
        pk = "o.order_id"
    elif form == 8:
        sql = f"SELECT {cols} FROM customer c WHERE c.region IN (SELECT w.region FROM warehouse w WHERE " \
              f"w.capacity > {g.rng.randrange(100, 5000)})"
    elif form == 9:
        sql = f"SELECT o.order_id, o.amount FROM orders o WHERE o.amount > (SELECT MAX(i.price) FROM item i " \
              f"WHERE i.category = {g.lit(g.pick('item', 'category'))})"
        pk = "o.order_id"
    elif form == 10:
        sql = f"SELECT d.customer_id, d.balance FROM (SELECT customer_id, balance FROM customer ORDER BY " \
              f"balance DESC, customer_id LIMIT {g.rng.randint(1, 20)}) d WHERE d.balance IS NOT NULL"
        pk = "d.customer_id"
    elif form == 11:
        sql = f"SELECT e.event_id, e.tag FROM event e WHERE e.customer_id IN (SELECT c.customer_id FROM customer c " \
              f"WHERE {g.filter_on('customer', 'c')})"
        pk = "e.event_id"
    elif form == 12:
        sql = f"SELECT o.order_id, o.status FROM orders o WHERE o.customer_id IN (SELECT c.customer_id FROM " \
              f"customer c WHERE c.email IN {g.in_list(g.picks('customer', 'email', 3))})"
        pk = "o.order_id"
    elif form == 13:  # NOT IN over a list holding NULLs: no row qualifies unless the list is empty
        sql = f"SELECT {cols} FROM customer c WHERE c.customer_id NOT IN (SELECT e.customer_id FROM event e WHERE " \
              f"e.tag = {g.lit(g.pick('event', 'tag'))})"
    elif form == 14:  # uncorrelated EXISTS
        sql = f"SELECT {cols} FROM customer c WHERE c.vip = 1 AND {g.choice(('', 'NOT '))}EXISTS (SELECT 1 FROM " \
              f"event e WHERE e.kind = {kind} AND e.weight > {g.rng.randint(150, 220)})"
    elif form == 15:  # an uncorrelated scalar subquery in the select list
        sql = f"SELECT c.customer_id, (SELECT MAX(i.price) FROM item i WHERE i.category = " \
              f"{g.lit(g.pick('item', 'category'))}) AS top FROM customer c WHERE {g.filter_on('customer', 'c')}"
    elif form == 16:  # a derived table the shards can run (merged into the route)
        sql = f"SELECT d.customer_id, d.s FROM (SELECT customer_id, score + vip AS s FROM customer WHERE " \
              f"{g.filter_on('customer')}) d WHERE d.s > {g.rng.randint(0, 90)}"
        pk = "d.customer_id"
    elif form == 18:  # scalar subqueries over sharded tables in one expression: each runs on every shard
        a = g.choice(("SUM(balance)", "COUNT(*)", "MAX(score)", "SUM(vip)"))
        b = g.choice(("SUM(amount)", "COUNT(*)", "SUM(qty)", "MIN(qty)"))
        op = g.choice(("-", "+"))
        where = f" WHERE {g.filter_on('orders')}" if g.chance(0.5) else ""
        alias = g.choice(("", " AS d"))
        return Query("subquery", f"SELECT (SELECT {a} FROM customer) {op} (SELECT {b} FROM orders{where}){alias}")
    elif form == 19:  # several scalar subqueries, one of them in an expression with a literal
        e = g.choice(("COUNT(*)", "SUM(weight)", "MAX(cost)"))
        return Query("subquery", f"SELECT (SELECT {e} FROM event WHERE {g.filter_on('event')}) AS a, "
                                 f"(SELECT COUNT(*) FROM customer) * 2 + (SELECT COUNT(*) FROM orders) AS b")
    elif form == 20:  # a derived UNION ordered at the router
        sql = f"SELECT u.r FROM (SELECT region AS r FROM customer WHERE {g.filter_on('customer')} UNION " \
              f"SELECT region FROM warehouse) u WHERE u.r IS NOT NULL"
        ordered = g.chance(0.6)
        return Query("subquery", sql + (f" ORDER BY u.r{g.direction()}" if ordered else ""), ordered,
                     ci_text=g.engine == "mysql")
    elif form == 21:  # aggregates over a derived table with a LIMIT
        col = g.choice(("balance", "score", "joined"))
        return Query("subquery", f"SELECT COUNT(*), MAX(d.{col}), MIN(d.{col}) FROM (SELECT customer_id, {col} FROM "
                                 f"customer ORDER BY {col} DESC, customer_id LIMIT {g.rng.randint(1, 30)}) d")
    elif form == 22:  # a pulled-out scalar in HAVING
        key = g.choice(("region", "vip", "score % 3"))
        sql = f"SELECT {key}, COUNT(*) FROM customer GROUP BY {key} HAVING COUNT(*) > (SELECT COUNT(*) FROM " \
              f"warehouse WHERE {g.filter_on('warehouse')})"
        ordered = g.chance(0.5)
        return Query("subquery", sql + (f" ORDER BY {key}" if ordered else ""), ordered, ci_text=key == "region")
    elif form == 23:  # a scalar subquery next to a vindex IN
        sql = f"SELECT o.order_id, o.amount FROM orders o WHERE o.customer_id IN " \
              f"{g.in_list([g.cid() for _ in range(4)])} AND o.qty >= (SELECT MIN(qty) FROM orders WHERE " \
              f"{g.filter_on('orders')})"
        pk = "o.order_id"
    elif form == 24:  # unaliased expressions grouped and ordered by
        return Query("subquery", "SELECT score % 3, COUNT(*), SUM(balance) FROM customer GROUP BY score % 3 "
                                 f"ORDER BY score % 3{g.direction()}", True)
    else:  # IN over a lookup-vindex column
        sql = f"SELECT o.order_id, o.qty FROM orders o WHERE o.order_id IN (SELECT e.weight FROM event e WHERE " \
              f"e.tag = {g.lit(g.pick('event', 'tag'))} AND e.weight > 0)"
        pk = "o.order_id"
    if g.chance(0.4):
        return Query("subquery", f"{sql} ORDER BY {pk}{g.direction()}{g.limit(0.5)}", True)
    return Query("subquery", sql)


def gen_union(g: Gen) -> Query:
    """UNION / UNION ALL within a keyspace and across keyspaces (merged into one route or concatenated)."""
    op = g.choice(("UNION", "UNION ALL"))
    form = g.rng.randrange(4)
    if form == 0:
        a = f"SELECT customer_id AS id FROM customer WHERE {g.filter_on('customer')}"
        b = f"SELECT customer_id FROM orders WHERE {g.filter_on('orders')}"
    elif form == 1:
        a = f"SELECT region AS r FROM customer WHERE {g.filter_on('customer')}"
        b = "SELECT region FROM warehouse"
        if g.engine == "mysql":
            return Query("union", f"{a} {op} {b}", False, ci_text=True)
    elif form == 2:
        a = f"SELECT event_id AS id, kind AS k FROM event WHERE tag = {g.lit(g.pick('event', 'tag'))}"
        b = f"SELECT order_id, status FROM orders WHERE customer_id = {g.cid()}"
        if g.engine == "mysql":
            return Query("union", f"{a} {op} {b}", False, ci_text=op == "UNION")
    else:
        a = f"SELECT item_id AS id FROM item WHERE {g.filter_on('item')}"
        b = f"SELECT wh_id FROM warehouse WHERE {g.filter_on('warehouse')}"
    if g.chance(0.5):
        keys = "1" + g.direction() + (", 2" + g.direction() if form == 2 else "")
        return Query("union", f"{a} {op} {b} ORDER BY {keys}{g.limit(0.4)}", True,
                     ci_text=form != 0 and g.engine == "mysql")
    return Query("union", f"{a} {op} {b}", False, ci_text=form == 1)


_GENERATORS: dict[str, Callable[[Gen], Query]] = {
    "point": gen_point, "in": gen_in, "range": gen_range, "scatter": gen_scatter, "order_limit": gen_order_limit,
    "aggregate": gen_aggregate, "distinct": gen_distinct, "join_vindex": gen_join_vindex,
    "join_off_vindex": gen_join_off_vindex, "subquery": gen_subquery, "union": gen_union,
}


def _seed(family: str, engine: str, seed: int) -> int:
    return seed * 1000 + sum(ord(ch) * (i + 1) for i, ch in enumerate(f"{family}/{engine}"))


def read_cases(data: Dataset, engine: str, seed: int) -> list[Case]:
    """Every read family at its minimum count (distinct statements)."""
    out: list[Case] = []
    for family, gen in _GENERATORS.items():
        g = Gen(data, engine, random.Random(_seed(family, engine, seed)))
        seen: set[tuple[str, tuple[Any, ...] | None]] = set()
        attempts = 0
        while len(seen) < FAMILIES[family]:
            attempts += 1
            assert attempts < FAMILIES[family] * 20, f"{family}: cannot generate enough distinct queries"
            q = gen(g)
            key = (q.sql, q.params)
            if key in seen:
                continue
            seen.add(key)
            out.append(Case(family, [q]))
    return out


def only(cases: list[Case], pattern: str) -> list[Case]:
    """The cases with a statement whose SQL matches ``pattern`` (a regular expression): to debug one failure."""
    import re

    rx = re.compile(pattern)
    return [c for c in cases if any(rx.search(q.sql) for q in c.steps)]


def build(data: Dataset, engine: str, seed: int) -> tuple[list[Case], list[Case]]:
    """(read cases, write cases): reads run first (concurrently, on the loaded data), then writes in order."""
    from tests.integration.oracle.dml import write_cases

    return read_cases(data, engine, seed), write_cases(data, engine, random.Random(_seed("dml", engine, seed)))
