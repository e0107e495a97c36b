"""Engine bugs the correctness oracle (``tests/integration/test_oracle.py``) found, one test each."""
from __future__ import annotations

from decimal import Decimal

import pytest

from router.backend.result import Column, ExecResult, TypeCode
from router.engine.context import Limits
from router.engine.route import param_form
from router.planner import SessionView
from router.planner.plan import (
    Aggregate,
    AggregateOp,
    AggregateParam,
    GroupByParam,
    Join,
    KeyspaceRef,
    Opcode,
    OrderByParam,
    Route,
    RoutingParams,
    Sort,
    UncorrelatedSubquery,
)
from router.planner.sqltext import SqlTemplate
from router.planner.values import Arg, Const, JoinVar
from sharding.errors import BackendError
from sharding.snapshot import ClusterSnapshot
from sharding.vschema import parse_vschema
from tests.unit.engine.conftest import bound, fetch
from tests.unit.engine.fake_context import FakeContext, cols

CUSTOMER = KeyspaceRef("customer", True)


def scatter(sql: str, **kw) -> Route:  # type: ignore[no-untyped-def]
    return Route(RoutingParams(Opcode.Scatter, CUSTOMER), SqlTemplate.text(sql), **kw)


def column(name: str, type_: TypeCode, engine: str) -> Column:
    return Column(name=name, type=type_, engine=engine, backend_type=0, backend_type_name=type_.value)


# --- reference tables: one copy's count ----------------------------------------------------------------------
REF_VSCHEMA = {"keyspaces": {"customer": {
    "sharded": True, "vindexes": {"hash": {"type": "hash"}},
    "tables": {"customer": {"column_vindexes": [{"column": "customer_id", "name": "hash"}]},
               "item": {"type": "reference"}}}}}


@pytest.fixture(scope="module")
def ref_snapshot() -> ClusterSnapshot:
    return ClusterSnapshot.build(1, parse_vschema(REF_VSCHEMA), {"customer": ["-80", "80-"]})


@pytest.mark.parametrize("sql, affected", [
    ("insert into item (item_id, title) values (1, 'a'), (2, 'b')", 2),
    ("update item set title = 'x' where item_id < 10", 2),
    ("delete from item where item_id = 1", 2),
])
async def test_a_reference_table_write_reports_the_rows_of_one_copy(planner, ref_snapshot, sql, affected) -> None:
    """Every shard holds a copy; the client wrote its rows once (was: the sum over the shards, 2x here)."""
    ctx = FakeContext()
    ctx.on(result=ExecResult(affected))
    b = planner.plan(sql, SessionView("mysql", "customer"), ref_snapshot)
    ex, _ = await fetch(b, ctx, ref_snapshot)
    assert len(ctx.lines("execute customer/")) == 2  # both copies written
    assert ex.rows_affected == affected


# --- pulled-out subqueries bind booleans ----------------------------------------------------------------------
@pytest.mark.parametrize("variant, rows, expected", [("PulloutIn", [(1,)], "TRUE"), ("PulloutIn", [], "FALSE"),
                                                     ("PulloutExists", [(1,)], "TRUE"),
                                                     ("PulloutValue", [], "FALSE")])
async def test_has_values_is_written_as_a_boolean(snapshot, variant, rows, expected) -> None:
    """PostgreSQL's AND/NOT take no integer: ``(1 AND x IN (…))`` failed with 42804 on every PulloutIn."""
    ctx = FakeContext(dialect="postgres")
    ctx.on("commerce/0", "FROM product", rows=rows, columns=["id"])
    outer = Route(RoutingParams(Opcode.Scatter, CUSTOMER), SqlTemplate(("SELECT 1 FROM customer WHERE ", ""),
                                                                       (JoinVar("__sq_has_values"),)))
    sub = Route(RoutingParams(Opcode.Unsharded, KeyspaceRef("commerce", False)),
                SqlTemplate.text("SELECT id FROM product"))
    plan = UncorrelatedSubquery(variant, "__sq1", "__sq_has_values", sub, outer)
    await fetch(bound(plan), ctx, snapshot, dialect="postgres")
    assert ctx.lines("stream customer/-80") == [f"stream customer/-80: SELECT 1 FROM customer WHERE {expected}"]


