"""The VSchema as frozen data: keyspaces, their vindexes and tables, and the routing rules (Vitess
``vindexes/vschema.go``, fields named as in ``proto/vschema.proto``).

Everything here is immutable and validated by ``sharding.vschema.parse_vschema``; a topology change builds a new
``VSchema``. ``VSchema.find_table`` answers "which table does this name mean" the way vtgate does: routing rules
first, then the named keyspace, then global routing (a table name unique across keyspaces needs no keyspace).
``to_json`` writes the Vitess JSON back.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sharding.errors import (
    AmbiguousError,
    RoutingError,
    ShardgateError,
    UnknownKeyspaceError,
    UnknownTableError,
)
from sharding.vindexes.base import Vindex

__all__ = [
    "FOREIGN_KEY_MODES",
    "TABLET_TYPES",
    "TABLE_TYPES",
    "AutoIncrement",
    "Column",
    "ColumnVindex",
    "Keyspace",
    "KeyspaceRoutingRule",
    "MirrorRule",
    "MultiTenantSpec",
    "RoutingRule",
    "ShardRoutingRule",
    "Table",
    "VSchema",
    "split_qualified",
]

TABLE_TYPES = ("", "reference", "sequence")
FOREIGN_KEY_MODES = ("unspecified", "disallow", "unmanaged", "managed")
# Suffixes a routing rule's from_table may carry (Vitess TabletTypeSuffix).
TABLET_TYPES = ("unknown", "primary", "replica", "rdonly", "spare", "experimental", "backup", "restore", "drained")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _frozen_map(items: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(items or {}))


def split_qualified(name: str) -> tuple[str, str]:
    """``"ks.t"`` -> ``("ks", "t")``, ``"t"`` -> ``("", "t")``; back-quotes around either part are dropped."""
    keyspace, dot, table = name.partition(".")
    if not dot:
        keyspace, table = "", keyspace

    def unquote(part: str) -> str:
        return part[1:-1].replace("``", "`") if len(part) >= 2 and part[0] == part[-1] == "`" else part

    return unquote(keyspace), unquote(table)


# --- tables -------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ColumnVindex:
    """A vindex applied to a table's column(s). ``owned`` when the table is the lookup vindex's owner, so writes to
    the table maintain the lookup table."""

    columns: tuple[str, ...]
    name: str
    vindex: Vindex
    owned: bool = False

    @property
    def type(self) -> str:
        return self.vindex.type

    @property
    def cost(self) -> int:
        return self.vindex.cost

    @property
    def is_unique(self) -> bool:
        return self.vindex.is_unique


@dataclass(frozen=True, slots=True)
class Column:
    """A declared column (``query.Type`` name in ``type``)."""

    name: str
    type: str = ""
    invisible: bool = False
    default: str = ""
    collation_name: str = ""
    size: int = 0
    scale: int = 0
    nullable: bool | None = None
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AutoIncrement:
    """A column filled from a sequence table: ``sequence`` as written, ``sequence_keyspace`` where it was found."""

    column: str
    sequence: str
    sequence_keyspace: str = ""

    @property
    def sequence_table(self) -> str:
        return split_qualified(self.sequence)[1]


@dataclass(frozen=True, slots=True)
class Table:
    """A table of a keyspace. ``column_vindexes[0]`` is the primary vindex, which places the row; ``type`` is
    ``''``, ``'reference'`` (copied to every shard) or ``'sequence'``."""

    name: str
    keyspace: str
    type: str = ""
    column_vindexes: tuple[ColumnVindex, ...] = ()
    auto_increment: AutoIncrement | None = None
    columns: tuple[Column, ...] = ()
    pinned: bytes | None = None
    column_list_authoritative: bool = False
    source: str = ""

    @property
    def primary_vindex(self) -> ColumnVindex | None:
        return self.column_vindexes[0] if self.column_vindexes else None

    @property
    def owned(self) -> tuple[ColumnVindex, ...]:
        """The lookup vindexes this table maintains on insert, update and delete (Vitess ``Table.Owned``)."""
        return tuple(cv for cv in self.column_vindexes if cv.owned)

    @property
    def ordered(self) -> tuple[ColumnVindex, ...]:
        """Column vindexes cheapest first, ties in declaration order (Vitess ``Table.Ordered``)."""
        return tuple(sorted(self.column_vindexes, key=lambda cv: cv.cost))

    @property
    def is_reference(self) -> bool:
        return self.type == "reference"

    @property
    def is_sequence(self) -> bool:
        return self.type == "sequence"

    @property
    def qualified_name(self) -> str:
        return f"{self.keyspace}.{self.name}"


@dataclass(frozen=True, slots=True)
class MultiTenantSpec:
    tenant_id_column_name: str = ""
    tenant_id_column_type: str = ""


@dataclass(frozen=True, slots=True)
class Keyspace:
    """One keyspace's VSchema. ``vindex_owners`` maps a vindex name to its owner table, when it has one."""

    name: str
    sharded: bool = False
    vindexes: Mapping[str, Vindex] = field(default_factory=lambda: _EMPTY)
    tables: Mapping[str, Table] = field(default_factory=lambda: _EMPTY)
    require_explicit_routing: bool = False
    foreign_key_mode: str = "unspecified"
    multi_tenant_spec: MultiTenantSpec | None = None
    vindex_owners: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        for name in ("vindexes", "tables", "vindex_owners"):
            object.__setattr__(self, name, _frozen_map(getattr(self, name)))


