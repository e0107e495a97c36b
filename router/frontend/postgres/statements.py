"""What a statement is, read from its first words only: its command tag, and whether the frontend handles it
itself (SHOW of a reported parameter, DISCARD, DEALLOCATE, COPY) or must watch it (transaction control, SET).

Pure and cheap (no parser): it runs on every statement. The planner still reads the whole text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import cython_ext
from cython_ext.fpvalues import FingerprintError
from router.frontend.postgres import messages as M
from sharding.errors import SyntaxError_

__all__ = ["Info", "classify", "command_tag", "in_failed_transaction", "is_system_catalog_query", "split"]


@dataclass(frozen=True, slots=True)
class Info:
    word: str  # first keyword, upper case ("" for an empty statement)
    second: str  # second keyword, upper case
    kind: str  # see _KINDS below
    tag: str  # command tag without its row count ("SELECT", "INSERT", "CREATE TABLE", …)
    counted: bool  # the tag carries a row count
    name: str = ""  # SET/SHOW/RESET: the parameter name (lower case); DEALLOCATE: the statement name


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_QUOTED = re.compile(r'"((?:[^"]|"")*)"')
_CREATE_SKIP = frozenset({"OR", "REPLACE", "GLOBAL", "LOCAL", "TEMP", "TEMPORARY", "UNLOGGED", "UNIQUE",
                          "DEFAULT", "TRUSTED", "PROCEDURAL", "RECURSIVE", "CONSTRAINT"})
_TWO_WORD_OBJECTS = frozenset({"MATERIALIZED", "FOREIGN", "EVENT", "ACCESS", "TEXT", "USER", "OPERATOR"})
_COUNTED = {"SELECT": "SELECT", "VALUES": "SELECT", "TABLE": "SELECT", "UPDATE": "UPDATE", "DELETE": "DELETE",
            "MERGE": "MERGE", "FETCH": "FETCH", "MOVE": "MOVE", "COPY": "COPY", "INSERT": "INSERT"}
_SIMPLE_TAGS = {
    "BEGIN": ("begin", "BEGIN"), "COMMIT": ("commit", "COMMIT"), "END": ("commit", "COMMIT"),
    "ABORT": ("rollback", "ROLLBACK"), "SAVEPOINT": ("savepoint", "SAVEPOINT"),
    "RELEASE": ("release", "RELEASE"), "SET": ("set", "SET"), "RESET": ("reset", "RESET"),
    "SHOW": ("show", "SHOW"), "TRUNCATE": ("ddl", "TRUNCATE TABLE"), "VACUUM": ("ddl", "VACUUM"),
    "ANALYZE": ("ddl", "ANALYZE"), "ANALYSE": ("ddl", "ANALYZE"), "GRANT": ("ddl", "GRANT"),
    "REVOKE": ("ddl", "REVOKE"), "COMMENT": ("ddl", "COMMENT"), "CLUSTER": ("ddl", "CLUSTER"),
    "REINDEX": ("ddl", "REINDEX"), "LOCK": ("other", "LOCK TABLE"), "EXPLAIN": ("rows", "EXPLAIN"),
    "VEXPLAIN": ("rows", "VEXPLAIN"), "USE": ("use", "USE"), "CHECKPOINT": ("other", "CHECKPOINT"),
    "LISTEN": ("other", "LISTEN"), "UNLISTEN": ("other", "UNLISTEN"), "NOTIFY": ("other", "NOTIFY"),
    "DO": ("other", "DO"), "CALL": ("rows", "CALL"), "PREPARE": ("other", "PREPARE"),
    "EXECUTE": ("rows", "SELECT"), "DECLARE": ("other", "DECLARE CURSOR"), "CLOSE": ("other", "CLOSE CURSOR"),
    "REFRESH": ("ddl", "REFRESH MATERIALIZED VIEW"), "SECURITY": ("ddl", "SECURITY LABEL"),
    "IMPORT": ("ddl", "IMPORT FOREIGN SCHEMA"), "REASSIGN": ("ddl", "REASSIGN OWNED"),
    "LOAD": ("other", "LOAD"),
}


def _skip_space(sql: str, i: int) -> int:
    n = len(sql)
    while i < n:
        c = sql[i]
        if c.isspace() or c == "(":
            i += 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        else:
            break
    return i


def _words(sql: str, count: int) -> list[str]:
    out: list[str] = []
    i = 0
    while len(out) < count:
        i = _skip_space(sql, i)
        m = _WORD.match(sql, i)
        if m is None:
            break
        out.append(m.group(0).upper())
        i = m.end()
    return out


def _name_after(sql: str, keyword_count: int) -> str:
    """The identifier after the first ``keyword_count`` words (SET/SHOW/RESET name), lower-cased unless quoted."""
    i = 0
    for _ in range(keyword_count):
        i = _skip_space(sql, i)
        m = _WORD.match(sql, i)
        if m is None:
            return ""
        i = m.end()
    i = _skip_space(sql, i)
    m = _QUOTED.match(sql, i)
    if m is not None:
        return m.group(1).replace('""', '"')
    m = re.compile(r"[A-Za-z_][A-Za-z0-9_$.]*").match(sql, i)
    return m.group(0).lower() if m else ""


def _main_of_with(sql: str) -> str:
    """The statement a ``WITH`` query ends in: the first DML/SELECT keyword outside parentheses and strings."""
    depth, i, n = 0, 0, len(sql)
    seen_with = False
    while i < n:
        c = sql[i]
        if c == "(":
            depth += 1
            i += 1
        elif c == ")":
            depth -= 1
            i += 1
        elif c == "'":
            j = i + 1
            while j < n:
                if sql[j] == "'" and sql[j + 1:j + 2] != "'":
                    break
                j += 2 if sql[j] == "'" else 1
            i = j + 1
        elif c == '"':
            j = sql.find('"', i + 1)
            i = n if j < 0 else j + 1
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "/" and sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            m = _WORD.match(sql, i)
            if m is None:
                i += 1
                continue
            word = m.group(0).upper()
            i = m.end()
            if depth == 0:
                if word == "WITH" and not seen_with:
                    seen_with = True
                elif word in ("SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE"):
                    return word
    return "SELECT"


def classify(sql: str) -> Info:
    """The ``Info`` of one statement (cached for texts up to 4 KiB: prepared statements and hot simple queries
    repeat, and a cache of big texts would hold too much memory)."""
    if len(sql) <= 4096:
        return _classify_cached(sql)
    return _classify(sql)


def _classify(sql: str) -> Info:
    words = _words(sql, 3)
    if not words:
        return Info("", "", "empty", "", False)
    word = words[0]
    second = words[1] if len(words) > 1 else ""
    third = words[2] if len(words) > 2 else ""
    if word == "WITH":
        main = _main_of_with(sql)
        kind = "rows" if main in ("SELECT", "VALUES", "TABLE") else "dml"
        return Info(word, second, kind, _COUNTED[main], True)
    if word in _COUNTED:
        tag = _COUNTED[word]
        if word == "COPY":
            return Info(word, second, "copy", "COPY", True)
        kind = "rows" if tag == "SELECT" else "dml"
        return Info(word, second, kind, tag, True)
    if word == "START":
        return Info(word, second, "begin", "START TRANSACTION", False)
    if word == "ROLLBACK":
        if second == "TO" or (second in ("WORK", "TRANSACTION") and third == "TO"):
            return Info(word, second, "rollback_to", "ROLLBACK", False)
        if second == "PREPARED":
            return Info(word, second, "other", "ROLLBACK PREPARED", False)
        return Info(word, second, "rollback", "ROLLBACK", False)
    if word == "COMMIT" and second == "PREPARED":
        return Info(word, second, "other", "COMMIT PREPARED", False)
    if word in ("SET", "RESET", "SHOW"):
        if word == "SET" and second in ("SESSION", "LOCAL"):
            if third in ("CHARACTERISTICS", "AUTHORIZATION"):
                return Info(word, second, "set", "SET", False)
            return Info(word, second, "set", "SET", False, _name_after(sql, 2))
        if word == "SET" and second in ("TRANSACTION", "CONSTRAINTS", "ROLE"):
            return Info(word, second, "set", "SET", False)
        if word == "SET" and second == "TIME" and third == "ZONE":
            return Info(word, second, "set", "SET", False, "timezone")
        if word == "SHOW" and second == "SHARDGATE":
            return Info(word, second, "show_shardgate", "SHOW", False, third.lower())
        if word == "SHOW" and second == "TIME" and third == "ZONE":
            return Info(word, second, "show", "SHOW", False, "timezone")
        kind, tag = _SIMPLE_TAGS[word]
        return Info(word, second, kind, tag, False, _name_after(sql, 1))
    if word == "DISCARD":
        return Info(word, second, "discard", f"DISCARD {second}".strip(), False)
    if word == "DEALLOCATE":
        prepare = second == "PREPARE"
        target = third if prepare else second
        if target == "ALL":
            return Info(word, second, "deallocate", "DEALLOCATE ALL", False, "")
        return Info(word, second, "deallocate", "DEALLOCATE", False, _name_after(sql, 2 if prepare else 1))
    if word == "ALTER" and second == "VSCHEMA":
        return Info(word, second, "vschema", "ALTER VSCHEMA", False)
    if word in ("CREATE", "DROP", "ALTER"):
        rest = _words(sql, 12)[1:]
        while rest and rest[0] in _CREATE_SKIP:
            rest.pop(0)
        if not rest:
            return Info(word, second, "ddl", word, False)
        obj = rest[0]
        if obj in _TWO_WORD_OBJECTS and len(rest) > 1:
            obj = f"{obj} {rest[1]}"
            if obj in ("TEXT SEARCH", "FOREIGN DATA") and len(rest) > 2:
                obj = f"{obj} {rest[2]}"
        return Info(word, second, "ddl", f"{word} {obj}", False)
    entry = _SIMPLE_TAGS.get(word)
    if entry is not None:
        return Info(word, second, entry[0], entry[1], False)
    return Info(word, second, "other", word, False)


_classify_cached = lru_cache(maxsize=4096)(_classify)


def command_tag(info: Info, rows: int) -> str:
    if not info.counted:
        return info.tag
    if info.tag == "INSERT":
        return f"INSERT 0 {rows}"
    return f"{info.tag} {rows}"


_FROM_TARGETS = re.compile(r'\b(?:FROM|JOIN)\s+((?:"[^"]+"|[A-Za-z_][\w$]*)(?:\s*\.\s*(?:"[^"]+"|[A-Za-z_][\w$]*))?)',
                           re.IGNORECASE)
_CTE_NAMES = re.compile(r'(?:\bWITH(?:\s+RECURSIVE)?|,)\s*("[^"]+"|[A-Za-z_][\w$]*)\s*(?:\([^()]*\))?\s+AS\s*'
                        r'(?:NOT\s+)?(?:MATERIALIZED\s*)?\(', re.IGNORECASE)
_IDENTIFIERS = re.compile(r'"([^"]+)"|([A-Za-z_][\w$]*)')
_SYSTEM_PREFIXES = ("pg_catalog.", "information_schema.")
_NOT_RELATIONS = ("lateral", "unnest", "generate_series", "only", "rows")


def is_system_catalog_query(sql: str, user_tables: frozenset[str] = frozenset()) -> bool:
    """Every relation the text reads (after FROM / JOIN) is a system catalog (``pg_catalog.*``,
    ``information_schema.*``, an unqualified ``pg_*`` relation) or one of its own CTEs, it reads at least one
    catalog, and it names none of ``user_tables`` (the sharded keyspaces' tables) anywhere. Such a query (psql's
    ``\\d``, drivers' type introspection) is answered by one shard, as PostgreSQL itself would."""
    if user_tables:
        for m in _IDENTIFIERS.finditer(sql):
            word = m.group(1) if m.group(1) is not None else m.group(2).lower()
            if word in user_tables:
                return False
    ctes = {m.group(1).strip('"').lower() for m in _CTE_NAMES.finditer(sql)}
    found = False
    for m in _FROM_TARGETS.finditer(sql):
        name = re.sub(r"\s+", "", m.group(1)).replace('"', "").lower()
        if name.startswith(_SYSTEM_PREFIXES) or ("." not in name and name.startswith("pg_")):
            found = True
            continue
        if name in ctes or name in _NOT_RELATIONS:
            continue
        return False
    return found


def in_failed_transaction() -> M.PgError:
    """PostgreSQL's 25P02: after an error in a transaction block only ROLLBACK (or COMMIT) is accepted."""
    return M.PgError("current transaction is aborted, commands ignored until end of transaction block",
                     sqlstate="25P02")


def split(sql: str) -> list[str]:
    """The statements of a multi-statement text; an unterminated string or comment is a syntax error (42601)."""
    try:
        return _fp.split_statements(sql, _fp.POSTGRES)  # type: ignore[no-any-return]
    except FingerprintError as exc:
        raise SyntaxError_(f"syntax error at position {exc.position + 1}: {exc.message}",
                           position=exc.position + 1) from None


_fp = cython_ext.fingerprint