# --- prepared PostgreSQL statements ----------------------------------------------------------------------------
def test_equal_values_share_one_placeholder(snapshot) -> None:
    """``a % 4 … GROUP BY a % 4`` must stay one expression for PostgreSQL (``$1``/``$2`` gave 42803)."""
    from router.engine.runtime import Runtime

    rt = Runtime.__new__(Runtime)
    rt.binds, rt.env = [4, 4, 9, Decimal("4"), "4"], {}  # type: ignore[misc]
    query = SqlTemplate(("SELECT a % ", " AS g FROM t WHERE b = ", " AND c = ", " AND d = ", " GROUP BY a % ", ""),
                        (Arg(0), Arg(2), Arg(3), Arg(4), Arg(1)))
    sql, values = param_form(query, rt)  # type: ignore[misc]
    assert sql == ("SELECT a % CAST($1 AS integer) AS g FROM t WHERE b = CAST($2 AS integer) AND "
                   "c = CAST($3 AS numeric) AND d = $4 GROUP BY a % CAST($1 AS integer)")
    assert values == [4, 9, Decimal("4"), "4"]  # equal but differently typed values stay apart


@pytest.mark.parametrize("value, cast", [
    (Decimal("157.832"), "numeric"), (300, "integer"), (2**40, "bigint"), (10**30, "numeric"), (True, "boolean"),
    ("abc", None), (None, None), (__import__("datetime").date(2024, 2, 29), "date"), (1.5, "double precision"),
])
def test_placeholders_are_typed_as_the_literals_they_replace(value, cast) -> None:
    """``$1 * smallint_col`` made 157.832 a smallint (asyncpg sent 157): a placeholder takes the type of its
    context, a literal has its own. The cast gives the placeholder the literal's type."""
    from router.engine.route import param_cast

    assert param_cast(value) == cast


async def test_a_prepared_form_the_server_cannot_analyse_falls_back_to_literals(snapshot) -> None:
    """``concat(kind, $1)`` has no type for $1 (42P18) where the literal ``':'`` is text: run the literal text."""
    ctx = FakeContext({"customer/-80": [("a:b",)]}, ["x"], dialect="postgres")
    ctx.on("customer/-80", "$1", error=BackendError("could not determine data type of parameter $1",
                                                    pg_sqlstate="42P18"))
    route = Route(RoutingParams(Opcode.EqualUnique, CUSTOMER, "hash", (Const(1),)),
                  SqlTemplate(("SELECT CONCAT(kind, ", ", tag) FROM customer WHERE customer_id = 1",), (Const(":"),)))
    _, rows = await fetch(bound(route), ctx, snapshot, dialect="postgres")
    assert rows == [("a:b",)]
    assert ctx.log[-1] == "execute customer/-80: SELECT CONCAT(kind, ':', tag) FROM customer WHERE customer_id = 1"


async def test_other_errors_of_a_prepared_form_are_the_statements_own(snapshot) -> None:
    ctx = FakeContext(dialect="postgres")
    ctx.on("customer/-80", "$1", error=BackendError("division by zero", pg_sqlstate="22012"))
    route = Route(RoutingParams(Opcode.EqualUnique, CUSTOMER, "hash", (Const(1),)),
                  SqlTemplate(("SELECT 1 / ", " FROM customer WHERE customer_id = 1"), (Const(0),)))
    with pytest.raises(BackendError, match="division"):
        await fetch(bound(route), ctx, snapshot, dialect="postgres")
    assert len(ctx.log) == 1  # not retried


async def test_no_prepared_form_inside_a_transaction(snapshot) -> None:
    """A prepared form the server rejects would abort the client's transaction: send the literal text there."""
    ctx = FakeContext({"customer/-80": [(1,)]}, ["x"], dialect="postgres")
    ctx.tx = object()  # type: ignore[attr-defined]
    route = Route(RoutingParams(Opcode.EqualUnique, CUSTOMER, "hash", (Const(1),)),
                  SqlTemplate(("SELECT ", " FROM customer WHERE customer_id = 1"), (Const(7),)))
    await fetch(bound(route), ctx, snapshot, dialect="postgres")
    assert ctx.log == ["execute customer/-80: SELECT 7 FROM customer WHERE customer_id = 1"]


# --- aggregates ----------------------------------------------------------------------------------------------
async def test_max_carries_its_own_weight_string_to_the_sort_above(snapshot) -> None:
    """ORDER BY MAX(name): the memory sort compares the weight column of the kept value, not of the group's first
    row (the oracle saw MariaDB rows out of order)."""
    ctx = FakeContext({"customer/-80": [(1, "b", b"B"), (2, "a", b"A")],
                       "customer/80-": [(1, "a", b"A"), (2, "c", b"C")]}, ["g", "m", "w"])
    agg = Aggregate("Ordered", (AggregateParam(AggregateOp.MAX, 1, "m", weight_col=2),), (GroupByParam(0),),
                    scatter("SELECT g, MAX(name), WEIGHT_STRING(MAX(name)) FROM t GROUP BY g ORDER BY g",
                            order_by=(OrderByParam(0),)))
    plan = Sort((OrderByParam(1, desc=True, weight_col=2), OrderByParam(0)), agg, truncate_columns=2)
    _, rows = await fetch(bound(plan), ctx, snapshot)
    assert rows == [(2, "c"), (1, "b")]


