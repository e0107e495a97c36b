"""Plans for the statements ``router.planner.special`` recognises: transaction control, SET / RESET, USE, SHOW,
VEXPLAIN, ``SELECT NEXT`` and ALTER VSCHEMA.

``plan_special(stmt, session_keyspace, snapshot)`` checks the statement against the VSchema (a USE of an unknown
keyspace, a NEXT on a table that is not a sequence) and returns a ``Plan`` whose ``kind`` and ``tables`` are what
ACLs and query rules judge. The primitives hold data only; the session and the engine carry them out. Pure: no
I/O, no clock.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from router.planner import special as sp
from router.planner.plan import KeyspaceRef, Plan, Primitive
from router.planner.values import Arg, Const, ValueExpr
from sharding.errors import InternalError, UnknownKeyspaceError, UnknownTableError, UnsupportedError
from sharding.vschema_model import VSchema

__all__ = [
    "ResetVariables",
    "SequenceNext",
    "SetVariables",
    "Show",
    "Transaction",
    "TransactionCharacteristics",
    "UseTarget",
    "VExplain",
    "VSchemaDDL",
    "plan_special",
]

# Schemas every backend has; SHOW … FROM them needs no keyspace of that name.
SYSTEM_SCHEMAS = frozenset({"information_schema", "mysql", "performance_schema", "sys", "pg_catalog"})


# --- primitives ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Transaction(Primitive):
    """Transaction control for the session. ``op``: begin | commit | rollback | savepoint | release |
    rollback_to; ``savepoint`` names the savepoint of the last three."""

    op: str
    savepoint: str | None = None
    read_only: bool | None = None
    isolation: str | None = None
    deferrable: bool | None = None
    consistent_snapshot: bool = False
    chain: bool = False
    release: bool = False
    operator_type = "Transaction"

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Variant"] = self.op
        for key, value in (
            ("Savepoint", self.savepoint),
            ("ReadOnly", self.read_only),
            ("Isolation", self.isolation),
            ("Deferrable", self.deferrable),
        ):
            if value is not None:
                out[key] = value
        if self.consistent_snapshot:
            out["ConsistentSnapshot"] = True
        if self.chain:
            out["Chain"] = True
        if self.release:
            out["Release"] = True


@dataclass(frozen=True, slots=True)
class SetVariables(Primitive):
    """Session (or global, or user) variable assignments, in order; interpreting them is the session's job."""

    items: tuple[sp.Assignment | sp.SetNames | sp.SetCharset, ...]
    operator_type = "Set"

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Ops"] = [_describe_set_item(item) for item in self.items]


@dataclass(frozen=True, slots=True)
class TransactionCharacteristics(Primitive):
    """SET TRANSACTION / SET SESSION CHARACTERISTICS; ``scope`` as in ``special.SetTransaction``."""

    scope: str
    isolation: str | None = None
    read_only: bool | None = None
    deferrable: bool | None = None
    operator_type = "SetTransaction"

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Scope"] = self.scope
        for key, value in (("Isolation", self.isolation), ("ReadOnly", self.read_only),
                           ("Deferrable", self.deferrable)):  # fmt: skip
            if value is not None:
                out[key] = value


@dataclass(frozen=True, slots=True)
class ResetVariables(Primitive):
    """PostgreSQL RESET; ``name`` None resets every variable."""

    name: str | None
    operator_type = "Reset"

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Name"] = self.name if self.name is not None else "ALL"


@dataclass(frozen=True, slots=True)
class UseTarget(Primitive):
    """Switch the session's target: keyspace (``""`` keeps it), optional shard / key range / keyspace id, and
    tablet type (``special.Use``)."""

    keyspace: str
    target: str | None = None
    target_kind: str | None = None
    tablet_type: str | None = None
    operator_type = "UpdateTarget"

    def _describe_fields(self, out: dict[str, Any]) -> None:
        text = self.keyspace
        if self.target_kind == "shard":
            text += f":{self.target}"
        elif self.target is not None:
            text += f"[{self.target}]"
        if self.tablet_type is not None:
            text += f"@{self.tablet_type}"
        out["target"] = text


@dataclass(frozen=True, slots=True)
class Show(Primitive):
    """A SHOW statement with its keyspace and table resolved (``keyspace.table``, or None when it names none)."""

    statement: sp.Show
    keyspace: str | None = None
    table: str | None = None
    operator_type = "Show"

    @property
    def kind(self) -> str:
        return self.statement.kind

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Variant"] = self.statement.kind
        if self.keyspace is not None:
            out["Keyspace"] = self.keyspace
        if self.table is not None:
            out["Table"] = self.table


@dataclass(frozen=True, slots=True)
class VSchemaDDL(Primitive):
    """ALTER VSCHEMA against ``keyspace`` (the statement's own, or the session's); the engine applies it with
    ``router.planner.vschema_ddl.apply_vschema_ddl(doc, statement, keyspace.name)`` and stores the result."""

    statement: sp.VSchemaStatement
    keyspace: KeyspaceRef
    operator_type = "AlterVSchema"

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Keyspace"] = self.keyspace.describe()
        out["query"] = self.statement.describe()