# --- routing rules ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RoutingRule:
    """``from_table`` (``t``, ``ks.t``, optionally ``@tablet_type``) is served by the one table in ``to_tables``
    (``ks.t``); an empty ``to_tables`` disables the name."""

    from_table: str
    to_tables: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ShardRoutingRule:
    """Queries for ``from_keyspace`` on ``shard`` go to ``to_keyspace`` (per-shard MoveTables cut-over)."""

    from_keyspace: str
    to_keyspace: str
    shard: str


@dataclass(frozen=True, slots=True)
class KeyspaceRoutingRule:
    """Queries naming ``from_keyspace`` go to ``to_keyspace``."""

    from_keyspace: str
    to_keyspace: str


@dataclass(frozen=True, slots=True)
class MirrorRule:
    """``percent`` of the queries on ``from_table`` are also sent to ``to_table`` (results ignored)."""

    from_table: str
    to_table: str
    percent: float


@dataclass(frozen=True, slots=True)
class _Route:
    """A routing rule resolved against the keyspaces: the target table, or why the rule cannot route."""

    rule_index: int
    table: Table | None
    error: str | None


_AMBIGUOUS = None  # a global table name present in several keyspaces


@dataclass(frozen=True, slots=True)
class VSchema:
    """The whole VSchema. ``warnings`` holds what loading found odd but allowed (unknown vindex params, routing
    rules that point nowhere); it does not take part in equality."""

    keyspaces: Mapping[str, Keyspace]
    routing_rules: tuple[RoutingRule, ...] = ()
    shard_routing_rules: tuple[ShardRoutingRule, ...] = ()
    keyspace_routing_rules: tuple[KeyspaceRoutingRule, ...] = ()
    mirror_rules: tuple[MirrorRule, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)
    _global_tables: Mapping[str, Table | None] = field(init=False, repr=False, compare=False)
    _routes: Mapping[str, _Route] = field(init=False, repr=False, compare=False)
    _keyspace_routes: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keyspaces", _frozen_map(self.keyspaces))
        object.__setattr__(self, "_global_tables", MappingProxyType(self._build_global_tables()))
        keyspace_routes = {r.from_keyspace: r.to_keyspace for r in self.keyspace_routing_rules}  # the last one wins
        object.__setattr__(self, "_keyspace_routes", MappingProxyType(keyspace_routes))
        object.__setattr__(self, "_routes", MappingProxyType(self._build_routes()))

    # --- building the indexes -----------------------------------------------------------------------------
    def _build_global_tables(self) -> dict[str, Table | None]:
        """Tables reachable without a keyspace name: unique names across keyspaces that do not require explicit
        routing. A reference table whose source is the same-named global table is not a rival (Vitess
        ``buildKeyspaceGlobalTables``). Keyspaces are visited in name order, so the result is deterministic."""
        tables: dict[str, Table | None] = {}
        for ks_name in sorted(self.keyspaces):
            ks = self.keyspaces[ks_name]
            if ks.require_explicit_routing:
                continue
            for tname, table in ks.tables.items():
                src_ks, src_table = split_qualified(table.source) if table.is_reference and table.source else ("", "")
                if tname in tables:
                    known = tables[tname]
                    if known is _AMBIGUOUS:
                        continue
                    if src_table and (not src_ks or src_ks == known.keyspace):
                        continue  # a copy of the table already routed to
                    tables[tname] = _AMBIGUOUS
                elif not (src_table and src_table == tname):
                    tables[tname] = table
        return tables

    def _build_routes(self) -> dict[str, _Route]:
        routes: dict[str, _Route] = {}
        for i, rule in enumerate(self.routing_rules):
            key = rule.from_table
            if key in routes:
                routes[key] = _Route(i, None, f"duplicate rule for entry {key}")
            elif len(rule.to_tables) > 1:
                routes[key] = _Route(i, None, f"table {key} has more than one target: {', '.join(rule.to_tables)}")
            elif not rule.to_tables:
                routes[key] = _Route(i, None, None)
            else:
                routes[key] = self._resolve_target(i, rule.to_tables[0])
        return routes

    def _resolve_target(self, index: int, target: str) -> _Route:
        keyspace, table = split_qualified(target)
        if not keyspace or not table or "." in table:
            return _Route(index, None, f"table {target} must be qualified as keyspace.table")
        try:
            return _Route(index, self._find_table(keyspace, table), None)
        except ShardgateError as exc:
            return _Route(index, None, exc.message)

    # --- lookups --------------------------------------------------------------------------------------------
    def routing_rule_errors(self) -> list[tuple[int, str]]:
        """``(rule index, reason)`` for each routing rule that cannot route (it fails when used)."""
        return sorted((r.rule_index, r.error) for r in self._routes.values() if r.error is not None)

    def find_table(self, name: str, keyspace: str | None = None, tablet_type: str = "primary") -> Table:
        """The table ``name`` means, as vtgate resolves it (Vitess ``FindRoutedTable``).

        Routing rules come first (``ks.t@tablet_type``, then ``ks.t``, or ``t`` when no keyspace is given); then
        keyspace routing rules rename the keyspace; then the keyspace is searched, where an unsharded keyspace
        accepts tables it does not list. Without a keyspace, a table name unique across keyspaces is found
        (global routing); a name in several is ambiguous. A VSchema of one keyspace searches that keyspace.
        """
        qualified = f"{keyspace}.{name}" if keyspace else name
        for key in (f"{qualified}@{tablet_type}", qualified):
            route = self._routes.get(key)
            if route is None:
                continue
            if route.error is not None:
                raise RoutingError(route.error)
            if route.table is None:
                raise RoutingError(f"table {name} has been disabled")
            return route.table
        if keyspace:
            keyspace = self._keyspace_routes.get(keyspace, keyspace)
        return self._find_table(keyspace or "", name)

    def _find_table(self, keyspace: str, name: str) -> Table:
        if not keyspace:
            if len(self.keyspaces) == 1:
                keyspace = next(iter(self.keyspaces))
            else:
                table = self._global_tables.get(name, ...)
                if table is _AMBIGUOUS:
                    raise AmbiguousError(f"ambiguous table reference: {name}")
                if table is ...:
                    raise UnknownTableError(f"table {name} not found")
                return table
        ks = self.keyspaces.get(keyspace)
        if ks is None:
            raise UnknownKeyspaceError(f"keyspace {keyspace} not found in vschema")
        table = ks.tables.get(name)
        if table is not None:
            return table
        if not ks.sharded:
            return Table(name=name, keyspace=keyspace)  # unsharded keyspaces need not list their tables
        raise UnknownTableError(f"table {name} not found in keyspace {keyspace}")

    def find_vindex(self, name: str, keyspace: str) -> Vindex | None:
        """A vindex by name in a keyspace, or None."""
        ks = self.keyspaces.get(keyspace)
        if ks is None:
            raise UnknownKeyspaceError(f"keyspace {keyspace} not found in vschema")
        return ks.vindexes.get(name)

    # --- back to JSON ---------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The Vitess VSchema JSON (``SrvVSchema``, proto field names), defaults left out."""
        out: dict[str, Any] = {}
        if self.routing_rules:
            out["routing_rules"] = {
                "rules": [{"from_table": r.from_table, "to_tables": list(r.to_tables)} for r in self.routing_rules]
            }
        out["keyspaces"] = {name: _keyspace_json(ks) for name, ks in self.keyspaces.items()}
        if self.shard_routing_rules:
            out["shard_routing_rules"] = {
                "rules": [
                    {"from_keyspace": r.from_keyspace, "to_keyspace": r.to_keyspace, "shard": r.shard}
                    for r in self.shard_routing_rules
                ]
            }
        if self.keyspace_routing_rules:
            out["keyspace_routing_rules"] = {
                "rules": [
                    {"from_keyspace": r.from_keyspace, "to_keyspace": r.to_keyspace}
                    for r in self.keyspace_routing_rules
                ]
            }
        if self.mirror_rules:
            out["mirror_rules"] = {
                "rules": [
                    {"from_table": r.from_table, "to_table": r.to_table, "percent": r.percent}
                    for r in self.mirror_rules
                ]
            }
        return out