@pytest.mark.parametrize("engine, type_, expected", [
    ("mysql", TypeCode.INT, Decimal(10)), ("mysql", TypeCode.BIGINT, Decimal(10)),
    ("postgres", TypeCode.INT, 10), ("postgres", TypeCode.BIGINT, Decimal(10)),
])
async def test_sum_distinct_is_typed_as_the_backend_types_sum(snapshot, engine, type_, expected) -> None:
    """SUM(DISTINCT int) is DECIMAL on MySQL and numeric for a PostgreSQL bigint (was: a Python int)."""
    ctx = FakeContext(dialect=engine)
    ctx.on(rows=[(3,), (7,)], columns=(column("x", type_, engine),))
    plan = Aggregate("Scalar", (AggregateParam(AggregateOp.SUM_DISTINCT, 0, "s"),), (),
                     scatter("SELECT DISTINCT x FROM t"))
    _, rows = await fetch(bound(plan), ctx, snapshot, dialect=engine)
    assert rows == [(expected,)] and type(rows[0][0]) is type(expected)


async def test_sum_over_raw_rows_is_typed_but_partial_sums_are_kept(snapshot) -> None:
    """Over a join (raw rows) a MySQL SUM of an integer column is DECIMAL; over a route the shards' partial sums
    already have their type (PostgreSQL SUM(integer) partials are bigint and stay integers)."""
    ctx = FakeContext(dialect="mysql")
    ctx.on("customer/-80", "FROM a", rows=[(1, 5)], columns=(column("k", TypeCode.INT, "mysql"),
                                                            column("w", TypeCode.INT, "mysql")))
    ctx.on("customer/80-", "FROM a", rows=[])
    ctx.on(None, "FROM b", rows=[(1,)], columns=(column("k", TypeCode.INT, "mysql"),))
    join = Join("Join", scatter("SELECT k, w FROM a"),
                Route(RoutingParams(Opcode.Scatter, CUSTOMER), SqlTemplate(("SELECT k FROM b WHERE k = ", ""),
                                                                         (JoinVar("a_k"),))),
                (-2,), vars=(("a_k", 0),))
    raw = Aggregate("Scalar", (AggregateParam(AggregateOp.SUM, 0, "s"),), (), join)
    _, rows = await fetch(bound(raw), ctx, snapshot)
    assert rows == [(Decimal(10),)] and isinstance(rows[0][0], Decimal)  # 5 from each right shard's match

    pg = FakeContext(dialect="postgres")
    pg.on(rows=[(4,)], columns=(column("sum", TypeCode.BIGINT, "postgres"),))
    partial = Aggregate("Scalar", (AggregateParam(AggregateOp.SUM, 0, "s"),), (), scatter("SELECT SUM(n) FROM t"))
    _, rows = await fetch(bound(partial), pg, snapshot, dialect="postgres")
    assert rows == [(8,)] and type(rows[0][0]) is int


def test_the_fake_context_helpers_still_build_columns() -> None:
    assert [c.name for c in cols("a", "b")] == ["a", "b"]
    assert Limits().batch_rows > 0


@pytest.mark.parametrize("special, expected", [(True, [(0,)]), (False, [])])
async def test_a_route_to_no_shard_still_answers_a_scalar_aggregate(snapshot, special, expected) -> None:
    """``SELECT COUNT(*) … WHERE 1 = 0`` (opcode None) runs on any one shard, whose WHERE finds nothing."""
    ctx = FakeContext({"customer/-80": [(0,)], "customer/80-": [(0,)]}, ["count(*)"])
    route = Route(RoutingParams(Opcode.None_, CUSTOMER), SqlTemplate.text("SELECT COUNT(*) FROM customer WHERE 1 = 0"),
                  field_query=SqlTemplate.text("SELECT COUNT(*) FROM customer WHERE 1 != 1"),
                  no_routes_special_handling=special)
    _, rows = await fetch(bound(route), ctx, snapshot)
    assert rows == expected
    assert len(ctx.lines("execute customer/-80: SELECT COUNT(*) FROM customer WHERE 1 = 0")) == int(special)