@dataclass(frozen=True, slots=True)
class SequenceNext(Primitive):
    """Reserve ``count`` ids of sequence table ``table`` in ``keyspace`` (Vitess's Route with the ``Next``
    opcode; described the same way so plans compare with Vitess)."""

    keyspace: KeyspaceRef
    table: str
    count: ValueExpr
    operator_type = "Route"

    def needs_transaction(self) -> bool:
        return False  # ids are reserved outside the client's transaction, as in Vitess

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Variant"] = "Next"
        out["Keyspace"] = self.keyspace.describe()
        out["Query"] = f"select next {self.count.describe()} values from {self.table}"
        out["Table"] = self.table


@dataclass(frozen=True, slots=True)
class VExplain(Primitive):
    """VEXPLAIN: ``plan`` describes ``input`` without running it; ``queries`` and ``all`` run it and report the
    queries sent to the shards."""

    mode: str
    sql: str
    input: Primitive
    operator_type = "VEXPLAIN"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.input,)

    def needs_transaction(self) -> bool:
        return self.mode != "plan" and self.input.needs_transaction()

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Type"] = self.mode


def _describe_set_item(item: sp.Assignment | sp.SetNames | sp.SetCharset) -> str:
    if isinstance(item, sp.SetNames):
        return "names " + (item.charset or "default") + (f" collate {item.collation}" if item.collation else "")
    if isinstance(item, sp.SetCharset):
        return f"character set {item.charset or 'default'}"
    value = item.value
    if isinstance(value, sp.RawExpr):
        text = value.text
    elif isinstance(value, Arg):
        text = value.describe()
    else:
        text = str(value) if isinstance(value, sp.Word) else repr(value)
    name = f"@{item.name}" if item.scope == "user" else f"{item.scope} {item.name}"
    return f"{name} = {text}"


# --- planning -----------------------------------------------------------------------------------------------
PlanInner = Callable[[str], Plan]


def plan_special(
    stmt: sp.Statement,
    session_keyspace: str | None,
    snapshot_vschema: Any,
    *,
    plan_inner: PlanInner | None = None,
) -> Plan:
    """The plan of a statement from ``special.parse_special``.

    ``snapshot_vschema`` is the ``VSchema``, or a ``ClusterSnapshot`` (then USE of a shard is checked against
    its shards too). ``plan_inner(sql)`` plans VEXPLAIN's inner statement with the same session and snapshot; it
    is required for VEXPLAIN, whose plan takes the inner plan's tables (and, for QUERIES and ALL, which run the
    statement, its kind) so that ACLs judge what actually runs.
    """
    snapshot = snapshot_vschema if hasattr(snapshot_vschema, "vschema") else None
    vschema: VSchema = snapshot.vschema if snapshot is not None else snapshot_vschema
    ctx = _Context(session_keyspace, vschema, snapshot, plan_inner)
    if isinstance(stmt, sp.VSchemaStatement):
        return _plan_vschema_ddl(stmt, ctx)
    planner = _PLANNERS.get(type(stmt))
    if planner is None:
        raise InternalError(f"plan_special: not a special statement: {stmt!r}")
    return planner(stmt, ctx)


@dataclass(frozen=True, slots=True)
class _Context:
    session_keyspace: str | None
    vschema: VSchema
    snapshot: Any  # ClusterSnapshot | None
    plan_inner: PlanInner | None


def _plan_begin(stmt: sp.Begin, _: _Context) -> Plan:
    prim = Transaction("begin", None, stmt.read_only, stmt.isolation, stmt.deferrable, stmt.consistent_snapshot)
    return Plan(prim, "begin")


def _plan_commit(stmt: sp.Commit, _: _Context) -> Plan:
    return Plan(Transaction("commit", chain=stmt.chain, release=stmt.release), "commit")


def _plan_rollback(stmt: sp.Rollback, _: _Context) -> Plan:
    return Plan(Transaction("rollback", chain=stmt.chain, release=stmt.release), "rollback")


def _plan_savepoint(stmt: sp.Savepoint | sp.ReleaseSavepoint | sp.RollbackToSavepoint, _: _Context) -> Plan:
    op = {sp.Savepoint: "savepoint", sp.ReleaseSavepoint: "release", sp.RollbackToSavepoint: "rollback_to"}
    return Plan(Transaction(op[type(stmt)], stmt.name), "savepoint")


def _plan_set(stmt: sp.SetStatement, _: _Context) -> Plan:
    return Plan(SetVariables(stmt.items), "set")


def _plan_set_transaction(stmt: sp.SetTransaction, _: _Context) -> Plan:
    return Plan(TransactionCharacteristics(stmt.scope, stmt.isolation, stmt.read_only, stmt.deferrable), "set")


def _plan_reset(stmt: sp.Reset, _: _Context) -> Plan:
    return Plan(ResetVariables(stmt.name), "set")


