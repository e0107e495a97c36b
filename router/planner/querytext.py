"""Per-shard SQL from a (rewritten) sqlglot tree: keyspace qualifiers removed, the backend's dialect, value slots.
"""
from __future__ import annotations

from sqlglot import exp

from router.planner.parse import dialect as sqlglot_dialect
from router.planner.semantics import TableRef
from router.planner.sqltext import SqlTemplate, template_from_generated
from sharding.errors import UnsupportedError


def strip_keyspaces(tables: list[TableRef]) -> bool:
    """Remove keyspace qualifiers (shards hold the table under their own database) and apply routing-rule
    renames (``route1`` → ``user AS route1``). Returns whether the tree changed."""
    changed = False
    for ref in tables:
        if ref.kind != "vschema":
            continue
        node = ref.node
        if ref.qualified and node.args.get("db") is not None:
            node.set("db", None)
            changed = True
        if ref.table is not None and ref.table.name != ref.name:
            if not node.alias:
                node.set("alias", exp.TableAlias(this=exp.to_identifier(ref.name)))
            node.set("this", exp.to_identifier(ref.table.name))
            changed = True
    return changed


def placeholder_count(tree: exp.Expression) -> int:
    return sum(1 for p in tree.find_all(exp.Placeholder) if p.name.startswith("v") and p.name[1:].isdigit())


def build_template(tree: exp.Expression, backend_dialect: str) -> SqlTemplate:
    """The tree's SQL in the backend's dialect, split at its ``:vN`` placeholders."""
    try:
        sql = tree.sql(dialect=sqlglot_dialect(backend_dialect))
    except Exception as exc:  # sqlglot raises plain exceptions for constructs a dialect cannot express
        raise UnsupportedError(f"cannot write this statement for a {backend_dialect} shard: {exc}") from None
    template = template_from_generated(sql, backend_dialect, expected=placeholder_count(tree))
    if template is None:
        raise UnsupportedError("a literal in this statement looks like a placeholder; send it as a bind parameter")
    return template