async def test_a_value_the_driver_cannot_encode_falls_back_to_literals(snapshot) -> None:
    """``WHERE $1 = $2`` makes PostgreSQL infer text; asyncpg then refuses the integer 1 (a client-side DataError,
    22000, mapped to BackendError): nothing ran, so the literal text runs."""
    ctx = FakeContext({"customer/-80": [(0,)]}, ["count"], dialect="postgres")
    ctx.on("customer/-80", "$1", error=BackendError("invalid input for query argument $1: 1 (expected str, got int)",
                                                    pg_sqlstate="22000"))
    route = Route(RoutingParams(Opcode.EqualUnique, CUSTOMER, "hash", (Const(1),)),
                  SqlTemplate(("SELECT COUNT(*) FROM customer WHERE ", " = ", ""), (Const(1), Const(0))))
    _, rows = await fetch(bound(route), ctx, snapshot, dialect="postgres")
    assert rows == [(0,)]
    assert ctx.log[-1] == "execute customer/-80: SELECT COUNT(*) FROM customer WHERE 1 = 0"


@pytest.mark.parametrize("engine, expected", [("mysql", [Decimal("7127.030"), Decimal("1.500"), Decimal("5.000")]),
                                              ("postgres", [Decimal("7127.03"), Decimal("1.5"), Decimal("5")])])
async def test_coalesce_of_decimals_at_the_router_is_typed_as_the_database_types_it(snapshot, engine, expected) -> None:
    """COALESCE(DECIMAL(9,3), DECIMAL(12,2)) is DECIMAL(…,3) in MySQL: 7127.030 whichever argument gave the
    value (was 7127.03); an integer argument's value is a decimal too (PostgreSQL: numeric 5, not int 5)."""
    from router.planner.evalexpr import Col, Func
    from router.planner.plan import Projection

    ctx = FakeContext(dialect=engine)
    ctx.on(rows=[(None, Decimal("7127.03"), 1), (Decimal("1.5"), Decimal("2.00"), 2), (None, None, 5)],
           columns=(Column("cost", TypeCode.DECIMAL, engine, 0, "decimal", scale=3),
                    Column("balance", TypeCode.DECIMAL, engine, 0, "decimal", scale=2),
                    column("n", TypeCode.INT, engine)))
    route = Route(RoutingParams(Opcode.EqualUnique, CUSTOMER, "hash", (Const(1),)), SqlTemplate.text("SELECT …"))
    plan = Projection((Func("coalesce", (Col(0), Col(1), Col(2)), engine),), ("x",), route)
    _, rows = await fetch(bound(plan), ctx, snapshot, dialect=engine)
    assert [r[0] for r in rows] == expected
    assert [str(r[0]) for r in rows] == [str(e) for e in expected]


# --- sequences: a block that runs short grows in place -------------------------------------------------------------
class _SeqConn:
    def __init__(self, table: dict[str, int]) -> None:
        self.table = table

    async def execute(self, sql: str, params: object = None, timeout: float | None = None) -> object:
        from router.backend.result import ResultSet

        if sql.startswith("SELECT cache"):
            return ResultSet(columns=(column("cache", TypeCode.BIGINT, "postgres"),), rows=[(self.table["cache"],)])
        n = int(sql.split("next_id + ")[1].split()[0])
        self.table["next_id"] += n
        return ResultSet(columns=(column("next_id", TypeCode.BIGINT, "postgres"),), rows=[(self.table["next_id"],)])


class _SeqPools:
    def __init__(self, table: dict[str, int]) -> None:
        self.table = table

    def acquire(self, keyspace: str, shard: str, role: str):  # type: ignore[no-untyped-def]
        import contextlib

        @contextlib.asynccontextmanager
        async def lease():  # type: ignore[no-untyped-def]
            yield _SeqConn(self.table)

        return lease()


SEQ_VSCHEMA = {"keyspaces": {"main": {"sharded": False, "tables": {"seq": {"type": "sequence"}}}}}


async def test_ids_stay_consecutive_when_a_block_runs_short() -> None:
    """Was: 60 ids, then 60 more from a cache of 100 gave 1..60 and 101..160 (the rest of the first block was
    dropped): the oracle's rows loaded through the router got other ids than the reference's."""
    from router.engine.sequences import SequenceCache

    snap = ClusterSnapshot.build(1, parse_vschema(SEQ_VSCHEMA), {"main": ["0"]})
    table = {"next_id": 1, "cache": 100}
    cache = SequenceCache()
    pools = _SeqPools(table)
    firsts = [await cache.reserve(pools, snap, "main", "seq", 60, "postgres") for _ in range(3)]  # type: ignore[arg-type]
    assert firsts == [1, 61, 121]
    table["next_id"] += 500  # another router took a block: ours cannot grow, a new one starts there
    assert await cache.reserve(pools, snap, "main", "seq", 60, "postgres") == 701  # type: ignore[arg-type]


