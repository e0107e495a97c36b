"""Reading the rules of a VSchema: table routing rules, shard and keyspace routing rules, mirror rules.

Their shape is checked here (problems); whether they point somewhere is a warning, as in Vitess, where a rule that
cannot route fails only the queries that use it (``VSchema.routing_rule_errors``).
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from sharding.keyrange import is_valid_shard_name
from sharding.vschema_model import (
    TABLET_TYPES,
    Keyspace,
    KeyspaceRoutingRule,
    MirrorRule,
    RoutingRule,
    ShardRoutingRule,
)
from sharding.vschema_reader import Fields, JsonReader, join

__all__ = ["RulesReader"]

_FROM_TABLE = re.compile(rf"(?:[^.@]+\.)?[^.@]+(?:@(?:{'|'.join(TABLET_TYPES)}))?")


class RulesReader(JsonReader):
    """The ``*_rules`` sections of a VSchema document."""

    def rules(self, f: Fields, name: str) -> Iterator[tuple[dict[str, Any], str]]:
        """The objects of ``<name>.rules``, with their paths (lazily, so problems come in document order)."""
        section, path = self.section(f, name, "", ("rules",))
        items, rules_path = self.array(section, "rules", path)
        for i, item in enumerate(items):
            ipath = f"{rules_path}[{i}]"
            obj = self.obj(item, ipath)
            if obj is not None:
                yield obj, ipath

    def routing_rules(self, f: Fields) -> tuple[tuple[RoutingRule, ...], list[str]]:
        rules: list[RoutingRule] = []
        paths: list[str] = []
        for obj, path in self.rules(f, "routing_rules"):
            rf = self.fields(obj, path, ("from_table", "to_tables"))
            from_table = self.string(rf, "from_table", path, required=True)
            to_tables = self.strings(rf, "to_tables", path)
            if from_table and not _FROM_TABLE.fullmatch(from_table):
                self.warn(rf["from_table"][1], f"{from_table!r} never matches: expected [keyspace.]table[@tablet_type]")
            if from_table:
                rules.append(RoutingRule(from_table, to_tables))
                paths.append(rf.get("to_tables", (None, path))[1])
        return tuple(rules), paths

    def shard_routing_rules(self, f: Fields, keyspaces: Mapping[str, Keyspace]) -> tuple[ShardRoutingRule, ...]:
        out: list[ShardRoutingRule] = []
        for obj, path in self.rules(f, "shard_routing_rules"):
            rf = self.fields(obj, path, ("from_keyspace", "to_keyspace", "shard"))
            from_ks = self.string(rf, "from_keyspace", path, required=True)
            to_ks = self.string(rf, "to_keyspace", path, required=True)
            shard = self.string(rf, "shard", path, required=True)
            if shard and not is_valid_shard_name(shard):
                self.problem(rf["shard"][1], f"invalid shard name {shard!r} (expected a key range such as -80)")
            if to_ks and to_ks not in keyspaces:
                self.warn(rf["to_keyspace"][1], f"keyspace {to_ks!r} is not in the VSchema")
            if from_ks and to_ks and shard:
                out.append(ShardRoutingRule(from_ks, to_ks, shard))
        return tuple(out)

    def keyspace_routing_rules(
        self, f: Fields, keyspaces: Mapping[str, Keyspace]
    ) -> tuple[KeyspaceRoutingRule, ...]:
        out: list[KeyspaceRoutingRule] = []
        seen: set[str] = set()
        for obj, path in self.rules(f, "keyspace_routing_rules"):
            rf = self.fields(obj, path, ("from_keyspace", "to_keyspace"))
            from_ks = self.string(rf, "from_keyspace", path, required=True)
            to_ks = self.string(rf, "to_keyspace", path, required=True)
            if from_ks in seen:
                self.warn(rf["from_keyspace"][1], f"a second rule for keyspace {from_ks!r}: the last one wins")
            seen.add(from_ks)
            if to_ks and to_ks not in keyspaces:
                self.warn(rf["to_keyspace"][1], f"keyspace {to_ks!r} is not in the VSchema")
            if from_ks and to_ks:
                out.append(KeyspaceRoutingRule(from_ks, to_ks))
        return tuple(out)

    def mirror_rules(self, f: Fields) -> tuple[MirrorRule, ...]:
        out: list[MirrorRule] = []
        for obj, path in self.rules(f, "mirror_rules"):
            rf = self.fields(obj, path, ("from_table", "to_table", "percent"))
            from_table = self.string(rf, "from_table", path, required=True)
            to_table = self.string(rf, "to_table", path, required=True)
            percent, ppath = rf.get("percent", (None, join(path, "percent")))
            if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 < percent <= 100:
                self.problem(ppath, f"expected a percentage in (0, 100], got {percent!r}")
            elif from_table and to_table:
                out.append(MirrorRule(from_table, to_table, float(percent)))
        return tuple(out)
