"""Loading a Vitess VSchema (JSON) into frozen data, checking everything in one pass.

``parse_vschema(doc)`` returns a ``VSchema`` (see ``sharding.vschema_model``) or raises ``VSchemaError`` listing
every problem on its own line, each led by its JSON path, e.g.
``keyspaces.user.tables.orders.column_vindexes[0].name: unknown vindex 'user_idx'``: a user fixing a VSchema
should see all the problems at once, not one per attempt. What Vitess accepts but is probably a mistake (an
unknown vindex param, a routing rule pointing nowhere) lands in ``vschema.warnings`` instead.

The rules are Vitess's (``vindexes/vschema.go``), read with protojson's leniency: snake_case or lowerCamelCase
field names, ``null`` for a default; unknown fields are errors, as protojson makes them.
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from os import PathLike
from typing import Any

from sharding.errors import VSchemaError
from sharding.vindexes import registry
from sharding.vindexes.base import Lookup, MultiColumn, Vindex
from sharding.vschema_model import (
    FOREIGN_KEY_MODES,
    TABLE_TYPES,
    AutoIncrement,
    Column,
    ColumnVindex,
    Keyspace,
    KeyspaceRoutingRule,
    MirrorRule,
    MultiTenantSpec,
    RoutingRule,
    ShardRoutingRule,
    Table,
    VSchema,
    split_qualified,
)
from sharding.vschema_reader import Fields, join, kind
from sharding.vschema_rules import RulesReader

__all__ = [
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
    "parse_vschema",
    "parse_vschema_file",
]

# query.Type names a column may declare (proto/query.proto).
_QUERY_TYPES = frozenset(
    "NULL_TYPE INT8 UINT8 INT16 UINT16 INT24 UINT24 INT32 UINT32 INT64 UINT64 FLOAT32 FLOAT64 TIMESTAMP DATE TIME "
    "DATETIME YEAR DECIMAL TEXT BLOB VARCHAR VARBINARY CHAR BINARY BIT ENUM SET TUPLE GEOMETRY JSON EXPRESSION "
    "HEXNUM HEXVAL BITNUM VECTOR RAW ROW_TUPLE".split()
)
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")


def parse_vschema(doc: Any, *, source: str = "vschema") -> VSchema:
    """Validate a Vitess VSchema document (the parsed JSON) and build the ``VSchema``.

    ``source`` names the document in messages (a file name, a topology key). Raises ``VSchemaError`` whose
    ``problems`` hold one ``path: message`` line per problem.
    """
    return _Loader(source).load(doc)


def parse_vschema_file(path: str | PathLike[str]) -> VSchema:
    """``parse_vschema`` of a JSON file."""
    name = str(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        line = f"{name}: cannot read: {exc.strerror or exc}"
        raise VSchemaError(line, problems=[line]) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        line = f"{name}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise VSchemaError(line, problems=[line]) from None
    return parse_vschema(doc, source=name)


class _Loader(RulesReader):
    """One load: walks the document, collects problems and warnings, builds the frozen objects."""

    def __init__(self, source: str) -> None:
        super().__init__(source)
        # Cross-references checked once every keyspace is read: (keyspace, name, reference, path).
        self._sequences: list[tuple[str, str, str, str]] = []
        self._sources: list[tuple[str, str, str, str]] = []
        self._owners: list[tuple[str, str, str, str]] = []


    # --- the document ---------------------------------------------------------------------------------------
    def load(self, doc: Any) -> VSchema:
        if not isinstance(doc, dict):
            self.problem("", f"expected a JSON object, got {kind(doc)}")
            raise self.error()
        f = self.fields(
            doc, "", ("keyspaces", "routing_rules", "shard_routing_rules", "keyspace_routing_rules", "mirror_rules")
        )
        keyspaces: dict[str, Keyspace] = {}
        value, ks_path = f.get("keyspaces", (None, "keyspaces"))
        for name, ks_doc in (self.obj(value, ks_path) or {}).items():
            path = join(ks_path, name)
            if not name:
                self.problem(path, "a keyspace name must not be empty")
                continue
            ks = self.keyspace(name, ks_doc, path)
            if ks is not None:
                keyspaces[name] = ks
        keyspaces = self.resolve_references(keyspaces)
        rules, rule_paths = self.routing_rules(f)
        vschema = VSchema(
            keyspaces,
            routing_rules=rules,
            shard_routing_rules=self.shard_routing_rules(f, keyspaces),
            keyspace_routing_rules=self.keyspace_routing_rules(f, keyspaces),
            mirror_rules=self.mirror_rules(f),
        )
        for index, reason in vschema.routing_rule_errors():
            self.warn(rule_paths[index], f"{reason}; the rule fails every query that uses it")
        if self.problems:
            raise self.error()
        return dataclasses.replace(vschema, warnings=tuple(self.warnings))

    def error(self) -> VSchemaError:
        n = len(self.problems)
        header = f"invalid VSchema ({self.source}): {n} problem{'s' if n != 1 else ''}"
        return VSchemaError("\n".join([header, *self.problems]), problems=self.problems)

    # --- keyspaces --------------------------------------------------------------------------------------------
    def keyspace(self, name: str, doc: Any, path: str) -> Keyspace | None:
        obj = self.obj(doc, path)
        if obj is None:
            return None
        f = self.fields(
            obj,
            path,
            ("sharded", "vindexes", "tables", "require_explicit_routing", "foreign_key_mode", "multi_tenant_spec"),
        )
        sharded = self.boolean(f, "sharded")
        vindexes, owners, broken = self.vindexes(f, path, name, sharded)
        tables: dict[str, Table] = {}
        value, tables_path = f.get("tables", (None, join(path, "tables")))
        for tname, t_doc in (self.obj(value, tables_path) or {}).items():
            tpath = join(tables_path, tname)
            if not tname:
                self.problem(tpath, "a table name must not be empty")
                continue
            table = self.table(name, sharded, tname, t_doc, tpath, vindexes, owners, broken)
            if table is not None:
                tables[tname] = table
        spec_fields, spec_path = self.section(
            f, "multi_tenant_spec", path, ("tenant_id_column_name", "tenant_id_column_type")
        )
        spec = None
        if f.get("multi_tenant_spec", (None, ""))[0] is not None:
            spec = MultiTenantSpec(
                self.string(spec_fields, "tenant_id_column_name", spec_path),
                self.string(spec_fields, "tenant_id_column_type", spec_path),
            )
        return Keyspace(
            name=name,
            sharded=sharded,
            vindexes=vindexes,
            tables=tables,
            require_explicit_routing=self.boolean(f, "require_explicit_routing"),
            foreign_key_mode=self.foreign_key_mode(f),
            multi_tenant_spec=spec,
            vindex_owners=owners,
        )

    def foreign_key_mode(self, f: Fields) -> str:
        value, path = f.get("foreign_key_mode", (None, ""))
        if value is None:
            return "unspecified"
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(FOREIGN_KEY_MODES):
            return FOREIGN_KEY_MODES[value]  # protojson also accepts an enum's number
        if value not in FOREIGN_KEY_MODES:
            self.problem(path, f"unknown foreign key mode {value!r} (expected one of: {', '.join(FOREIGN_KEY_MODES)})")
            return "unspecified"
        return str(value)

    def vindexes(
        self, f: Fields, ks_path: str, ks_name: str, sharded: bool
    ) -> tuple[dict[str, Vindex], dict[str, str], set[str]]:
        """The keyspace's vindexes, their owners, and the names that failed (so tables do not repeat that)."""
        vindexes: dict[str, Vindex] = {}
        owners: dict[str, str] = {}
        broken: set[str] = set()
        value, path = f.get("vindexes", (None, join(ks_path, "vindexes")))
        defs = self.obj(value, path) or {}
        if defs and not sharded:
            self.warn(path, "an unsharded keyspace does not route by vindex; these vindexes are unused")
        for vname, v_doc in defs.items():
            vpath = join(path, vname)
            vindex = self.vindex(vname, v_doc, vpath, ks_name, owners)
            if vindex is None:
                broken.add(vname)
            else:
                vindexes[vname] = vindex
        return vindexes, owners, broken

    def vindex(self, name: str, doc: Any, path: str, ks_name: str, owners: dict[str, str]) -> Vindex | None:
        obj = self.obj(doc, path)
        if obj is None:
            return None
        f = self.fields(obj, path, ("type", "params", "owner"))
        vtype = self.string(f, "type", path, required=True)
        owner = self.string(f, "owner", path)
        params: dict[str, str] = {}
        params_ok = True
        value, params_path = f.get("params", (None, join(path, "params")))
        for key, param in (self.obj(value, params_path) or {}).items():
            if not isinstance(param, str):  # proto map<string, string>: numbers must be quoted
                self.problem(join(params_path, key), f"expected a string, got {kind(param)}")
                params_ok = False
            else:
                params[key] = param
        if not vtype or not params_ok:
            return None
        try:
            vindex, warnings = registry.create(vtype, name, params)
        except VSchemaError as exc:
            for line in exc.problems:
                self.problems.append(f"{path}.{line}")
            return None
        for w in warnings:
            self.warn(join(params_path, w.param) if w.param else params_path, w.message)
        if owner:
            owners[name] = owner
            self._owners.append((ks_name, name, owner, f["owner"][1]))
        return vindex

    # --- tables -----------------------------------------------------------------------------------------------
    def table(
        self,
        ks_name: str,
        sharded: bool,
        name: str,
        doc: Any,
        path: str,
        vindexes: Mapping[str, Vindex],
        owners: Mapping[str, str],
        broken: set[str],
    ) -> Table | None:
        obj = self.obj(doc, path)
        if obj is None:
            return None
        f = self.fields(
            obj,
            path,
            ("type", "column_vindexes", "auto_increment", "columns", "pinned", "column_list_authoritative", "source"),
        )
        ttype = self.string(f, "type", path)
        if ttype not in TABLE_TYPES:
            self.problem(f["type"][1], f"unknown table type {ttype!r} (expected '', 'reference' or 'sequence')")
        pinned = self.pinned(f, sharded)
        if ttype == "sequence" and sharded and "pinned" not in f:
            self.problem(f["type"][1], "a sequence table must be in an unsharded keyspace, or pinned")
        column_vindexes = self.column_vindexes(f, path, ks_name, sharded, ttype, name, vindexes, owners, broken)
        if sharded and ttype == "" and "pinned" not in f and not f.get("column_vindexes", (None, ""))[0]:
            self.problem(path, "missing primary vindex: a table of a sharded keyspace needs column_vindexes or pinned")
        source = self.string(f, "source", path)
        if source:
            if ttype != "reference":
                self.problem(f["source"][1], "only a reference table can have a source")
            else:
                self._sources.append((ks_name, name, source, f["source"][1]))
        return Table(
            name=name,
            keyspace=ks_name,
            type=ttype if ttype in TABLE_TYPES else "",
            column_vindexes=column_vindexes,
            auto_increment=self.auto_increment(f, path, ks_name, name),
            columns=self.columns(f, path),
            pinned=pinned,
            column_list_authoritative=self.boolean(f, "column_list_authoritative"),
            source=source,
        )

    def pinned(self, f: Fields, sharded: bool) -> bytes | None:
        """The keyspace id a pinned table lives at (hex, like a key range bound)."""
        value, path = f.get("pinned", (None, ""))
        if value is None or value == "":
            return None
        if not isinstance(value, str) or not _HEX.fullmatch(value):
            self.problem(path, f"expected a keyspace id in hex (whole bytes, e.g. '80'), got {value!r}")
            return None
        if not sharded:
            self.warn(path, "pinned has no effect in an unsharded keyspace")
        return bytes.fromhex(value)

    def column_vindexes(
        self,
        f: Fields,
        path: str,
        ks_name: str,
        sharded: bool,
        ttype: str,
        tname: str,
        vindexes: Mapping[str, Vindex],
        owners: Mapping[str, str],
        broken: set[str],
    ) -> tuple[ColumnVindex, ...]:
        items, cv_path = self.array(f, "column_vindexes", path)
        if not items:
            return ()
        if not sharded:
            self.problem(cv_path, f"tables of unsharded keyspace {ks_name!r} cannot have column_vindexes")
            return ()
        if ttype in ("reference", "sequence"):
            self.problem(cv_path, f"a {ttype} table cannot have column_vindexes")
            return ()
        out: list[ColumnVindex] = []
        for i, item in enumerate(items):
            ipath = f"{cv_path}[{i}]"
            obj = self.obj(item, ipath)
            if obj is None:
                continue
            cf = self.fields(obj, ipath, ("column", "name", "columns"))
            vname = self.string(cf, "name", ipath, required=True)
            column = self.string(cf, "column", ipath)
            columns = self.strings(cf, "columns", ipath)
            if column and columns:
                self.problem(ipath, "give column or columns, not both")
            elif not column and not columns:
                self.problem(ipath, "missing column (or columns)")
            cols = (column,) if column else columns
            cols_path = cf["column"][1] if column else cf.get("columns", (None, ipath))[1]
            if not vname or vname in broken:
                continue
            vindex = vindexes.get(vname)
            if vindex is None:
                self.problem(cf["name"][1], f"unknown vindex {vname!r}")
                continue
            owned = isinstance(vindex, Lookup) and owners.get(vname) == tname
            self.check_column_vindex(i, vname, vindex, owned, cols, cf["name"][1], cols_path)
            out.append(ColumnVindex(columns=cols, name=vname, vindex=vindex, owned=owned))
        return tuple(out)

    def check_column_vindex(
        self, i: int, vname: str, vindex: Vindex, owned: bool, cols: tuple[str, ...], name_path: str, cols_path: str
    ) -> None:
        label = f"{vname!r} ({vindex.type})"
        if i == 0 and not vindex.is_unique:
            self.problem(name_path, f"primary vindex {label} is not unique: the first vindex must place each row once")
        if i == 0 and owned:
            self.problem(name_path, f"primary vindex {label} cannot be owned by its table")
        if isinstance(vindex, MultiColumn):
            if i != 0:
                self.problem(name_path, f"multi-column vindex {label} must be the primary vindex")
            if cols and len(cols) != vindex.column_count:
                self.problem(cols_path, f"vindex {label} takes {vindex.column_count} columns, got {len(cols)}")
        elif isinstance(vindex, Lookup):
            from_columns = vindex.lookup.from_columns
            if from_columns and cols and len(cols) != len(from_columns):
                self.problem(
                    cols_path, f"lookup vindex {label} has {len(from_columns)} 'from' column(s), got {len(cols)}"
                )
        elif len(cols) > 1:
            self.problem(cols_path, f"vindex {label} takes one column, got {len(cols)}")

    def columns(self, f: Fields, path: str) -> tuple[Column, ...]:
        items, cols_path = self.array(f, "columns", path)
        out: list[Column] = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            ipath = f"{cols_path}[{i}]"
            obj = self.obj(item, ipath)
            if obj is None:
                continue
            cf = self.fields(
                obj,
                ipath,
                ("name", "type", "invisible", "default", "collation_name", "size", "scale", "nullable", "values"),
            )
            name = self.string(cf, "name", ipath, required=True)
            if name.lower() in seen:
                self.problem(cf["name"][1], f"duplicate column {name!r}")
            seen.add(name.lower())
            ctype = self.string(cf, "type", ipath)
            if ctype and ctype not in _QUERY_TYPES:
                self.problem(cf["type"][1], f"unknown column type {ctype!r} (a query.Type name such as VARCHAR)")
            nullable_value, nullable_path = cf.get("nullable", (None, ""))
            if nullable_value is not None and not isinstance(nullable_value, bool):
                self.problem(nullable_path, f"expected true or false, got {kind(nullable_value)}")
                nullable_value = None
            out.append(
                Column(
                    name=name,
                    type=ctype,
                    invisible=self.boolean(cf, "invisible"),
                    default=self.string(cf, "default", ipath),
                    collation_name=self.string(cf, "collation_name", ipath),
                    size=self.integer(cf, "size"),
                    scale=self.integer(cf, "scale"),
                    nullable=nullable_value,
                    values=self.strings(cf, "values", ipath),
                )
            )
        return tuple(out)

    def auto_increment(self, f: Fields, path: str, ks_name: str, tname: str) -> AutoIncrement | None:
        if f.get("auto_increment", (None, ""))[0] is None:
            return None
        af, apath = self.section(f, "auto_increment", path, ("column", "sequence"))
        column = self.string(af, "column", apath, required=True)
        sequence = self.string(af, "sequence", apath, required=True)
        if sequence:
            self._sequences.append((ks_name, tname, sequence, af["sequence"][1]))
        return AutoIncrement(column=column, sequence=sequence)

    # --- references between keyspaces ------------------------------------------------------------------------
    def resolve_references(self, keyspaces: dict[str, Keyspace]) -> dict[str, Keyspace]:
        """Check sequences, reference sources and vindex owners now that every keyspace is known; returns the
        keyspaces with each auto-increment's sequence keyspace filled in."""
        for ks_name, vname, owner, path in self._owners:
            ks = keyspaces.get(ks_name)
            if ks is None:
                continue
            owner_table = ks.tables.get(owner)
            if owner_table is None:
                self.problem(path, f"owner table {owner!r} not found in keyspace {ks_name!r}")
            elif isinstance(ks.vindexes.get(vname), Lookup) and not any(
                cv.name == vname for cv in owner_table.column_vindexes
            ):
                self.warn(
                    path, f"owner table {owner!r} does not use vindex {vname!r}, so nothing fills its lookup table"
                )
        self.check_sources(keyspaces)
        for ks_name, tname, sequence, path in self._sequences:
            seq_keyspace = self.sequence_keyspace(keyspaces, sequence, path)
            ks = keyspaces.get(ks_name)
            if seq_keyspace and ks is not None and tname in ks.tables:
                table = ks.tables[tname]
                assert table.auto_increment is not None
                resolved = dataclasses.replace(table.auto_increment, sequence_keyspace=seq_keyspace)
                tables = {**ks.tables, tname: dataclasses.replace(table, auto_increment=resolved)}
                keyspaces[ks_name] = dataclasses.replace(ks, tables=tables)
        return keyspaces

    def sequence_keyspace(self, keyspaces: Mapping[str, Keyspace], sequence: str, path: str) -> str | None:
        """The keyspace holding the sequence table ``sequence`` (``seq`` or ``ks.seq``), or None (a problem)."""
        seq_ks, seq_table = split_qualified(sequence)
        if not seq_table or "." in seq_table:
            self.problem(path, f"invalid sequence name {sequence!r}: expected 'table' or 'keyspace.table'")
            return None
        if seq_ks:
            if seq_ks not in keyspaces:
                self.problem(path, f"keyspace {seq_ks!r} of sequence {sequence!r} not found")
                return None
            holders = [seq_ks] if seq_table in keyspaces[seq_ks].tables else []
        else:
            holders = sorted(k for k, ks in keyspaces.items() if seq_table in ks.tables)
        if not holders:
            self.problem(path, f"sequence table {sequence!r} not found (declare it with type 'sequence')")
            return None
        if len(holders) > 1:
            where = ", ".join(holders)
            self.problem(path, f"sequence {sequence!r} is in keyspaces {where}: qualify it as keyspace.table")
            return None
        table = keyspaces[holders[0]].tables[seq_table]
        if not table.is_sequence:
            self.problem(path, f"table {table.qualified_name!r} is not a sequence table (its type is {table.type!r})")
            return None
        return holders[0]

    def check_sources(self, keyspaces: Mapping[str, Keyspace]) -> None:
        """Reference tables copied from another keyspace's table (Vitess ``buildKeyspaceReferences``)."""
        seen: dict[tuple[str, str], str] = {}  # (referencing keyspace, source) -> referencing table
        for ks_name, tname, source, path in self._sources:
            src_ks, src_table = split_qualified(source)
            if not src_table or "." in src_table:
                self.problem(path, f"invalid source {source!r}: expected 'table' or 'keyspace.table'")
                continue
            if src_ks == ks_name:
                self.problem(path, f"source {source!r} may not be in the same keyspace as its reference table")
                continue
            if src_ks:
                if src_ks not in keyspaces:
                    self.problem(path, f"source {source!r} references a non-existent keyspace {src_ks!r}")
                    continue
                holders = [src_ks] if src_table in keyspaces[src_ks].tables else []
            else:
                holders = sorted(k for k, ks in keyspaces.items() if k != ks_name and src_table in ks.tables)
            if not holders:
                self.problem(path, f"source {source!r} references a table that is not in the VSchema")
                continue
            if len(holders) > 1:
                self.problem(path, f"source {source!r} is in keyspaces {', '.join(holders)}: qualify it")
                continue
            target = keyspaces[holders[0]].tables[src_table]
            if target.type not in ("", "reference"):
                self.problem(path, f"source {source!r} may not be a table of type {target.type!r}")
            elif target.source:
                self.problem(path, f"reference chains are not allowed: {tname} => {source} => {target.source}")
            key = (ks_name, target.qualified_name)
            if key in seen:
                self.problem(
                    path, f"source {source!r} is referenced twice in keyspace {ks_name!r}: {seen[key]}, {tname}"
                )
            seen.setdefault(key, tname)