def test_a_sessions_view_of_the_pools_shares_the_routers_sequence_cache() -> None:
    """Was: every session's ``SessionBackend`` got a sequence cache of its own, so each reserved a block."""
    from router.engine.sequences import cache_for
    from router.engine.session_state import SessionBackend

    shared = _SeqPools({"next_id": 1, "cache": 10})
    view = SessionBackend(shared, "postgres", lambda ks: "postgres")
    assert cache_for(view) is cache_for(shared)  # type: ignore[arg-type]


# --- integral DECIMAL values stay DECIMAL in the SQL the shards get ----------------------------------------------
@pytest.mark.parametrize("value, mysql", [
    (Decimal("29399"), "29399."), (Decimal("-3509"), "-3509."), (Decimal("12.50"), "12.50"),
    (Decimal("1E+3"), "1000."), (Decimal("0"), "0."),
])
def test_a_decimal_literal_keeps_its_type(value, mysql) -> None:
    """Was: ``(SELECT SUM(a) …) - (SELECT SUM(b) …)`` on MySQL answered an integer: the pulled-out DECIMAL sums
    were written as ``29399 - 1234``; ``1E+3`` would even be a DOUBLE."""
    from router.planner.sqltext import encode_mysql, encode_postgres

    assert encode_mysql(value) == mysql
    assert encode_postgres(value) == mysql


# --- result column names ------------------------------------------------------------------------------------------
def test_mysql_names_an_expression_by_its_text_in_the_statement_run() -> None:
    from router.engine.naming import named_columns

    cols_ = (column("status", TypeCode.BIGINT, "mysql"), column("k", TypeCode.BIGINT, "mysql"))
    rules = (("text", 0), ("name", "Kay"))
    out = named_columns(cols_, rules, "SELECT count( DISTINCT status ), x AS Kay FROM orders")
    assert [c.name for c in out] == ["count( DISTINCT status )", "Kay"]
    assert named_columns(cols_, rules, "not a select")[0].name == "status"  # the text does not read: kept
    assert named_columns(cols_[:1], rules, None) == cols_[:1]  # another width: kept


async def test_an_execution_reports_the_names_the_database_would_give() -> None:
    """Was: ``SELECT COUNT(DISTINCT sku) …`` answered a column named ``sku`` (the helper query's)."""
    from router.engine.run import run
    from router.planner import Planner
    from tests.unit.planner.sqlite_cluster import Cluster

    cluster = Cluster({"orders": [(i, i % 3, "abc"[i % 3], i) for i in range(1, 9)]})
    for sql, names in [("SELECT COUNT(DISTINCT sku), MAX(qty) AS m FROM orders", ["COUNT(DISTINCT sku)", "m"]),
                       ("SELECT DISTINCT sku AS s FROM orders ORDER BY s", ["s"])]:
        bound = Planner().plan(sql, SessionView("mysql"), cluster.snapshot)
        ex = run(bound, cluster, cluster.snapshot, dialect="mysql", limits=cluster.limits)
        async with ex:
            assert ex.column_names == names
            await ex.fetchall()


async def test_coalesce_of_a_postgres_sum_and_an_integer_is_numeric(snapshot) -> None:
    """Was: ``COALESCE(SUM(amount), 0)`` over no row answered int 0 on PostgreSQL (numeric 0 there): a SUM's
    numeric column has no declared scale, and the choice gave up on it."""
    from router.planner.evalexpr import Col, Func, Lit
    from router.planner.plan import Projection

    ctx = FakeContext(dialect="postgres")
    ctx.on(rows=[(None,), (Decimal("12.50"),)],
           columns=(Column("sum", TypeCode.DECIMAL, "postgres", 0, "numeric", scale=None),))
    route = Route(RoutingParams(Opcode.EqualUnique, CUSTOMER, "hash", (Const(1),)), SqlTemplate.text("SELECT …"))
    plan = Projection((Func("coalesce", (Col(0), Lit(0)), "postgres"),), ("coalesce",), route)
    _, rows = await fetch(bound(plan), ctx, snapshot, dialect="postgres")
    assert [(type(r[0]), str(r[0])) for r in rows] == [(Decimal, "0"), (Decimal, "12.50")]
