"""ALTER VSCHEMA applied to a Vitess VSchema JSON document (Vitess ``topotools.ApplyVSchemaDDL``).

``apply_vschema_ddl(doc, stmt, default_keyspace)`` returns a ``VSchemaChange``: the new document, validated by
``parse_vschema`` (an invalid result raises ``VSchemaError`` listing its problems), the ``VSchema`` built from it,
and the side effects the engine must carry out. The input document is not modified. Pure: the engine reads the
document from topology, applies this, runs the effects and writes the document back with compare-and-swap.

Vitess's rules, kept: the first vindex of a keyspace makes it sharded; ADD VINDEX on a table missing from the
VSchema adds the table, and the table's first vindex is its primary vindex; a vindex name already defined in the
keyspace is reused when type, owner and params match and is an error otherwise; ADD VINDEX without USING names an
existing vindex; dropping a table's last vindex removes the table; ADD TABLE and ADD / DROP SEQUENCE need an
unsharded keyspace. Ours on top: dropping a vindex from its last table also removes it from the keyspace, and
AUTO_INCREMENT's sequence must already exist.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from router.planner import special as sp
from sharding.errors import AmbiguousError, UnknownKeyspaceError, UnknownTableError, VSchemaError
from sharding.vschema import parse_vschema
from sharding.vschema_model import VSchema

__all__ = ["CreateSequenceTable", "VSchemaChange", "apply_vschema_ddl"]


@dataclass(frozen=True, slots=True)
class CreateSequenceTable:
    """Create the sequence's backing table in its unsharded keyspace and seed it, when the table is missing."""

    keyspace: str
    table: str


@dataclass(frozen=True, slots=True)
class VSchemaChange:
    """The result of one ALTER VSCHEMA: the new JSON document (keys sorted), its ``VSchema``, the keyspace
    changed, side effects to run before the document is stored, and notes for the client (as warnings)."""

    doc: dict[str, Any]
    vschema: VSchema
    keyspace: str
    effects: tuple[CreateSequenceTable, ...] = ()
    notes: tuple[str, ...] = ()


def apply_vschema_ddl(doc: dict[str, Any], stmt: sp.VSchemaStatement, default_keyspace: str | None) -> VSchemaChange:
    """Apply ``stmt`` to ``doc`` (Vitess VSchema JSON, as ``VSchema.to_json()`` gives it). An unqualified name
    means ``default_keyspace`` (the session's). Raises ``UnknownKeyspaceError``, ``UnknownTableError`` or
    ``VSchemaError`` naming the keyspace, table or vindex at fault."""
    target = stmt.target
    ks_name = target.keyspace or default_keyspace
    if not ks_name:
        raise UnknownKeyspaceError(
            f"{stmt.describe()}: no keyspace selected: qualify {target.name} as keyspace.{target.name} or USE one"
        )
    new = copy.deepcopy(doc)
    keyspaces = new.get("keyspaces")
    if not isinstance(keyspaces, dict) or ks_name not in keyspaces:
        raise UnknownKeyspaceError(f"keyspace {ks_name} not found in vschema")
    ks = keyspaces[ks_name]
    if ks is None:
        ks = keyspaces[ks_name] = {}
    edit = _Edit(ks_name, ks, keyspaces)
    _APPLY[type(stmt)](edit, stmt)
    vschema = parse_vschema(new, source=stmt.describe())
    return VSchemaChange(_sorted(new), vschema, ks_name, tuple(edit.effects), tuple(edit.notes))


class _Edit:
    """One keyspace's JSON being edited in place (a deep copy), with the effects and notes collected."""

    def __init__(self, name: str, ks: dict[str, Any], keyspaces: dict[str, Any]) -> None:
        self.name = name
        self.ks = ks
        self.keyspaces = keyspaces
        self.effects: list[CreateSequenceTable] = []
        self.notes: list[str] = []

    @property
    def sharded(self) -> bool:
        return bool(self.ks.get("sharded"))

    def section(self, key: str) -> dict[str, Any]:
        value = self.ks.get(key)
        if not isinstance(value, dict):
            value = self.ks[key] = {}
        return value

    def table(self, name: str) -> dict[str, Any]:
        table = self.section("tables").get(name, ...)
        if table is ...:
            raise UnknownTableError(f"vschema does not contain table {name} in keyspace {self.name}")
        if table is None:
            table = self.section("tables")[name] = {}
        return table

    def column_vindexes(self, table: dict[str, Any]) -> list[dict[str, Any]]:
        key = _key(table, "column_vindexes")
        value = table.get(key)
        if not isinstance(value, list):
            value = table[key] = []
        return value

    def add_vindex(self, name: str, vtype: str, params: tuple[tuple[str, str], ...]) -> None:
        """Define vindex ``name``; the keyspace's first vindex makes it sharded (as Vitess)."""
        vindexes = self.section("vindexes")
        if not vindexes and not self.sharded:
            self.ks["sharded"] = True
            self.notes.append(f"keyspace {self.name} is now sharded: vindex {name} is its first vindex")
        owner, rest = _split_owner(params)
        entry: dict[str, Any] = {"type": vtype}
        if rest:
            entry["params"] = rest
        if owner:
            entry["owner"] = owner
        vindexes[name] = entry

    def users_of(self, vindex: str) -> list[str]:
        return sorted(
            tname
            for tname, table in self.section("tables").items()
            if isinstance(table, dict) and any(cv.get("name") == vindex for cv in self.column_vindexes_of(table))
        )

    @staticmethod
    def column_vindexes_of(table: dict[str, Any]) -> list[dict[str, Any]]:
        value = table.get(_key(table, "column_vindexes"))
        return [cv for cv in value if isinstance(cv, dict)] if isinstance(value, list) else []


