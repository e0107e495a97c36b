"""The planner's front door for statements sqlglot should not see: transaction control, SET / RESET, USE, SHOW,
VEXPLAIN, ``SELECT NEXT … FROM`` a sequence, and Vitess's ``ALTER VSCHEMA``.

sqlglot mis-parses several of these (``SAVEPOINT a`` comes back as an alias, ``SHOW search_path`` as
``exp.Command``), so ``parse_special(sql, dialect)`` recognises them first and returns one of the frozen statement
dataclasses below, or None when the text is not one of ours (the caller then uses sqlglot). A malformed statement
of ours raises ``SyntaxError_`` with a 1-based ``position``. Forms that begin like ours but would be wrong to hand
to sqlglot (``COMMIT PREPARED``, ``VEXPLAIN TRACE``) raise ``UnsupportedError`` naming the construct.

The function runs on every statement, so it starts with one regular-expression match on the first word; only the
few statements whose first word is one of ours (and, for SELECT, whose second word is NEXT) reach the tokenizer.
Identifiers keep their spelling; keywords match case-insensitively and only when unquoted. Values of SET become
Python values: ``int`` / ``Decimal`` / ``float`` numbers, ``str`` for strings, ``Word`` (a ``str``) for unquoted
words such as ON, OFF, DEFAULT, ``bool`` for TRUE/FALSE, None for NULL, ``Arg`` for a bind placeholder, and
``RawExpr`` (the original text) for any other expression.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeAlias

from router.planner.values import Arg
from sharding.errors import InvalidValueError, ShardgateError, SyntaxError_, UnsupportedError
from sharding.keyrange import KeyRange

__all__ = [
    "AddAutoIncrement",
    "AddColumnVindex",
    "AddSequence",
    "AddTable",
    "Assignment",
    "Begin",
    "Commit",
    "CreateVindex",
    "DropAutoIncrement",
    "DropColumnVindex",
    "DropSequence",
    "DropTable",
    "DropVindex",
    "RawExpr",
    "ReleaseSavepoint",
    "Reset",
    "Rollback",
    "RollbackToSavepoint",
    "Savepoint",
    "SelectNext",
    "SetCharset",
    "SetNames",
    "SetStatement",
    "SetTransaction",
    "Show",
    "Statement",
    "TableName",
    "Use",
    "VExplain",
    "VSchemaStatement",
    "Word",
    "parse_special",
]


# --- values and names ---------------------------------------------------------------------------------------
class Word(str):
    """An unquoted word used as a value (``ON``, ``OFF``, ``DEFAULT``, ``utf8mb4``), as written. It is a ``str``, so
    ``Word("ON") == "ON"``; ``isinstance(v, Word)`` tells the keyword ``DEFAULT`` from the string ``'DEFAULT'``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Word({str.__repr__(self)})"


@dataclass(frozen=True, slots=True)
class RawExpr:
    """An expression that is not a plain value (``CONCAT(@@sql_mode, ',X')``, ``(SELECT 1)``): its original text."""

    text: str


@dataclass(frozen=True, slots=True)
class TableName:
    """``name`` or ``keyspace.name``, unquoted; ``keyspace`` is None when the statement did not qualify it."""

    name: str
    keyspace: str | None = None

    def qualified(self, default_keyspace: str | None = None) -> str:
        keyspace = self.keyspace or default_keyspace
        return f"{keyspace}.{self.name}" if keyspace else self.name


# --- transaction control ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Begin:
    """BEGIN / START TRANSACTION with its characteristics; None means "not given" (the session default)."""

    read_only: bool | None = None
    isolation: str | None = None  # "SERIALIZABLE", "REPEATABLE READ", "READ COMMITTED", "READ UNCOMMITTED"
    deferrable: bool | None = None  # PostgreSQL [NOT] DEFERRABLE
    consistent_snapshot: bool = False  # MySQL WITH CONSISTENT SNAPSHOT


@dataclass(frozen=True, slots=True)
class Commit:
    """COMMIT [WORK] (PostgreSQL also END); ``chain``: AND CHAIN starts the next transaction; ``release``: MySQL
    RELEASE closes the connection afterwards."""

    chain: bool = False
    release: bool = False


@dataclass(frozen=True, slots=True)
class Rollback:
    """ROLLBACK [WORK] (PostgreSQL also ABORT)."""

    chain: bool = False
    release: bool = False


@dataclass(frozen=True, slots=True)
class Savepoint:
    name: str


@dataclass(frozen=True, slots=True)
class ReleaseSavepoint:
    name: str


@dataclass(frozen=True, slots=True)
class RollbackToSavepoint:
    name: str


# --- session settings ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Assignment:
    """One ``name = value``. ``name`` is lower-cased (system variable and GUC names are case-insensitive).

    ``scope``: ``session`` (MySQL SESSION/LOCAL/``@@``, PostgreSQL SESSION or none), ``global``, ``persist``,
    ``persist_only`` (MySQL), ``local`` (PostgreSQL SET LOCAL: until the end of the transaction) or ``user``
    (MySQL ``@uservar``). A PostgreSQL list value (``search_path TO a, b``) is a tuple.
    """

    name: str
    value: Any
    scope: str = "session"


@dataclass(frozen=True, slots=True)
class SetNames:
    """MySQL ``SET NAMES cs [COLLATE c]``; ``charset`` None for ``SET NAMES DEFAULT``."""

    charset: str | None
    collation: str | None = None


@dataclass(frozen=True, slots=True)
class SetCharset:
    """MySQL ``SET CHARACTER SET cs`` / ``SET CHARSET cs``; None for DEFAULT."""

    charset: str | None


@dataclass(frozen=True, slots=True)
class SetStatement:
    items: tuple[Assignment | SetNames | SetCharset, ...]


@dataclass(frozen=True, slots=True)
class SetTransaction:
    """Transaction characteristics. ``scope``: ``next`` (MySQL ``SET TRANSACTION``: the next transaction only),
    ``session``, ``global`` (MySQL), or ``transaction`` (PostgreSQL ``SET TRANSACTION``: the current one)."""

    scope: str
    isolation: str | None = None
    read_only: bool | None = None
    deferrable: bool | None = None


@dataclass(frozen=True, slots=True)
class Reset:
    """PostgreSQL ``RESET name``; ``name`` None for ``RESET ALL``."""

    name: str | None


@dataclass(frozen=True, slots=True)
class Use:
    """``USE ks``, ``USE `ks:-80```, ``USE `ks[-80]```, ``USE ks@replica``, ``USE @rdonly``.

    ``target`` is the shard name (``target_kind == "shard"``), key range (``"key_range"``) or keyspace id in hex
    (``"keyspace_id"``), in Vitess's notation; ``keyspace`` is ``""`` when only a tablet type was given."""

    keyspace: str
    target: str | None = None
    target_kind: str | None = None
    tablet_type: str | None = None  # primary | replica | rdonly


