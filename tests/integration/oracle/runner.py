"""Running the corpus on both sides: the router (a ``Gateway`` over 4 shards) and the reference database.

Read cases run concurrently (a few workers, one reference connection each); write cases run in order afterwards.
Every statement is compared (rows and column names, or affected rows for writes); a router error is a failure
like a wrong answer.
The plan of each statement is read back from the planner's cache to count the opcodes and primitives used.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from router.backend.adapter import AdapterBase
from router.backend.connect import open_connection
from router.backend.connection import BackendTarget
from router.backend.result import ExecResult, ResultSet
from tests.integration.oracle.compare import diff, show_rows
from tests.integration.oracle.corpus import Case, Query
from tests.integration.oracle.data import literal

WORKERS = 6



@dataclass
class Failure:
    engine: str
    family: str
    kind: str  # "router error" | "reference error" | "mismatch" | "rows affected" | "insert id" | "lookup table"
    sql: str
    detail: str
    params: tuple[Any, ...] | None = None
    ref_sql: str | None = None
    got: list[Any] | None = None
    want: list[Any] | None = None

    def render(self) -> str:
        lines = [f"[{self.engine}/{self.family}] {self.kind}: {self.detail}", f"    router SQL: {self.sql}"]
        if self.params is not None:
            lines.append(f"    params: {list(self.params)!r}")
        if self.ref_sql is not None and self.ref_sql != self.sql:
            lines.append(f"    reference SQL: {self.ref_sql}")
        if self.got is not None:
            lines.append(f"    router rows ({len(self.got)}):\n{show_rows(self.got)}")
        if self.want is not None:
            lines.append(f"    reference rows ({len(self.want)}):\n{show_rows(self.want)}")
        return "\n".join(lines)


@dataclass
class Coverage:
    statements: Counter[str] = field(default_factory=Counter)  # family -> statements run
    writes: Counter[str] = field(default_factory=Counter)  # family -> writes among them
    failed: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)  # family -> wall time of its statements (overlapping)
    slowest: list[tuple[float, str]] = field(default_factory=list)  # the slowest cases: (seconds, first SQL)
    opcodes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # opcode -> family -> n
    primitives: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))


@dataclass
class Outcome:
    engine: str
    failures: list[Failure]
    coverage: Coverage
    seconds: float


def plan_features(root: Any) -> tuple[set[str], set[str]]:
    """(opcodes, primitive names) of a plan tree. Opcodes: a route's variant (``EqualUnique``, ``Scatter``…), a
    lookup-driven route as ``VindexLookup:<opcode>``, an insert as ``Insert:<variant>``."""
    opcodes: set[str] = set()
    prims: set[str] = set()
    stack = [root]
    while stack:
        p = stack.pop()
        name = type(p).__name__
        variant = getattr(p, "variant", None)
        prims.add(f"{name}:{variant}" if isinstance(variant, str) and variant else name)
        routing = getattr(p, "routing", None)
        if name == "VindexLookup" and routing is not None:
            opcodes.add(f"VindexLookup:{routing.opcode.value}")
        elif routing is not None and hasattr(routing, "opcode"):
            opcodes.add(routing.opcode.value)
        elif name == "Insert":
            opcodes.add("Insert:Reference" if getattr(p, "all_shards", False) else f"Insert:{variant}")
        elif name == "SequenceNext":
            opcodes.add("Next")
        stack.extend(p.inputs())
    return opcodes, prims


class Runner:
    def __init__(self, env: Any, workers: int = WORKERS) -> None:
        self.env = env
        self.engine: str = env.engine
        self.workers = workers
        self.failures: list[Failure] = []
        self.cov = Coverage()
        self._refs: list[AdapterBase] = []

    # --- entry ------------------------------------------------------------------------------------------------
    async def run(self, reads: Sequence[Case], writes: Sequence[Case]) -> Outcome:
        started = time.perf_counter()
        self._refs = [self.env.ref] + [await open_connection(self.env.ref_dsn, BackendTarget("reference", str(i)))
                                       for i in range(1, self.workers)]
        try:
            queue: asyncio.Queue[Case] = asyncio.Queue()
            for case in reads:
                queue.put_nowait(case)
            await asyncio.gather(*(self._worker(queue, ref) for ref in self._refs))
            for case in writes:
                await self._case(case, self.env.ref)
            from tests.integration.oracle.lookups import check_lookup_tables

            for failure in await check_lookup_tables(self.env):
                self._fail(failure)
        finally:
            for ref in self._refs[1:]:
                await ref.close()
        return Outcome(self.engine, self.failures, self.cov, time.perf_counter() - started)

    async def _worker(self, queue: asyncio.Queue[Case], ref: AdapterBase) -> None:
        while not queue.empty():
            case = queue.get_nowait()
            await self._case(case, ref)

    async def _case(self, case: Case, ref: AdapterBase) -> None:
        started = time.perf_counter()
        try:
            await self._steps(case, ref)
        finally:
            took = time.perf_counter() - started
            self.cov.seconds[case.family] += took
            self.cov.slowest.append((took, case.steps[0].sql))
            self.cov.slowest = sorted(self.cov.slowest, reverse=True)[:5]

    async def _steps(self, case: Case, ref: AdapterBase) -> None:
        for q in case.steps:
            if q.write:
                ok = await self._write(q, ref)
                if not ok:
                    return  # the reads would only repeat the difference
            else:
                await self._read(q, ref)

    # --- one statement ------------------------------------------------------------------------------------------
    def _fail(self, f: Failure) -> None:
        self.failures.append(f)
        self.cov.failed[f.family] += 1

    def _cover(self, q: Query, root: Any) -> None:
        opcodes, prims = plan_features(root)
        for op in opcodes:
            self.cov.opcodes[op][q.family] += 1
        for p in prims:
            self.cov.primitives[p][q.family] += 1

    async def _router(self, session: Any, q: Query, sql: str) -> Any:
        result = await session.execute(sql, list(q.params) if q.params is not None else None)
        try:
            bound = self.env.gw.planner.plan(sql, session.view(), self.env.gw.snapshot,
                                             list(q.params) if q.params is not None else None)
            self._cover(q, bound.plan.root)
        except Exception:  # coverage only: the statement itself already ran
            pass
        return result

    async def _read(self, q: Query, ref: AdapterBase) -> None:
        self.cov.statements[q.family] += 1
        base = Failure(self.engine, q.family, "", q.sql, "", q.params, q.reference_sql)
        try:
            async with self.env.gw.session(self.env.dialect) as s:
                got = await self._router(s, q, q.sql)
        except Exception as exc:
            self._fail(_with(base, "router error", f"{type(exc).__name__}: {exc}"))
            return
        try:
            want = await ref.execute(q.reference_sql)
        except Exception as exc:
            self._fail(_with(base, "reference error", f"{type(exc).__name__}: {exc}"))
            return
        assert isinstance(want, ResultSet), q.reference_sql
        got_rows = list(got)
        text_key = None
        if q.ci_text and self.engine == "mysql":
            text_key = await self._weights([*got_rows, *want.rows], ref)
        problem = diff(got_rows, want.rows, ordered=q.ordered, text_key=text_key)
        if problem is None and len(got.columns) != len(want.columns):
            problem = f"{len(got.columns)} columns {got.column_names} vs reference {want.column_names}"
        if problem is None and got.column_names != want.column_names:  # what a client sees: names too
            problem = f"column names {got.column_names} vs reference {want.column_names}"
        if problem is not None:
            self._fail(_with(base, "mismatch", problem, got_rows, want.rows))

    async def _write(self, q: Query, ref: AdapterBase) -> bool:
        self.cov.statements[q.family] += 1
        self.cov.writes[q.family] += 1
        base = Failure(self.engine, q.family, "", q.sql, "", q.params, q.reference_sql)
        async with self.env.gw.session(self.env.dialect) as s:
            steps = [*q.session, q.sql]
            for i, sql in enumerate(steps):
                last = i == len(steps) - 1
                try:
                    got = await self._router(s, q, sql) if last else await s.execute(sql)
                except Exception as exc:
                    self._fail(_with(base, "router error", f"{type(exc).__name__}: {exc}", sql=sql))
                    if q.session:
                        await ref.execute("ROLLBACK")
                    return False
                ref_sql = q.reference_sql if last else sql
                if "{id0}" in ref_sql:
                    first = got.last_insert_id
                    if first is None:
                        self._fail(_with(base, "insert id", "the router reported no insert id for sequence ids"))
                        return False
                    ref_sql = ref_sql.format(**{f"id{k}": first + k for k in range(ref_sql.count("{id"))})
                try:
                    want = await ref.execute(ref_sql)
                except Exception as exc:
                    self._fail(_with(base, "reference error", f"{type(exc).__name__}: {exc}", sql=sql))
                    return False
                want_n = want.rows_affected if isinstance(want, ExecResult) else len(want.rows)
                if got.rows_affected != want_n:
                    self._fail(_with(base, "rows affected", f"router {got.rows_affected} vs reference {want_n}",
                                     sql=sql))
                    return False
        return True

    async def _weights(self, rows: Sequence[tuple[Any, ...]], ref: AdapterBase) -> Any:
        weights: dict[str, bytes] = self.env.weights
        missing = sorted({v for r in rows for v in r if isinstance(v, str) and v not in weights})
        if missing:
            sql = " UNION ALL ".join(f"SELECT {literal(t, 'mysql')} COLLATE utf8mb4_general_ci AS t, WEIGHT_STRING("
                                     f"{literal(t, 'mysql')} COLLATE utf8mb4_general_ci) AS w" for t in missing)
            result = await ref.execute(sql)
            assert isinstance(result, ResultSet)
            for t, (_, w) in zip(missing, result.rows, strict=True):
                weights[t] = bytes(w)
        return weights.__getitem__


def _with(base: Failure, kind: str, detail: str, got: list[Any] | None = None, want: list[Any] | None = None, *,
          sql: str | None = None) -> Failure:
    return Failure(base.engine, base.family, kind, sql or base.sql, detail, base.params,
                   base.ref_sql if sql is None or sql == base.sql else sql, got, want)


# --- the report ---------------------------------------------------------------------------------------------------
def report(outcome: Outcome, minimums: dict[str, int]) -> str:
    cov = outcome.coverage
    families = list(minimums)
    lines = [f"=== oracle coverage: {outcome.engine} ({sum(cov.statements.values())} statements, "
             f"{len(outcome.failures)} failures, {outcome.seconds:.1f} s) ==="]
    lines.append(f"{'family':<16}{'statements':>11}{'writes':>8}{'minimum':>9}{'failed':>8}{'seconds':>9}")
    for fam in families:
        lines.append(f"{fam:<16}{cov.statements[fam]:>11}{cov.writes[fam]:>8}{minimums[fam]:>9}{cov.failed[fam]:>8}"
                     f"{cov.seconds[fam]:>9.1f}")
    lines.append("slowest cases: " + "; ".join(f"{t:.2f}s {sql[:90]}" for t, sql in cov.slowest))
    short = {f: _abbrev(f) for f in families}
    header = "".join(f"{short[f]:>6}" for f in families)
    for title, table in (("opcode", cov.opcodes), ("primitive", cov.primitives)):
        lines.append(f"{title:<36}{'total':>7}{header}")
        for name in sorted(table, key=lambda n: (-sum(table[n].values()), n)):
            row = table[name]
            lines.append(f"{name:<36}{sum(row.values()):>7}" + "".join(f"{row[f]:>6}" for f in families))
    return "\n".join(lines)


def _abbrev(family: str) -> str:
    return {"order_limit": "ordlim", "aggregate": "aggr", "distinct": "dist", "join_vindex": "joinV",
            "join_off_vindex": "joinX", "subquery": "subq", "scatter": "scat"}.get(family, family)[:6]