def _create_vindex(edit: _Edit, stmt: sp.CreateVindex) -> None:
    name = stmt.name.name
    if name in edit.section("vindexes"):
        raise VSchemaError(f"vindex {name} already exists in keyspace {edit.name}")
    edit.add_vindex(name, stmt.type, stmt.params)


def _drop_vindex(edit: _Edit, stmt: sp.DropVindex) -> None:
    name = stmt.name.name
    if name not in edit.section("vindexes"):
        raise VSchemaError(f"vindex {name} does not exist in keyspace {edit.name}")
    users = edit.users_of(name)
    if users:
        raise VSchemaError(f"cannot drop vindex {name}: still used by table {', '.join(users)} in keyspace {edit.name}")
    del edit.section("vindexes")[name]


def _add_table(edit: _Edit, stmt: sp.AddTable) -> None:
    name = stmt.table.name
    if edit.sharded:
        raise VSchemaError(
            f"add vschema table: unsupported on sharded keyspace {edit.name} (add a vindex to table {name} instead)"
        )
    if name in edit.section("tables"):
        raise VSchemaError(f"vschema already contains table {name} in keyspace {edit.name}")
    edit.section("tables")[name] = {}


def _drop_table(edit: _Edit, stmt: sp.DropTable) -> None:
    edit.table(stmt.table.name)  # raises when missing
    del edit.section("tables")[stmt.table.name]


def _add_column_vindex(edit: _Edit, stmt: sp.AddColumnVindex) -> None:
    name, tname = stmt.name, stmt.table.name
    existing = edit.section("vindexes").get(name)
    if stmt.type is None:
        if existing is None:
            raise VSchemaError(f"vindex {name} does not exist in keyspace {edit.name}: give its type with USING")
    elif existing is None:
        edit.add_vindex(name, stmt.type, stmt.params)
    else:
        _check_same_vindex(edit.name, name, existing, stmt.type, stmt.params)
    tables = edit.section("tables")
    if not isinstance(tables.get(tname), dict):
        tables[tname] = {}
        edit.notes.append(f"table {tname} added to keyspace {edit.name}")
    cvs = edit.column_vindexes(tables[tname])
    if any(isinstance(cv, dict) and cv.get("name") == name for cv in cvs):
        raise VSchemaError(f"vindex {name} already defined on table {edit.name}.{tname}")
    cols = stmt.columns
    cvs.append({"column": cols[0], "name": name} if len(cols) == 1 else {"columns": list(cols), "name": name})


def _check_same_vindex(ks: str, name: str, existing: Any, vtype: str, params: tuple[tuple[str, str], ...]) -> None:
    existing = existing if isinstance(existing, dict) else {}
    owner, rest = _split_owner(params)
    if existing.get("type") != vtype:
        raise VSchemaError(f"vindex {name} in keyspace {ks} is defined with type {existing.get('type')} not {vtype}")
    if (existing.get("owner") or "") != owner:
        raise VSchemaError(
            f"vindex {name} in keyspace {ks} is defined with owner {existing.get('owner') or '(none)'} "
            f"not {owner or '(none)'}"
        )
    if (existing.get("params") or {}) != rest:
        raise VSchemaError(f"vindex {name} in keyspace {ks} is defined with different parameters")


def _drop_column_vindex(edit: _Edit, stmt: sp.DropColumnVindex) -> None:
    name, tname = stmt.name, stmt.table.name
    table = edit.table(tname)
    cvs = edit.column_vindexes(table)
    keep = [cv for cv in cvs if not (isinstance(cv, dict) and cv.get("name") == name)]
    if len(keep) == len(cvs):
        raise VSchemaError(f"vindex {name} not defined in table {edit.name}.{tname}")
    cvs[:] = keep
    if not keep:  # Vitess: a table without vindexes leaves the VSchema
        del edit.section("tables")[tname]
        edit.notes.append(f"table {tname} removed from keyspace {edit.name}: it has no vindex left")
    if not edit.users_of(name):
        edit.section("vindexes").pop(name, None)
        edit.notes.append(f"vindex {name} removed from keyspace {edit.name}: no table uses it")