# --- SHOW ---------------------------------------------------------------------------------------------------
SHOW_KINDS = frozenset(
    {
        "databases", "keyspaces", "tables", "columns", "create_table", "variables", "status", "warnings", "errors",
        "index", "engines", "collation", "charset", "processlist",
        # PostgreSQL: SHOW name / SHOW ALL
        "variable", "all_variables",
        # answered by the router itself
        "shardgate_keyspaces", "shardgate_shards", "shardgate_vschema", "shardgate_vschema_tables",
        "shardgate_vschema_vindexes", "shardgate_pools", "shardgate_clients", "shardgate_queries", "shardgate_stats",
        "shardgate_rules",
        # RELOAD: the admin console's re-read of the config file (router.admin_reload), planned as an admin SHOW
        "shardgate_reload",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Show:
    """A SHOW statement; ``kind`` is one of ``SHOW_KINDS``.

    ``table``: COLUMNS / CREATE TABLE / INDEX and ``SHOW VSCHEMA VINDEXES ON t``; ``database``: the ``FROM db``;
    ``like`` the LIKE pattern; ``where`` the text of a WHERE condition; ``name`` the PostgreSQL variable.
    """

    kind: str
    full: bool = False
    scope: str | None = None  # VARIABLES / STATUS: "global" | "session"
    table: TableName | None = None
    database: str | None = None
    like: str | None = None
    where: str | None = None
    name: str | None = None
    limit: int | None = None  # WARNINGS / ERRORS LIMIT [offset,] n
    offset: int = 0


# --- VEXPLAIN and sequences ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class VExplain:
    """``VEXPLAIN [PLAN|QUERIES|ALL] stmt``: ``sql`` is the inner statement's original text, which starts at
    ``offset`` (0-based) in the outer text (to map an inner syntax error's position back)."""

    mode: str  # "plan" | "queries" | "all"
    sql: str
    offset: int


@dataclass(frozen=True, slots=True)
class SelectNext:
    """``SELECT NEXT n VALUES FROM seq`` / ``SELECT NEXT VALUE FROM seq``: reserve ``count`` ids of a sequence.

    ``count`` is an ``int`` or, for a placeholder (``:vN``, ``?``, ``$N``), the ``Arg`` bound at execution."""

    table: TableName
    count: int | Arg = 1


# --- ALTER VSCHEMA ------------------------------------------------------------------------------------------
class VSchemaStatement:
    """Base of the ALTER VSCHEMA statements. ``describe()`` gives Vitess's canonical text."""

    __slots__ = ()

    @property
    def target(self) -> TableName:
        """The table the statement names (for CREATE / DROP VINDEX, the vindex); its keyspace may be None."""
        table = getattr(self, "table", None)
        return table if isinstance(table, TableName) else getattr(self, "name")  # noqa: B009

    def describe(self) -> str:  # pragma: no cover - every subclass overrides
        raise NotImplementedError


def _params_text(vtype: str | None, params: tuple[tuple[str, str], ...]) -> str:
    out = f" using {vtype}" if vtype else ""
    if params:
        out += " with " + ", ".join(f"{k}={v}" for k, v in params)
    return out


@dataclass(frozen=True, slots=True)
class CreateVindex(VSchemaStatement):
    """``CREATE VINDEX [ks.]name USING type [WITH k=v, …]``; ``params`` in written order (``owner`` among them)."""

    name: TableName
    type: str
    params: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        return f"alter vschema create vindex {self.name.qualified()}{_params_text(self.type, self.params)}"


@dataclass(frozen=True, slots=True)
class DropVindex(VSchemaStatement):
    name: TableName

    def describe(self) -> str:
        return f"alter vschema drop vindex {self.name.qualified()}"


@dataclass(frozen=True, slots=True)
class AddTable(VSchemaStatement):
    table: TableName

    def describe(self) -> str:
        return f"alter vschema add table {self.table.qualified()}"


@dataclass(frozen=True, slots=True)
class DropTable(VSchemaStatement):
    table: TableName

    def describe(self) -> str:
        return f"alter vschema drop table {self.table.qualified()}"


@dataclass(frozen=True, slots=True)
class AddColumnVindex(VSchemaStatement):
    """``ON t ADD VINDEX name(col, …) [USING type] [WITH …]``; ``type`` None means an existing vindex."""

    table: TableName
    name: str
    columns: tuple[str, ...]
    type: str | None = None
    params: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        cols = ", ".join(self.columns)
        return (
            f"alter vschema on {self.table.qualified()} add vindex {self.name}({cols})"
            f"{_params_text(self.type, self.params)}"
        )


@dataclass(frozen=True, slots=True)
class DropColumnVindex(VSchemaStatement):
    table: TableName
    name: str

    def describe(self) -> str:
        return f"alter vschema on {self.table.qualified()} drop vindex {self.name}"


@dataclass(frozen=True, slots=True)
class AddSequence(VSchemaStatement):
    table: TableName

    def describe(self) -> str:
        return f"alter vschema add sequence {self.table.qualified()}"


@dataclass(frozen=True, slots=True)
class DropSequence(VSchemaStatement):
    table: TableName

    def describe(self) -> str:
        return f"alter vschema drop sequence {self.table.qualified()}"


@dataclass(frozen=True, slots=True)
class AddAutoIncrement(VSchemaStatement):
    table: TableName
    column: str
    sequence: TableName

    def describe(self) -> str:
        return (
            f"alter vschema on {self.table.qualified()} add auto_increment {self.column} "
            f"using {self.sequence.qualified()}"
        )


@dataclass(frozen=True, slots=True)
class DropAutoIncrement(VSchemaStatement):
    table: TableName

    def describe(self) -> str:
        return f"alter vschema on {self.table.qualified()} drop auto_increment"


Statement: TypeAlias = (
    Begin | Commit | Rollback | Savepoint | ReleaseSavepoint | RollbackToSavepoint
    | SetStatement | SetTransaction | Reset | Use | Show | VExplain | SelectNext
    | CreateVindex | DropVindex | AddTable | DropTable | AddColumnVindex | DropColumnVindex
    | AddSequence | DropSequence | AddAutoIncrement | DropAutoIncrement
)  # fmt: skip


# --- the quick look -----------------------------------------------------------------------------------------
# First words of ours per dialect. The quick look may let through more than is ours (the parser has the last
# word), never less.
_COMMON = frozenset(
    {"BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET", "SHOW", "USE", "VEXPLAIN", "SELECT",
     "ALTER", "RELOAD"}
)  # fmt: skip
_FIRST_WORDS = {"mysql": _COMMON, "postgres": _COMMON | {"END", "ABORT", "RESET"}}


def _quick_look(words: frozenset[str]) -> re.Pattern[str]:
    """One match decides whether to tokenize: blanks and comments of either dialect are skipped, then one of our
    first words must follow (SELECT only with NEXT as its next word), or something the regex does not follow
    (a nested or executable comment) that the tokenizer must judge."""
    # A block comment that opens another one (nested in PostgreSQL) or is executable is not skipped here.
    gap = r"(?:\s+|/\*(?![!M])(?:(?!/\*).)*?\*/|--[^\n]*|\#[^\n]*)"
    words_alt = "|".join(sorted(w.lower() for w in words if w != "SELECT"))
    end = r"(?![a-z0-9_$])"
    return re.compile(
        rf"{gap}*+(?:[/*#-]|(?:{words_alt}){end}|select{gap}+next{end})", re.IGNORECASE | re.DOTALL | re.ASCII
    )


_QUICK = {dialect: _quick_look(words) for dialect, words in _FIRST_WORDS.items()}


def parse_special(sql: str, dialect: str) -> Statement | None:
    """The statement ``sql`` holds when it is one of ours, else None. ``dialect``: ``"mysql"`` | ``"postgres"``.

    Raises ``SyntaxError_`` (1-based ``position``) for a malformed statement of ours and ``UnsupportedError`` for a
    form of ours that shardgate does not run.
    """
    quick = _QUICK.get(dialect)
    if quick is None:
        raise ValueError(f"unknown dialect {dialect!r}")
    if quick.match(sql) is None:
        return None
    return _Parser(sql, dialect == "postgres").statement(_FIRST_WORDS[dialect])


# --- tokens -------------------------------------------------------------------------------------------------
_EOF, _WORD, _QNAME, _STRING, _NUMBER, _PARAM, _OP, _LITERAL = range(8)  # _LITERAL: other literals (0x1F)
_BLANK = " \t\r\n\f\v"
_MYSQL_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "%": "\\%", "_": "\\_"}
_PG_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_VN = re.compile(r"v([1-9][0-9]*)")
_MYSQL_HEX_BIT = re.compile(r"0x[0-9a-fA-F]+|0b[01]+")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")


def _ident_start(c: str) -> bool:
    return c.isalpha() or c == "_" or c > "\x7f"


def _ident_char(c: str) -> bool:
    return c.isalnum() or c == "_" or c == "$" or c > "\x7f"


class _Tok:
    """A token: ``kw`` is the upper-cased text of an unquoted word (keywords match only those), else ``""``."""

    __slots__ = ("end", "kind", "kw", "start", "text", "value")

    def __init__(self, kind: int, value: Any, start: int, end: int, text: str) -> None:
        self.kind = kind
        self.value = value
        self.start = start
        self.end = end
        self.text = text
        self.kw = text.upper() if kind == _WORD and text.isascii() else ""


def _syntax(message: str, index: int) -> SyntaxError_:
    return SyntaxError_(f"syntax error at position {index + 1}: {message}", position=index + 1)


class _Lexer:
    """Tokens on demand, with the dialect's comments and quoting. MySQL ``/*! … */`` (and MariaDB ``/*M! … */``)
    executable comments are read as code, as the server does."""

    def __init__(self, sql: str, pg: bool) -> None:
        self.sql = sql
        self.pg = pg
        self.pos = 0
        self.in_exec = False
        self.qmarks = 0
        self.buf: list[_Tok] = []

    def peek(self, k: int = 0) -> _Tok:
        while len(self.buf) <= k:
            self.buf.append(self._lex())
        return self.buf[k]

    def take(self) -> _Tok:
        tok = self.peek()
        del self.buf[0]
        return tok

    def _skip(self, i: int) -> int:
        sql, n, pg = self.sql, len(self.sql), self.pg
        while i < n:
            c = sql[i]
            if c in _BLANK:
                i += 1
            elif c == "/" and sql.startswith("/*", i):
                if not pg and not self.in_exec and (sql.startswith("/*!", i) or sql.startswith("/*M!", i)):
                    i += 3 if sql[i + 2] == "!" else 4
                    while i < n and sql[i].isdigit():  # the version the code needs
                        i += 1
                    self.in_exec = True
                else:
                    i = self._block_comment(i)
            elif c == "*" and self.in_exec and sql.startswith("*/", i):
                self.in_exec = False
                i += 2
            elif (c == "-" and sql.startswith("--", i) and (pg or i + 2 >= n or sql[i + 2] in _BLANK)) or (
                c == "#" and not pg
            ):
                j = sql.find("\n", i)
                i = n if j < 0 else j + 1
            else:
                break
        return i

    def _block_comment(self, i: int) -> int:
        sql, depth, j = self.sql, 1, i + 2
        while depth:
            close = sql.find("*/", j)
            if close < 0:
                raise _syntax("unterminated comment", i)
            if self.pg:  # PostgreSQL comments nest
                opening = sql.find("/*", j, close)
                if opening >= 0:
                    depth += 1
                    j = opening + 2
                    continue
            depth -= 1
            j = close + 2
        return j

    def _lex(self) -> _Tok:
        sql, pg = self.sql, self.pg
        n = len(sql)
        i = self.pos = self._skip(self.pos)
        if i >= n:
            return _Tok(_EOF, None, n, n, "")
        c = sql[i]
        if c == "'":
            return self._string(i, i, "'", backslash=not pg)
        if c == '"':
            return self._quoted(i, '"') if pg else self._string(i, i, '"', backslash=True)
        if c == "`" and not pg:
            return self._quoted(i, "`")
        if c.isdigit() or (c == "." and i + 1 < n and sql[i + 1].isdigit()):
            return self._number(i)
        if c == "$" and pg:
            j = i + 1
            while j < n and sql[j].isdigit():
                j += 1
            if j > i + 1:
                number = int(sql[i + 1 : j])
                if number < 1:
                    raise _syntax(f"there is no parameter ${number}", i)
                return self._done(_Tok(_PARAM, Arg(number - 1), i, j, sql[i:j]))
            m = _DOLLAR_TAG.match(sql, i)
            if m is not None:
                close = sql.find(m.group(), m.end())
                if close < 0:
                    raise _syntax("unterminated dollar-quoted string", i)
                end = close + len(m.group())
                return self._done(_Tok(_STRING, sql[m.end() : close], i, end, sql[i:end]))
        if _ident_start(c):
            j = i + 1
            while j < n and _ident_char(sql[j]):
                j += 1
            if pg and j == i + 1 and c in "eE" and j < n and sql[j] == "'":
                return self._string(i, j, "'", backslash=True)
            return self._done(_Tok(_WORD, sql[i:j], i, j, sql[i:j]))
        if c == "?":
            self.qmarks += 1
            return self._done(_Tok(_PARAM, Arg(self.qmarks - 1), i, i + 1, "?"))
        two = sql[i : i + 2]
        if c == ":" and two not in ("::", ":=") and i + 1 < n and _ident_start(sql[i + 1]):
            j = i + 2
            while j < n and _ident_char(sql[j]):
                j += 1
            m = _VN.fullmatch(sql, i + 1, j)
            value: Any = Arg(int(m.group(1)) - 1) if m else sql[i + 1 : j]  # a Vitess named bind variable
            return self._done(_Tok(_PARAM, value, i, j, sql[i:j]))
        if two in ("@@", ":=", "::"):
            return self._done(_Tok(_OP, two, i, i + 2, two))
        return self._done(_Tok(_OP, c, i, i + 1, c))

    def _done(self, tok: _Tok) -> _Tok:
        self.pos = tok.end
        return tok

    def _quoted(self, i: int, q: str) -> _Tok:
        sql, j, parts = self.sql, i + 1, []
        while True:
            k = sql.find(q, j)
            if k < 0:
                raise _syntax("unterminated quoted identifier", i)
            parts.append(sql[j:k])
            if sql.startswith(q + q, k):
                parts.append(q)
                j = k + 2
            else:
                return self._done(_Tok(_QNAME, "".join(parts), i, k + 1, sql[i : k + 1]))

    def _string(self, start: int, i: int, q: str, backslash: bool) -> _Tok:
        sql, n, j, out = self.sql, len(self.sql), i + 1, []
        while j < n:
            c = sql[j]
            if c == q:
                if j + 1 < n and sql[j + 1] == q:
                    out.append(q)
                    j += 2
                    continue
                return self._done(_Tok(_STRING, "".join(out), start, j + 1, sql[start : j + 1]))
            if c == "\\" and backslash and j + 1 < n:
                e = sql[j + 1]
                if self.pg:
                    out.append(_PG_ESCAPES.get(e, e))
                else:
                    out.append(_MYSQL_ESCAPES.get(e, e))
                j += 2
                continue
            out.append(c)
            j += 1
        raise _syntax("unterminated string", start)

    def _number(self, i: int) -> _Tok:
        sql, n, j = self.sql, len(self.sql), i
        while j < n and sql[j].isdigit():
            j += 1
        is_int = True
        if j < n and sql[j] == "." and not (j + 1 < n and sql[j + 1] == "."):
            is_int = False
            j += 1
            while j < n and sql[j].isdigit():
                j += 1
        exp = False
        if j < n and sql[j] in "eE":
            k = j + 1
            if k < n and sql[k] in "+-":
                k += 1
            if k < n and sql[k].isdigit():
                exp, j = True, k
                while j < n and sql[j].isdigit():
                    j += 1
        if not self.pg and j < n and _ident_char(sql[j]):  # MySQL allows identifiers that start with digits
            while j < n and _ident_char(sql[j]):
                j += 1
            kind = _LITERAL if _MYSQL_HEX_BIT.fullmatch(sql, i, j) else _WORD
            return self._done(_Tok(kind, sql[i:j], i, j, sql[i:j]))
        text = sql[i:j]
        value: Any = float(text) if exp else int(text) if is_int else Decimal(text)
        return self._done(_Tok(_NUMBER, value, i, j, text))


# --- the parser ---------------------------------------------------------------------------------------------
_ISOLATION_LEVELS = {"SERIALIZABLE": "SERIALIZABLE", "REPEATABLE": "REPEATABLE READ"}
_READ_LEVELS = {"COMMITTED": "READ COMMITTED", "UNCOMMITTED": "READ UNCOMMITTED"}
_MYSQL_SCOPES = {"GLOBAL": "global", "SESSION": "session", "LOCAL": "session", "PERSIST": "persist",
                 "PERSIST_ONLY": "persist_only"}  # fmt: skip
_TABLET_TYPES = {"primary": "primary", "master": "primary", "replica": "replica", "rdonly": "rdonly"}
_WORK = {False: ("WORK",), True: ("WORK", "TRANSACTION")}  # optional noise word after COMMIT / ROLLBACK
_VEXPLAIN_MODES = {"PLAN": "plan", "QUERIES": "queries", "ALL": "all"}
_SHARDGATE_SHOWS = {"KEYSPACES", "SHARDS", "POOLS", "CLIENTS", "QUERIES", "STATS", "RULES"}


class _Parser:
    def __init__(self, sql: str, pg: bool) -> None:
        self.sql = sql
        self.pg = pg
        self.lex = _Lexer(sql, pg)

    # --- token helpers ------------------------------------------------------------------------------------
    def peek(self, k: int = 0) -> _Tok:
        return self.lex.peek(k)

    def take(self) -> _Tok:
        return self.lex.take()

    def is_kw(self, *words: str, k: int = 0) -> bool:
        return self.peek(k).kw in words

    def accept(self, *words: str) -> str | None:
        """Take the next token when it is one of ``words`` (unquoted, any case); its upper-cased text."""
        kw = self.peek().kw
        if kw and kw in words:
            self.take()
            return kw
        return None

    def expect(self, *words: str) -> str:
        kw = self.accept(*words)
        if kw is None:
            raise self.error(" or ".join(words))
        return kw

    def accept_op(self, op: str) -> bool:
        tok = self.peek()
        if tok.kind == _OP and tok.value == op:
            self.take()
            return True
        return False

    def expect_op(self, op: str) -> None:
        if not self.accept_op(op):
            raise self.error(f"'{op}'")

    def at_end(self, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok.kind == _EOF or (tok.kind == _OP and tok.value == ";" and self.peek(k + 1).kind == _EOF)

    def end(self) -> None:
        if not self.at_end():
            raise self.error("end of statement")

    def error(self, expected: str) -> SyntaxError_:
        tok = self.peek()
        near = "at end of statement" if tok.kind == _EOF else f"near '{tok.text}'"
        return _syntax(f"{near}: expected {expected}", tok.start)

    def ident(self, what: str) -> str:
        tok = self.peek()
        if tok.kind not in (_WORD, _QNAME):
            raise self.error(what)
        self.take()
        return tok.value

    def table_name(self, what: str = "a table name") -> TableName:
        first = self.ident(what)
        if self.accept_op("."):
            return TableName(self.ident(what), first)
        return TableName(first)

    def rest_tokens(self, what: str) -> list[_Tok]:
        """The tokens up to the end of the statement (a trailing ``;`` left out); at least one."""
        if self.at_end():
            raise self.error(what)
        toks = [self.take()]
        while not self.at_end():
            toks.append(self.take())
        return toks

    def rest_text(self, what: str) -> tuple[str, int]:
        """The original text up to the end of the statement (a trailing ``;`` left out), and where it starts."""
        toks = self.rest_tokens(what)
        return self.sql[toks[0].start : toks[-1].end], toks[0].start

    # --- dispatch -----------------------------------------------------------------------------------------
    def statement(self, first_words: frozenset[str]) -> Statement | None:
        try:  # deciding whether it is ours: text we cannot even tokenize here is the caller's to judge
            head = self.peek()
            if head.kw not in first_words:
                return None
            shape = None
            if head.kw == "SELECT":
                shape = self.next_shape()
                if shape is None:
                    return None
            elif head.kw == "ALTER" and not self.is_kw("VSCHEMA", k=1):
                return None
        except ShardgateError:
            return None
        if shape is not None:
            return self.select_next(shape)
        if head.kw == "ALTER":
            self.take()
            self.take()
            return self.alter_vschema()
        self.take()
        handler = getattr(self, "stmt_" + head.kw.lower())
        stmt: Statement | None = handler()
        if stmt is not None:
            self.end()
        return stmt

    # --- transactions -------------------------------------------------------------------------------------
    def stmt_begin(self) -> Statement:
        if self.is_kw("NOT") and self.is_kw("ATOMIC", k=1):
            raise UnsupportedError("compound statement BEGIN NOT ATOMIC is not supported")
        if not self.pg:
            self.accept("WORK")
            return Begin()
        self.accept("WORK", "TRANSACTION")
        return self.begin_modes()

    def stmt_start(self) -> Statement | None:
        if not self.accept("TRANSACTION"):
            return None  # START SLAVE, START REPLICA, …
        return self.begin_modes()

    def begin_modes(self) -> Begin:
        isolation, read_only, deferrable, snapshot = self.tx_modes(
            isolation=self.pg, deferrable=self.pg, snapshot=not self.pg
        )
        return Begin(read_only, isolation, deferrable, snapshot)

    def tx_modes(
        self, *, isolation: bool, deferrable: bool, snapshot: bool, required: bool = False
    ) -> tuple[str | None, bool | None, bool | None, bool]:
        """Transaction characteristics, comma-separated (PostgreSQL also allows blanks); a repeated or conflicting
        one is an error, as in both servers."""
        level: str | None = None
        read_only: bool | None = None
        defer: bool | None = None
        consistent = False
        seen = 0
        while not self.at_end():
            if seen and not self.accept_op(",") and not self.pg:
                raise self.error("','")
            start = self.peek()
            if isolation and self.accept("ISOLATION"):
                self.expect("LEVEL")
                if level is not None:
                    raise _syntax("conflicting or repeated isolation level", start.start)
                level = self.isolation_level()
            elif self.is_kw("READ") and self.is_kw("ONLY", "WRITE", k=1):
                self.take()
                if read_only is not None:
                    raise _syntax("conflicting or repeated READ ONLY / READ WRITE", start.start)
                read_only = self.take().kw == "ONLY"
            elif deferrable and self.is_kw("DEFERRABLE", "NOT"):
                value = self.accept("NOT") is None
                self.expect("DEFERRABLE")
                if defer is not None:
                    raise _syntax("conflicting or repeated DEFERRABLE", start.start)
                defer = value
            elif snapshot and self.accept("WITH"):
                self.expect("CONSISTENT")
                self.expect("SNAPSHOT")
                consistent = True
            else:
                options = ["ISOLATION LEVEL"] if isolation else []
                options.append("READ ONLY or READ WRITE")
                options += ["[NOT] DEFERRABLE"] if deferrable else []
                options += ["WITH CONSISTENT SNAPSHOT"] if snapshot else []
                raise self.error(", ".join(options))
            seen += 1
        if required and not seen:
            raise self.error("a transaction characteristic")
        return level, read_only, defer, consistent

    def isolation_level(self) -> str:
        kw = self.expect("SERIALIZABLE", "REPEATABLE", "READ")
        if kw == "REPEATABLE":
            self.expect("READ")
        elif kw == "READ":
            return _READ_LEVELS[self.expect("COMMITTED", "UNCOMMITTED")]
        return _ISOLATION_LEVELS[kw]

    def finish_modes(self) -> tuple[bool, bool]:
        """``[AND [NO] CHAIN] [[NO] RELEASE]`` of COMMIT / ROLLBACK (RELEASE is MySQL's)."""
        chain = release = False
        if self.accept("AND"):
            chain = self.accept("NO") is None
            self.expect("CHAIN")
        if not self.pg and (self.is_kw("RELEASE") or (self.is_kw("NO") and self.is_kw("RELEASE", k=1))):
            release = self.accept("NO") is None
            self.expect("RELEASE")
        return chain, release

    def stmt_commit(self) -> Statement:
        if self.pg and self.is_kw("PREPARED"):
            raise UnsupportedError("COMMIT PREPARED is not supported: shardgate runs two-phase commit itself")
        self.accept(*_WORK[self.pg])
        return Commit(*self.finish_modes())

    def stmt_end(self) -> Statement:
        return self.stmt_commit()

    def stmt_rollback(self) -> Statement:
        if self.pg and self.is_kw("PREPARED"):
            raise UnsupportedError("ROLLBACK PREPARED is not supported: shardgate runs two-phase commit itself")
        self.accept(*_WORK[self.pg])
        if self.accept("TO"):
            self.accept("SAVEPOINT")
            return RollbackToSavepoint(self.ident("a savepoint name"))
        return Rollback(*self.finish_modes())

    def stmt_abort(self) -> Statement:
        self.accept("WORK", "TRANSACTION")
        return Rollback(*self.finish_modes())

    def stmt_savepoint(self) -> Statement:
        return Savepoint(self.ident("a savepoint name"))

    def stmt_release(self) -> Statement:
        self.accept("SAVEPOINT")
        return ReleaseSavepoint(self.ident("a savepoint name"))

    # --- SET / RESET --------------------------------------------------------------------------------------
    def stmt_set(self) -> Statement | None:
        return self.pg_set() if self.pg else self.mysql_set()

    def mysql_set(self) -> Statement | None:
        # Forms that are not variable assignments stay with the caller.
        if self.is_kw("PASSWORD", "ROLE", "RESOURCE", "STATEMENT") or (
            self.is_kw("DEFAULT") and self.is_kw("ROLE", k=1)
        ):
            return None
        items: list[Assignment | SetNames | SetCharset] = []
        scope: str | None = None  # the last scope keyword; it applies to the items after it
        while True:
            tok = self.peek()
            if tok.kw in _MYSQL_SCOPES and not self.is_assign_op(1):
                self.take()
                scope = _MYSQL_SCOPES[tok.kw]
                tok = self.peek()
            if not items and tok.kw == "TRANSACTION" and not self.is_assign_op(1):
                self.take()
                level, read_only, _, _ = self.tx_modes(
                    isolation=True, deferrable=False, snapshot=False, required=True
                )
                return SetTransaction(scope or "next", level, read_only)
            if tok.kw == "NAMES" and not self.is_assign_op(1):
                self.take()
                items.append(self.set_names())
            elif (tok.kw == "CHARSET" and not self.is_assign_op(1)) or (
                tok.kw == "CHARACTER" and self.is_kw("SET", k=1)
            ):
                self.take()
                if tok.kw == "CHARACTER":
                    self.take()
                items.append(SetCharset(self.charset_name()))
            else:
                items.append(self.mysql_assignment(scope or "session"))
            if not self.accept_op(","):
                break
        return SetStatement(tuple(items))

    def is_assign_op(self, k: int) -> bool:
        tok = self.peek(k)
        return tok.kind == _OP and tok.value in ("=", ":=")

    def set_names(self) -> SetNames:
        charset = self.charset_name()
        collation = None
        if charset is not None and self.accept("COLLATE"):
            collation = self.charset_name(allow_default=False)
        return SetNames(charset, collation)

    def charset_name(self, allow_default: bool = True) -> str | None:
        tok = self.peek()
        if allow_default and tok.kw == "DEFAULT":
            self.take()
            return None
        if tok.kind not in (_WORD, _QNAME, _STRING):
            raise self.error("a character set or collation name")
        self.take()
        return str(tok.value).lower()

    def mysql_assignment(self, scope: str) -> Assignment:
        tok = self.peek()
        if tok.kind == _OP and tok.value == "@@":
            self.take()
            scope = "session"
            if self.peek(1).kind == _OP and self.peek(1).value == "." and self.peek().kw in _MYSQL_SCOPES:
                scope = _MYSQL_SCOPES[self.take().kw]
                self.take()
            name = self.dotted_name()
        elif tok.kind == _OP and tok.value == "@":
            self.take()
            user = self.peek()
            if user.kind not in (_WORD, _QNAME, _STRING):
                raise self.error("a user variable name")
            self.take()
            name, scope = str(user.value).lower(), "user"
        else:
            name = self.dotted_name()
        if not (self.accept_op("=") or self.accept_op(":=")):
            raise self.error("'=' or ':='")
        return Assignment(name, self.mysql_value(), scope)

    def dotted_name(self) -> str:
        parts = [self.ident("a variable name")]
        while self.accept_op("."):
            parts.append(self.ident("a variable name"))
        return ".".join(parts).lower()

    def mysql_value(self) -> Any:
        """A value up to the next top-level comma: a plain value, or the expression's text (``RawExpr``)."""
        k = depth = 0
        while True:
            tok = self.peek(k)
            if tok.kind == _EOF or (depth == 0 and self.at_end(k)):
                break
            if tok.kind == _OP:
                if tok.value == "(":
                    depth += 1
                elif tok.value == ")":
                    depth -= 1
                elif tok.value == "," and depth == 0:
                    break
            k += 1
        if k == 0:
            raise self.error("a value")
        if depth:
            raise _syntax("unbalanced parentheses in value", self.peek().start)
        toks = [self.take() for _ in range(k)]
        plain = _plain_value(toks)
        if plain is not _NOT_PLAIN:
            return plain
        return RawExpr(self.sql[toks[0].start : toks[-1].end])

    def pg_set(self) -> Statement | None:
        scope = "session"
        if self.is_kw("SESSION") and self.is_kw("CHARACTERISTICS", k=1):
            self.take()
            self.take()
            self.expect("AS")
            self.expect("TRANSACTION")
            return self.pg_set_transaction("session")
        if self.is_kw("SESSION", "LOCAL") and not (self.is_assign_op(1) or self.is_kw("TO", "AUTHORIZATION", k=1)):
            scope = self.take().kw.lower()
        if self.is_kw("ROLE", "CONSTRAINTS") or (self.is_kw("SESSION") and self.is_kw("AUTHORIZATION", k=1)):
            return None  # SET [SESSION | LOCAL] {ROLE | SESSION AUTHORIZATION | CONSTRAINTS}: the caller's
        if self.is_kw("TRANSACTION") and not self.is_assign_op(1) and not self.is_kw("TO", k=1):
            self.take()
            if self.is_kw("SNAPSHOT"):
                raise UnsupportedError("SET TRANSACTION SNAPSHOT is not supported")
            return self.pg_set_transaction("transaction")
        if self.is_kw("TIME") and self.is_kw("ZONE", k=1):
            self.take()
            self.take()
            toks = self.rest_tokens("a time zone")
            value = _plain_value(toks)
            if value is _NOT_PLAIN or isinstance(value, Arg):
                value = RawExpr(self.sql[toks[0].start : toks[-1].end])  # INTERVAL '+01:00' HOUR TO MINUTE
            elif value is None:
                raise _syntax("near 'NULL': expected a time zone", toks[0].start)
            return SetStatement((Assignment("timezone", value, scope),))
        if self.is_kw("SCHEMA", "NAMES") and not self.is_assign_op(1) and not self.is_kw("TO", k=1):
            name = "search_path" if self.take().kw == "SCHEMA" else "client_encoding"
            return SetStatement((Assignment(name, self.pg_value(), scope),))
        name = self.dotted_name()
        if not (self.accept("TO") or self.accept_op("=")):
            raise self.error("TO or '='")
        values = [self.pg_value()]
        while self.accept_op(","):
            values.append(self.pg_value())
        return SetStatement((Assignment(name, values[0] if len(values) == 1 else tuple(values), scope),))

    def pg_set_transaction(self, scope: str) -> SetTransaction:
        level, read_only, defer, _ = self.tx_modes(isolation=True, deferrable=True, snapshot=False, required=True)
        return SetTransaction(scope, level, read_only, defer)

    def pg_value(self) -> Any:
        if self.at_end():
            raise self.error("a value")
        toks = [self.take()]
        if toks[0].kind == _OP and toks[0].value in ("-", "+"):
            toks.append(self.take())
        value = _plain_value(toks)
        if value is _NOT_PLAIN or isinstance(value, Arg):
            raise _syntax(f"near '{toks[0].text}': expected a value", toks[0].start)
        if toks[0].kind == _QNAME:
            return toks[0].value  # a quoted identifier as a value is its text ("$user")
        return value

    def stmt_reset(self) -> Statement | None:
        if self.is_kw("ROLE") or (self.is_kw("SESSION") and self.is_kw("AUTHORIZATION", k=1)):
            return None
        if self.accept("ALL"):
            return Reset(None)
        if self.is_kw("TIME") and self.is_kw("ZONE", k=1):
            self.take()
            self.take()
            return Reset("timezone")
        return Reset(self.dotted_name())

    # --- USE ----------------------------------------------------------------------------------------------
    def stmt_use(self) -> Statement:
        tok = self.peek()
        if self.at_end():
            raise self.error("a keyspace")
        # The target is one word in Vitess's notation, quoted or not: ks, `ks:-80`, ks@replica, `ks:-80`@primary.
        if tok.kind == _QNAME:
            self.take()
            text, tail_start = tok.value, tok.end
        else:
            text, tail_start = "", tok.start
        end = tail_start
        while not self.at_end():
            end = self.take().end
        tail = self.sql[tail_start:end]
        if any(c in _BLANK for c in tail):
            raise _syntax("a USE target is one word (quote it: `keyspace:shard@type`)", tail_start)
        return _use_target(text + tail, tok.start)

    # --- RELOAD (admin console) ---------------------------------------------------------------------------
    def stmt_reload(self) -> Statement:
        return Show("shardgate_reload")

    # --- SHOW ---------------------------------------------------------------------------------------------
    def stmt_show(self) -> Statement | None:
        if self.at_end():
            raise self.error("what to show")
        if self.accept("SHARDGATE"):
            return self.show_shardgate()
        if self.accept("VITESS_SHARDS"):
            return self.show_filter(Show("shardgate_shards"))
        if self.accept("VITESS_KEYSPACES"):
            return self.show_filter(Show("shardgate_keyspaces"))
        if self.is_kw("VSCHEMA") and self.is_kw("TABLES", "VINDEXES", k=1):
            self.take()
            return self.show_vschema()
        return self.pg_show() if self.pg else self.mysql_show()

    def show_shardgate(self) -> Show:
        if self.accept("VSCHEMA"):
            if self.at_end():
                return Show("shardgate_vschema")
            return self.show_vschema()
        kw = self.peek().kw
        if kw not in _SHARDGATE_SHOWS:
            raise self.error("KEYSPACES, SHARDS, VSCHEMA, POOLS, CLIENTS, QUERIES, STATS or RULES")
        self.take()
        return self.show_filter(Show("shardgate_" + kw.lower()))

    def show_vschema(self) -> Show:
        kw = self.expect("TABLES", "VINDEXES")
        table = database = None
        if kw == "VINDEXES" and self.accept("ON"):
            table = self.table_name()
        elif self.accept("FROM", "IN"):
            database = self.ident("a keyspace")
        return self.show_filter(Show("shardgate_vschema_" + kw.lower(), table=table, database=database))

    def show_filter(self, show: Show, where: bool = True) -> Show:
        if self.accept("LIKE"):
            tok = self.peek()
            if tok.kind != _STRING:
                raise self.error("a pattern string")
            self.take()
            return dataclasses.replace(show, like=tok.value)
        if where and self.accept("WHERE"):
            text, _ = self.rest_text("a condition")
            return dataclasses.replace(show, where=text)
        return show

    def mysql_show(self) -> Show | None:
        full = self.accept("FULL") is not None
        kw = self.peek().kw
        if kw in ("TABLES", "COLUMNS", "FIELDS", "PROCESSLIST"):
            self.take()
        elif full:
            return None  # SHOW FULL <something else>: not ours
        if kw == "TABLES":
            database = self.ident("a database") if self.accept("FROM", "IN") else None
            return self.show_filter(Show("tables", full=full, database=database))
        if kw in ("COLUMNS", "FIELDS"):
            self.expect("FROM", "IN")
            table = self.table_name()
            database = self.ident("a database") if self.accept("FROM", "IN") else None
            return self.show_filter(Show("columns", full=full, table=table, database=database))
        if kw == "PROCESSLIST":
            return Show("processlist", full=full)
        if kw in ("DATABASES", "SCHEMAS", "KEYSPACES"):
            self.take()
            return self.show_filter(Show("keyspaces" if kw == "KEYSPACES" else "databases"))
        if kw == "CREATE":
            if not self.is_kw("TABLE", k=1):
                return None  # SHOW CREATE DATABASE / VIEW / …
            self.take()
            self.take()
            return Show("create_table", table=self.table_name())
        if kw in ("GLOBAL", "SESSION", "LOCAL", "VARIABLES", "STATUS"):
            scope = None
            if kw in ("GLOBAL", "SESSION", "LOCAL"):
                if not self.is_kw("VARIABLES", "STATUS", k=1):
                    return None
                scope = "global" if self.take().kw == "GLOBAL" else "session"
            what = self.take().kw.lower()
            return self.show_filter(Show(what, scope=scope))
        if kw in ("WARNINGS", "ERRORS"):
            self.take()
            limit, offset = None, 0
            if self.accept("LIMIT"):
                limit = self.count()
                if self.accept_op(","):
                    offset, limit = limit, self.count()
            return Show(kw.lower(), limit=limit, offset=offset)
        if kw in ("INDEX", "INDEXES", "KEYS"):
            self.take()
            self.expect("FROM", "IN")
            table = self.table_name()
            database = self.ident("a database") if self.accept("FROM", "IN") else None
            show = Show("index", table=table, database=database)
            if self.accept("WHERE"):
                text, _ = self.rest_text("a condition")
                return dataclasses.replace(show, where=text)
            return show
        if (kw == "STORAGE" and self.is_kw("ENGINES", k=1)) or kw == "ENGINES":
            if self.take().kw == "STORAGE":
                self.take()
            return Show("engines")
        if kw == "COLLATION":
            self.take()
            return self.show_filter(Show("collation"))
        if kw == "CHARSET" or (kw == "CHARACTER" and self.is_kw("SET", k=1)):
            if self.take().kw == "CHARACTER":
                self.take()
            return self.show_filter(Show("charset"))
        return None  # SHOW GRANTS, SHOW TABLE STATUS, SHOW TRIGGERS, …: the caller's

    def count(self) -> int:
        tok = self.peek()
        if tok.kind != _NUMBER or not isinstance(tok.value, int):
            raise self.error("a row count")
        self.take()
        return tok.value

    def pg_show(self) -> Show:
        if self.accept("ALL"):
            return Show("all_variables")
        if self.is_kw("TIME") and self.is_kw("ZONE", k=1):
            self.take()
            self.take()
            return Show("variable", name="timezone")
        if self.is_kw("TRANSACTION") and self.is_kw("ISOLATION", k=1):
            self.take()
            self.take()
            self.expect("LEVEL")
            return Show("variable", name="transaction_isolation")
        if self.is_kw("SESSION") and self.is_kw("AUTHORIZATION", k=1):
            self.take()
            self.take()
            return Show("variable", name="session_authorization")
        return Show("variable", name=self.dotted_name())

    # --- VEXPLAIN -----------------------------------------------------------------------------------------
    def stmt_vexplain(self) -> Statement:
        kw = self.peek().kw
        mode = "plan"  # Vitess's default
        if kw in _VEXPLAIN_MODES:
            self.take()
            mode = _VEXPLAIN_MODES[kw]
        elif kw in ("TRACE", "KEYS"):
            raise UnsupportedError(f"VEXPLAIN {kw} is not supported (use PLAN, QUERIES or ALL)")
        inner, offset = self.rest_text("a statement to explain")
        return VExplain(mode, inner, offset)

    # --- SELECT NEXT --------------------------------------------------------------------------------------
    def next_shape(self) -> _Tok | None:
        """The count token of ``SELECT NEXT n VALUES`` or the VALUE of ``SELECT NEXT VALUE FROM|FOR``, when the
        statement has one of Vitess's two shapes; else None (``SELECT next FROM t`` selects a column)."""
        if not self.is_kw("NEXT", k=1):
            return None
        shape = self.peek(2)
        if shape.kw == "VALUE" and self.is_kw("FROM", "FOR", k=3):
            return shape
        if shape.kind in (_NUMBER, _PARAM) and self.is_kw("VALUES", k=3):
            return shape
        return None

    def select_next(self, shape: _Tok) -> Statement:
        count = 1 if shape.kw == "VALUE" else self.next_count(shape)
        for _ in range(4):  # SELECT NEXT VALUE FROM | SELECT NEXT n VALUES
            self.take()
        if shape.kw != "VALUE":
            self.expect("FROM", "FOR")
        stmt = SelectNext(self.table_name("a sequence table"), count)
        self.end()
        return stmt

    def next_count(self, tok: _Tok) -> int | Arg:
        if tok.kind == _NUMBER:
            if not isinstance(tok.value, int):
                raise _syntax(f"near '{tok.text}': expected a whole number of values", tok.start)
            if tok.value < 1:
                raise InvalidValueError(f"SELECT NEXT {tok.text} VALUES: the count must be at least 1",
                                        position=tok.start + 1)
            return tok.value
        if not isinstance(tok.value, Arg):
            raise UnsupportedError(f"SELECT NEXT {tok.text} VALUES: a named bind variable is not supported here")
        return tok.value

    # --- ALTER VSCHEMA ------------------------------------------------------------------------------------
    def alter_vschema(self) -> Statement:
        kw = self.expect("CREATE", "DROP", "ADD", "ON")
        if kw == "ON":
            table = self.table_name()
            action = self.expect("ADD", "DROP")
            what = self.expect("VINDEX", "AUTO_INCREMENT")
            stmt: Statement
            if what == "VINDEX" and action == "ADD":
                name = self.ident("a vindex name")
                self.expect_op("(")
                columns = [self.ident("a column name")]
                while self.accept_op(","):
                    columns.append(self.ident("a column name"))
                self.expect_op(")")
                vtype = self.vindex_type() if self.accept("USING") else None
                stmt = AddColumnVindex(table, name, tuple(columns), vtype, self.vindex_params())
            elif what == "VINDEX":
                stmt = DropColumnVindex(table, self.ident("a vindex name"))
            elif action == "ADD":
                column = self.ident("a column name")
                self.expect("USING")
                stmt = AddAutoIncrement(table, column, self.table_name("a sequence table"))
            else:
                stmt = DropAutoIncrement(table)
        elif kw == "CREATE":
            self.expect("VINDEX")
            vindex = self.table_name("a vindex name")
            self.expect("USING")
            stmt = CreateVindex(vindex, self.vindex_type(), self.vindex_params())
        else:
            what = self.expect("VINDEX", "TABLE", "SEQUENCE") if kw == "DROP" else self.expect("TABLE", "SEQUENCE")
            target = self.table_name("a vindex name" if what == "VINDEX" else "a table name")
            stmt = _BY_NAME[(kw, what)](target)
        self.end()
        return stmt

    def vindex_type(self) -> str:
        return self.ident("a vindex type").lower()  # registered types are lower case

    def vindex_params(self) -> tuple[tuple[str, str], ...]:
        if not self.accept("WITH"):
            return ()
        params: list[tuple[str, str]] = []
        while True:
            key = self.ident("a vindex parameter name")
            self.expect_op("=")
            tok = self.peek()
            if tok.kind in (_WORD, _QNAME):
                value = self.dotted_ident()
            elif tok.kind in (_STRING, _NUMBER):
                self.take()
                value = tok.value if tok.kind == _STRING else tok.text
            else:
                raise self.error("a parameter value")
            params.append((key, value))
            if not self.accept_op(","):
                return tuple(params)

    def dotted_ident(self) -> str:
        parts = [self.ident("a name")]
        while self.accept_op("."):
            parts.append(self.ident("a name"))
        return ".".join(parts)


_NOT_PLAIN: Any = object()


_BY_NAME: dict[tuple[str, str], Any] = {
    ("ADD", "TABLE"): AddTable,
    ("ADD", "SEQUENCE"): AddSequence,
    ("DROP", "TABLE"): DropTable,
    ("DROP", "SEQUENCE"): DropSequence,
    ("DROP", "VINDEX"): DropVindex,
}


def _plain_value(toks: list[_Tok]) -> Any:
    """The Python value of a one-token value (or a signed number), else ``_NOT_PLAIN``."""
    sign = 1
    if len(toks) == 2 and toks[0].kind == _OP and toks[0].value in ("-", "+") and toks[1].kind == _NUMBER:
        sign = -1 if toks[0].value == "-" else 1
        toks = toks[1:]
    if len(toks) != 1:
        return _NOT_PLAIN
    tok = toks[0]
    if tok.kind == _NUMBER:
        return -tok.value if sign < 0 else tok.value
    if tok.kind == _STRING:
        return tok.value
    if tok.kind == _PARAM:
        return tok.value if isinstance(tok.value, Arg) else _NOT_PLAIN
    if tok.kind == _WORD:
        if tok.kw in ("TRUE", "FALSE"):
            return tok.kw == "TRUE"
        if tok.kw == "NULL":
            return None
        return Word(tok.text)
    if tok.kind == _QNAME:
        return Word(tok.value)
    return _NOT_PLAIN


def _use_target(text: str, start: int) -> Use:
    """Vitess's ``ParseDestination``: ``keyspace[:shard | [range] | [keyspace id]][@tablet_type]``."""
    tablet_type = None
    at = text.rfind("@")
    if at >= 0:
        written = text[at + 1 :]
        tablet_type = _TABLET_TYPES.get(written.lower())
        if tablet_type is None:
            raise InvalidValueError(
                f"USE {text}: unknown tablet type {written!r} (expected primary, replica or rdonly)",
                position=start + 1,
            )
        text = text[:at]
    keyspace, target, kind = text, None, None
    bracket = text.rfind("[")
    if bracket >= 0:
        if not text.endswith("]"):
            raise _syntax(f"USE {text}: a key range target ends with ']'", start)
        keyspace, target = text[:bracket], text[bracket + 1 : -1]
        if "-" in target:
            kind = "key_range"
            KeyRange.parse(target)  # raises KeyRangeError naming it
        else:
            kind = "keyspace_id"
            try:
                bytes.fromhex(target)
            except ValueError:
                raise InvalidValueError(f"USE {text}: keyspace id {target!r} is not hex", position=start + 1) from None
    elif ":" in text:
        keyspace, _, target = text.rpartition(":")
        kind = "shard"
        if not target:
            raise _syntax(f"USE {text}: missing shard name after ':'", start)
    if not keyspace and (target is not None or tablet_type is None):
        raise _syntax("USE needs a keyspace", start)
    return Use(keyspace, target, kind, tablet_type)