def _keyspace_json(ks: Keyspace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ks.sharded:
        out["sharded"] = True
    if ks.vindexes:
        vindexes: dict[str, Any] = {}
        for name, vindex in ks.vindexes.items():
            entry: dict[str, Any] = {"type": vindex.type}
            if vindex.params:
                entry["params"] = dict(vindex.params)
            if name in ks.vindex_owners:
                entry["owner"] = ks.vindex_owners[name]
            vindexes[name] = entry
        out["vindexes"] = vindexes
    if ks.tables:
        out["tables"] = {name: _table_json(t) for name, t in ks.tables.items()}
    if ks.require_explicit_routing:
        out["require_explicit_routing"] = True
    if ks.foreign_key_mode != "unspecified":
        out["foreign_key_mode"] = ks.foreign_key_mode
    if ks.multi_tenant_spec is not None:
        spec = ks.multi_tenant_spec
        out["multi_tenant_spec"] = {
            k: v
            for k, v in (
                ("tenant_id_column_name", spec.tenant_id_column_name),
                ("tenant_id_column_type", spec.tenant_id_column_type),
            )
            if v
        }
    return out


def _table_json(t: Table) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if t.type:
        out["type"] = t.type
    if t.column_vindexes:
        out["column_vindexes"] = [
            {"column": cv.columns[0], "name": cv.name}
            if len(cv.columns) == 1
            else {"columns": list(cv.columns), "name": cv.name}
            for cv in t.column_vindexes
        ]
    if t.auto_increment is not None:
        out["auto_increment"] = {"column": t.auto_increment.column, "sequence": t.auto_increment.sequence}
    if t.columns:
        out["columns"] = [_column_json(c) for c in t.columns]
    if t.pinned is not None:
        out["pinned"] = t.pinned.hex()
    if t.column_list_authoritative:
        out["column_list_authoritative"] = True
    if t.source:
        out["source"] = t.source
    return out


def _column_json(c: Column) -> dict[str, Any]:
    out: dict[str, Any] = {"name": c.name}
    for key, value in (
        ("type", c.type),
        ("invisible", c.invisible),
        ("default", c.default),
        ("collation_name", c.collation_name),
        ("size", c.size),
        ("scale", c.scale),
    ):
        if value:
            out[key] = value
    if c.nullable is not None:
        out["nullable"] = c.nullable
    if c.values:
        out["values"] = list(c.values)
    return out