def _add_sequence(edit: _Edit, stmt: sp.AddSequence) -> None:
    name = stmt.table.name
    if edit.sharded:
        raise VSchemaError(f"add sequence table: unsupported on sharded keyspace {edit.name} (sequence {name})")
    if name in edit.section("tables"):
        raise VSchemaError(f"vschema already contains table {name} in keyspace {edit.name}")
    edit.section("tables")[name] = {"type": "sequence"}
    edit.effects.append(CreateSequenceTable(edit.name, name))


def _drop_sequence(edit: _Edit, stmt: sp.DropSequence) -> None:
    name = stmt.table.name
    if edit.sharded:
        raise VSchemaError(f"drop sequence table: unsupported on sharded keyspace {edit.name} (sequence {name})")
    table = edit.table(name)
    if table.get("type") != "sequence":
        raise VSchemaError(f"table {edit.name}.{name} is not a sequence")
    del edit.section("tables")[name]


def _add_auto_increment(edit: _Edit, stmt: sp.AddAutoIncrement) -> None:
    tname = stmt.table.name
    table = edit.table(tname)
    key = _key(table, "auto_increment")
    current = table.get(key)
    if isinstance(current, dict):
        raise VSchemaError(
            f"table {edit.name}.{tname} already has an auto_increment column {current.get('column')} "
            f"(sequence {current.get('sequence')})"
        )
    _check_sequence(edit.keyspaces, stmt.sequence)
    table[key] = {"column": stmt.column, "sequence": stmt.sequence.qualified()}


def _check_sequence(keyspaces: dict[str, Any], seq: sp.TableName) -> None:
    """The sequence table must exist (in its keyspace, or in exactly one keyspace when unqualified)."""
    if seq.keyspace:
        if seq.keyspace not in keyspaces:
            raise UnknownKeyspaceError(f"keyspace {seq.keyspace} of sequence {seq.qualified()} not found in vschema")
        holders = [seq.keyspace] if seq.name in _tables_of(keyspaces[seq.keyspace]) else []
    else:
        holders = sorted(k for k, ks in keyspaces.items() if seq.name in _tables_of(ks))
    if not holders:
        where = f"keyspace {seq.keyspace}" if seq.keyspace else "any keyspace"
        raise UnknownTableError(f"sequence {seq.name} not found in {where} (create it with ADD SEQUENCE)")
    if len(holders) > 1:
        raise AmbiguousError(f"sequence {seq.name} is in keyspaces {', '.join(holders)}: qualify it as keyspace.table")
    table = _tables_of(keyspaces[holders[0]])[seq.name]
    if not isinstance(table, dict) or table.get("type") != "sequence":
        raise VSchemaError(f"table {holders[0]}.{seq.name} is not a sequence")


def _drop_auto_increment(edit: _Edit, stmt: sp.DropAutoIncrement) -> None:
    table = edit.table(stmt.table.name)
    table.pop(_key(table, "auto_increment"), None)


def _tables_of(ks: Any) -> dict[str, Any]:
    tables = ks.get("tables") if isinstance(ks, dict) else None
    return tables if isinstance(tables, dict) else {}


def _split_owner(params: tuple[tuple[str, str], ...]) -> tuple[str, dict[str, str]]:
    """Vitess ``VindexSpec.ParseParams``: the ``owner`` parameter is the vindex's owner, not a param."""
    owner = ""
    rest: dict[str, str] = {}
    for key, value in params:
        if key.lower() == "owner":
            owner = value
        else:
            rest[key] = value
    return owner, rest


def _key(obj: dict[str, Any], snake: str) -> str:
    """The spelling ``obj`` uses for a field: protojson also reads lowerCamelCase (``columnVindexes``)."""
    head, *rest = snake.split("_")
    camel = head + "".join(part.title() for part in rest)
    return camel if camel in obj and snake not in obj else snake


def _sorted(value: Any) -> Any:
    """Dict keys sorted at every level, so equal VSchemas serialize identically; list order is kept."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


_APPLY: dict[type, Callable[[_Edit, Any], None]] = {
    sp.CreateVindex: _create_vindex,
    sp.DropVindex: _drop_vindex,
    sp.AddTable: _add_table,
    sp.DropTable: _drop_table,
    sp.AddColumnVindex: _add_column_vindex,
    sp.DropColumnVindex: _drop_column_vindex,
    sp.AddSequence: _add_sequence,
    sp.DropSequence: _drop_sequence,
    sp.AddAutoIncrement: _add_auto_increment,
    sp.DropAutoIncrement: _drop_auto_increment,
}
