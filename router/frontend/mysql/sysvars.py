"""What MySQL clients ask on connect, answered by the router itself.

``SELECT @@version_comment LIMIT 1`` (the mysql CLI), ``SELECT @@session.auto_increment_increment AS
auto_increment_increment, @@character_set_client …`` (Connector/J), ``SELECT DATABASE()``, ``SELECT
CONNECTION_ID()``: a shard would answer with its own version, its own database name and its own connection id,
which are wrong through a router. ``answer_select`` recognises a SELECT made only of system variables and these
functions (one regular expression, tried only when the statement starts with SELECT and contains ``@@`` or ``(``)
and answers from ``Facts``; anything else returns None and goes to the gateway as usual (a variable we do not know
is then the shard's). ``fix_show_variables`` puts our values into the rows of a ``SHOW VARIABLES`` a shard answered.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from router.backend.result import Column, TypeCode

__all__ = ["Facts", "answer_select", "fix_show_variables", "variable_value"]

DEFAULT_SQL_MODE = "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION"


@dataclass(slots=True)
class Facts:
    """What the frontend knows of one connection when it answers."""

    connection_id: int
    user: str
    host: str = ""
    database: str | None = None
    server_version: str = "8.0.31-shardgate"
    max_allowed_packet: int = 64 << 20
    autocommit: bool = True
    in_transaction: bool = False
    isolation: str | None = None  # "READ COMMITTED"…
    read_only: bool = False
    sql_mode: str = ""
    charset: str = "utf8mb4"
    collation: str = "utf8mb4_general_ci"
    last_insert_id: int = 0
    warning_count: int = 0
    tls: bool = False
    variables: dict[str, Any] = field(default_factory=dict)  # SET name = value, kept by the session


def _isolation(f: Facts) -> str:
    level = f.isolation or f.variables.get("transaction_isolation") or f.variables.get("tx_isolation")
    return str(level or "REPEATABLE-READ").upper().replace(" ", "-")


_VARIABLES: dict[str, Callable[[Facts], Any]] = {
    "version": lambda f: f.server_version,
    "version_comment": lambda f: "shardgate: a sharding router speaking the MySQL protocol",
    "version_compile_os": lambda f: "Linux",
    "version_compile_machine": lambda f: "x86_64",
    "protocol_version": lambda f: 10,
    "max_allowed_packet": lambda f: f.max_allowed_packet,
    "autocommit": lambda f: int(f.autocommit),
    "transaction_isolation": _isolation,
    "tx_isolation": _isolation,
    "transaction_read_only": lambda f: int(f.read_only),
    "tx_read_only": lambda f: int(f.read_only),
    "sql_mode": lambda f: f.sql_mode or f.variables.get("sql_mode") or DEFAULT_SQL_MODE,
    "character_set_client": lambda f: f.charset,
    "character_set_connection": lambda f: f.charset,
    "character_set_results": lambda f: f.charset,
    "character_set_server": lambda f: "utf8mb4",
    "character_set_database": lambda f: "utf8mb4",
    "character_set_system": lambda f: "utf8mb3",
    "character_set_filesystem": lambda f: "binary",
    "collation_connection": lambda f: f.collation,
    "collation_server": lambda f: "utf8mb4_general_ci",
    "collation_database": lambda f: "utf8mb4_general_ci",
    "init_connect": lambda f: "",
    "interactive_timeout": lambda f: 28800,
    "wait_timeout": lambda f: 28800,
    "net_write_timeout": lambda f: 60,
    "net_read_timeout": lambda f: 30,
    "net_buffer_length": lambda f: 16384,
    "license": lambda f: "shardgate",
    "lower_case_table_names": lambda f: 0,
    "system_time_zone": lambda f: "UTC",
    "time_zone": lambda f: f.variables.get("time_zone", "+00:00"),
    "query_cache_size": lambda f: 0,
    "query_cache_type": lambda f: "OFF",
    "have_query_cache": lambda f: "NO",
    "performance_schema": lambda f: 0,
    "sql_select_limit": lambda f: 18446744073709551615,
    "auto_increment_increment": lambda f: 1,
    "auto_increment_offset": lambda f: 1,
    "default_storage_engine": lambda f: "InnoDB",
    "storage_engine": lambda f: "InnoDB",
    "sql_auto_is_null": lambda f: 0,
    "sql_safe_updates": lambda f: 0,
    "foreign_key_checks": lambda f: 1,
    "unique_checks": lambda f: 1,
    "lock_wait_timeout": lambda f: 31536000,
    "innodb_lock_wait_timeout": lambda f: 50,
    "div_precision_increment": lambda f: 4,
    "group_concat_max_len": lambda f: 1048576,
    "explicit_defaults_for_timestamp": lambda f: 1,
    "have_ssl": lambda f: "YES" if f.tls else "DISABLED",
    "last_insert_id": lambda f: f.last_insert_id,
    "identity": lambda f: f.last_insert_id,
    "warning_count": lambda f: f.warning_count,
    "error_count": lambda f: 0,
    "read_only": lambda f: 0,
    "session_track_gtids": lambda f: "OFF",
    "session_track_schema": lambda f: "ON",
    "session_track_state_change": lambda f: "OFF",
    "session_track_system_variables": lambda f: "autocommit,character_set_client,character_set_connection,"
                                                "character_set_results,time_zone",
    "session_track_transaction_info": lambda f: "OFF",
    "in_transaction": lambda f: int(f.in_transaction),
    "hostname": lambda f: "shardgate",
    "server_id": lambda f: 0,
    "pseudo_thread_id": lambda f: f.connection_id,
}
# In rows of SHOW VARIABLES from a shard, these are the router's rather than the shard's.
_OVERRIDE = frozenset({"version", "version_comment", "max_allowed_packet", "autocommit", "transaction_isolation",
                       "tx_isolation", "transaction_read_only", "tx_read_only", "character_set_client",
                       "character_set_connection", "character_set_results", "collation_connection", "have_ssl",
                       "hostname", "server_id", "pseudo_thread_id", "last_insert_id", "identity"})


def variable_value(name: str, facts: Facts) -> tuple[bool, Any]:
    """(known, value) of ``@@name`` for this connection."""
    key = name.lower()
    fn = _VARIABLES.get(key)
    if fn is not None:
        return True, fn(facts)
    if key in facts.variables:
        return True, facts.variables[key]
    return False, None


_FUNCTIONS: dict[str, Callable[[Facts], Any]] = {
    "database": lambda f: f.database,
    "schema": lambda f: f.database,
    "connection_id": lambda f: f.connection_id,
    "user": lambda f: f"{f.user}@{f.host}",
    "session_user": lambda f: f"{f.user}@{f.host}",
    "system_user": lambda f: f"{f.user}@{f.host}",
    "current_user": lambda f: f"{f.user}@%",
    "version": lambda f: f.server_version,
    "last_insert_id": lambda f: f.last_insert_id,
}

_COMMENT = r"(?:/\*.*?\*/|\s)*"
_ITEM = re.compile(
    r"\s*(?P<expr>@@(?:(?:global|session|local)\.)?(?P<var>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<fn>database|schema|connection_id|user|session_user|system_user|current_user|version|last_insert_id)"
    r"\s*\(\s*\)|(?P<bare>current_user)\b|(?P<num>-?\d{1,18})(?![.\w])|(?P<str>'(?:[^'\\]|'')*'))"
    r"(?:\s+(?:as\s+)?(?P<alias>`(?:[^`]|``)+`|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[A-Za-z_][A-Za-z0-9_$]*))?\s*",
    re.IGNORECASE | re.DOTALL)
_SELECT = re.compile(_COMMENT + r"select\s+(?P<items>.*?)\s*(?:limit\s+\d+\s*)?;?\s*", re.IGNORECASE | re.DOTALL)
_RESERVED_ALIAS = frozenset({"from", "where", "limit", "order", "group", "having", "union", "for", "into"})


def _unquote(alias: str) -> str:
    if alias[0] == "`":
        return alias[1:-1].replace("``", "`")
    if alias[0] in "'\"":
        return alias[1:-1]
    return alias


def answer_select(sql: str, facts: Facts) -> tuple[tuple[Column, ...], list[tuple[Any, ...]]] | None:
    """Columns and the one row of a SELECT of system variables / session functions, or None when it is not one."""
    m = _SELECT.fullmatch(sql)
    if m is None:
        return None
    items = m.group("items")
    names: list[str] = []
    values: list[Any] = []
    pos = 0
    n = len(items)
    while pos <= n:
        im = _ITEM.match(items, pos)
        if im is None:
            return None
        alias = im.group("alias")
        if alias is not None and alias.lower() in _RESERVED_ALIAS:
            return None
        expr = im.group("expr")
        if im.group("var") is not None:
            known, value = variable_value(im.group("var"), facts)
            if not known:
                return None
        elif im.group("num") is not None:
            value = int(im.group("num"))
        elif im.group("str") is not None:
            value = expr = im.group("str")[1:-1].replace("''", "'")
        else:
            fn = (im.group("fn") or im.group("bare")).lower()
            value = _FUNCTIONS[fn](facts)
        names.append(_unquote(alias) if alias else expr)
        values.append(value)
        pos = im.end()
        if pos >= n:
            break
        if items[pos] != ",":
            return None
        pos += 1
    columns = tuple(_column(name, v) for name, v in zip(names, values, strict=True))
    return columns, [tuple(values)]


def _column(name: str, value: Any) -> Column:
    if isinstance(value, int) and not isinstance(value, bool):
        unsigned = value >= 1 << 63
        return Column(name=name, type=TypeCode.BIGINT, engine="router", backend_type=0, backend_type_name="bigint",
                      nullable=False, unsigned=unsigned, length=21)
    return Column(name=name, type=TypeCode.VARCHAR, engine="router", backend_type=0, backend_type_name="varchar",
                  nullable=value is None, length=1024, charset="utf8mb4")


def fix_show_variables(rows: Sequence[tuple[Any, ...]], facts: Facts) -> list[tuple[Any, ...]]:
    """Rows of ``SHOW VARIABLES`` (name, value) with the router's own values where the router owns the setting."""
    out = []
    for row in rows:
        if len(row) >= 2 and isinstance(row[0], str) and row[0].lower() in _OVERRIDE:
            _, value = variable_value(row[0], facts)
            row = (row[0], str(value), *row[2:])
        out.append(row)
    return out