def _plan_use(stmt: sp.Use, ctx: _Context) -> Plan:
    keyspace, vschema, snapshot = stmt.keyspace, ctx.vschema, ctx.snapshot
    if keyspace:
        routed = {rule.from_keyspace for rule in vschema.keyspace_routing_rules}
        if keyspace not in vschema.keyspaces and keyspace not in routed:
            raise UnknownKeyspaceError(f"unknown database '{keyspace}' in vschema")
        if stmt.target_kind == "shard" and snapshot is not None and keyspace in snapshot.keyspaces:
            snapshot.keyspaces[keyspace].shard(stmt.target)  # raises KeyRangeError naming keyspace and shard
    return Plan(UseTarget(keyspace, stmt.target, stmt.target_kind, stmt.tablet_type), "use")


def _check_keyspace(keyspace: str, vschema: VSchema) -> None:
    if keyspace not in vschema.keyspaces and keyspace.lower() not in SYSTEM_SCHEMAS:
        raise UnknownKeyspaceError(f"unknown database '{keyspace}' in vschema")


def _plan_show(stmt: sp.Show, ctx: _Context) -> Plan:
    session_keyspace, vschema = ctx.session_keyspace, ctx.vschema
    keyspace = stmt.database or session_keyspace
    table = None
    if stmt.table is not None:
        keyspace = stmt.table.keyspace or stmt.database or session_keyspace
        if keyspace is None:  # global routing: a table name unique across keyspaces
            keyspace = vschema.find_table(stmt.table.name).keyspace
        _check_keyspace(keyspace, vschema)
        table = f"{keyspace}.{stmt.table.name}"
    elif stmt.database is not None:
        _check_keyspace(stmt.database, vschema)
    return Plan(Show(stmt, keyspace, table), "show", tables=(table,) if table else ())


def _plan_next(stmt: sp.SelectNext, ctx: _Context) -> Plan:
    vschema = ctx.vschema
    keyspace = stmt.table.keyspace or ctx.session_keyspace
    try:
        table = vschema.find_table(stmt.table.name, keyspace)
    except UnknownTableError:
        where = f"keyspace {keyspace}" if keyspace else "any keyspace (qualify it as keyspace.table)"
        raise UnknownTableError(f"sequence table {stmt.table.name} not found in {where}") from None
    if not table.is_sequence:
        raise UnsupportedError(f"NEXT used on a non-sequence table {table.qualified_name}")
    ks = vschema.keyspaces[table.keyspace]
    count: ValueExpr = stmt.count if isinstance(stmt.count, Arg) else Const(stmt.count)
    prim = SequenceNext(KeyspaceRef(ks.name, ks.sharded), table.name, count)
    return Plan(prim, "select", tables=(table.qualified_name,))


def _plan_vexplain(stmt: sp.VExplain, ctx: _Context) -> Plan:
    if ctx.plan_inner is None:
        raise InternalError("plan_special: VEXPLAIN needs plan_inner to plan its statement")
    inner = ctx.plan_inner(stmt.sql)
    # PLAN only describes; QUERIES and ALL run the statement, so they are judged as the statement itself.
    kind = "other" if stmt.mode == "plan" else inner.kind
    return Plan(
        VExplain(stmt.mode, stmt.sql, inner.root),
        kind,
        tables=inner.tables,
        guards=inner.guards,
        warnings=inner.warnings,
        extras={"vexplain": stmt.mode, "inner_kind": inner.kind},
    )


def _plan_vschema_ddl(stmt: sp.VSchemaStatement, ctx: _Context) -> Plan:
    target = stmt.target
    keyspace = target.keyspace or ctx.session_keyspace
    if not keyspace:
        raise UnknownKeyspaceError(
            f"{stmt.describe()}: no keyspace selected: qualify {target.name} as keyspace.{target.name} or USE one"
        )
    ks = ctx.vschema.keyspaces.get(keyspace)
    if ks is None:
        raise UnknownKeyspaceError(f"keyspace {keyspace} not found in vschema")
    # As Vitess: the target's name counts as the table used, even for CREATE / DROP VINDEX.
    return Plan(VSchemaDDL(stmt, KeyspaceRef(ks.name, ks.sharded)), "vschema", tables=(f"{keyspace}.{target.name}",))


_PLANNERS: dict[type, Callable[..., Plan]] = {
    sp.Begin: _plan_begin,
    sp.Commit: _plan_commit,
    sp.Rollback: _plan_rollback,
    sp.Savepoint: _plan_savepoint,
    sp.ReleaseSavepoint: _plan_savepoint,
    sp.RollbackToSavepoint: _plan_savepoint,
    sp.SetStatement: _plan_set,
    sp.SetTransaction: _plan_set_transaction,
    sp.Reset: _plan_reset,
    sp.Use: _plan_use,
    sp.Show: _plan_show,
    sp.SelectNext: _plan_next,
    sp.VExplain: _plan_vexplain,
}
