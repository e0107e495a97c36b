"""SQL fingerprinting for the plan cache: the readable spec that ``cython_ext/fingerprint.pyx`` must match.

``fingerprint(sql, flags)`` makes one pass over the text and returns ``(normalized, values)``. The normalized text is
the plan-cache key; every value it took out is replaced by the next placeholder ``:v1``, ``:v2``, … (textual order,
1-based; ``values[i - 1]`` belongs to ``:vi``), which sqlglot parses as ``exp.Placeholder`` in both dialects. The
planner parses the normalized text only on a cache miss; on a hit the values are bound into the cached plan. Two
statements share a key only if they plan alike; keeping a literal in the key is always safe (it only costs cache
sharing), extracting one the plan depends on is not, so every doubtful case keeps.

Tokens are read with the dialect's own rules (``flags``): MySQL '…' and "…" strings with backslash escapes (unless
ANSI_QUOTES / NO_BACKSLASH_ESCAPES), backtick identifiers, `#` and `-- ` comments; PostgreSQL '…' (backslash escapes
only with NO_STANDARD_CONFORMING_STRINGS), E'…', U&'…', $tag$…$tag$, "…" identifiers and nested block comments.

* Comments and whitespace: plain comments are dropped; executable and hint comments (``/*!``, ``/*M!``, ``/*+``,
  ``/*vt+``) stay verbatim. Whitespace and dropped comments between two tokens become one space, nothing is added
  where there was none, leading and trailing spaces and ``;`` go, case is kept. Exceptions that keep tokens apart:
  a space between a placeholder and a following identifier character (``'a'b`` -> ``:v1 b``) or a preceding ``:``
  (``[1:2]`` -> ``[:v1: :v2]``); in MySQL no space right after ``--`` (it would start a comment), and a final
  ``--`` keeps a ``;`` after it.
* Only data statements extract literals: the first word (after comments and opening parentheses) is SELECT,
  INSERT, UPDATE, DELETE, REPLACE, WITH or VALUES, or EXPLAIN/VEXPLAIN/DESCRIBE/DESC followed (later) by one of
  those. Each `;`-separated statement decides for itself. Bind parameters already in the text (``?``, PostgreSQL
  ``$n``, ``:name``, MySQL ``::name``) become placeholders in every statement: their values come with the request.
* Extracted values: ``int``, ``Decimal`` (``1.5``, ``.5``, ``1.``), ``float`` (an exponent), ``str`` (unescaped;
  adjacent strings are one string: always in MySQL, across a line break in PostgreSQL), ``bytes`` (MySQL ``X'ff'``
  with an even count of hex digits), ``Param`` and ``tuple`` (a folded IN list). A ``-`` directly before a number is
  part of it when the previous token is no operand (an identifier or other non-operator word, a quoted
  identifier, a literal, a placeholder, ``)`` or ``]``); operator words are the dialect's reserved ones in
  ``KEYWORDS`` (SELECT, WHERE, AND, LIKE, …), so a column named ``value`` stays an operand.
* Kept in the key: every word (NULL, TRUE, FALSE, UNKNOWN, …); numbers run into identifier characters (``0x1F``,
  ``0b01``, ``1a``); any string right after an operand: charset introducers and prefixes (``_utf8mb4'x'``,
  ``N'x'``, ``B'01'``, PostgreSQL ``X'1F'``, which is a bit string there), typed literals (``DATE '…'``,
  ``INTERVAL '…'``, ``int4 '1'``) and string aliases (``AS 'a'``, ``COUNT(*) 'n'``); ``U&'…'``; numbers right after
  LIMIT, OFFSET, NEXT, FETCH FIRST and INTERVAL, and after ``LIMIT n,``; numbers directly in the parenthesized
  arguments of a type name (``DECIMAL(10,2)``, ``CHAR(3)``, ``character varying(5)``); an unsigned integer that
  stands alone as an ORDER BY or GROUP BY item (``ORDER BY 1 DESC``, ``GROUP BY 1, 2``).
* ``IN (…)`` / ``NOT IN (…)`` whose items are all extracted literals or parameters (one or more) becomes
  ``IN (:vN)`` with a tuple value; a list with any other item is left alone and its literals extracted one by one.
* In PostgreSQL a ``?`` after an operand is the jsonb operator, not a parameter.
* Unterminated strings, quoted identifiers, comments and dollar quotes, and invalid escapes in an extracted
  E'…' string, raise ``FingerprintError`` with the 0-based position where the construct starts. Nothing else
  raises: any other text, however broken, gets a key.
"""
from __future__ import annotations

from decimal import Decimal

from cython_ext.fpvalues import FingerprintError, Param

__all__ = [
    "ANSI_QUOTES",
    "MYSQL",
    "NO_BACKSLASH_ESCAPES",
    "NO_STANDARD_CONFORMING_STRINGS",
    "POSTGRES",
    "FingerprintError",
    "Param",
    "fingerprint",
    "split_statements",
]

MYSQL = 0
POSTGRES = 1  # the dialect is the low bit
ANSI_QUOTES = 2  # MySQL sql_mode: "..." is an identifier
NO_BACKSLASH_ESCAPES = 4  # MySQL sql_mode: a backslash is an ordinary character in strings
NO_STANDARD_CONFORMING_STRINGS = 8  # PostgreSQL standard_conforming_strings=off: '...' takes backslash escapes

# Keywords. Only plain ASCII words are looked up, case-insensitively.
KW_IN, KW_ORDER, KW_GROUP, KW_BY, KW_LIMIT, KW_OFFSET, KW_FETCH, KW_FIRST, KW_NEXT, KW_INTERVAL = range(1, 11)
KW_OTHER = 11  # known only for its flags
F_OPKW_MY = 1  # MySQL: an operator-like reserved word; the token after it starts an operand
F_OPKW_PG = 2  # PostgreSQL: the same
F_TYPE = 4  # numbers directly in its parenthesized argument list are type arguments
F_CLAUSE_END = 8  # ends an ORDER BY / GROUP BY list at its level
F_DATA = 16  # starts a data statement
F_EXPLAIN = 32  # EXPLAIN-like prefix: a data statement may follow

_OPKW = F_OPKW_MY | F_OPKW_PG
# Operator-like words must be reserved in the dialect: a column with that name would otherwise turn `col -1` into
# `col :v1` (-1). Missing one costs only cache sharing (`= -:v1`, or a string kept in the key).
_KEYWORD_GROUPS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (_OPKW, ("WHERE", "AND", "OR", "NOT", "WHEN", "THEN", "ELSE", "CASE", "LIKE", "BETWEEN", "IS", "DISTINCT",
             "ALL", "TO")),
    (_OPKW | F_CLAUSE_END, ("HAVING", "FROM", "FOR", "ON")),
    (F_OPKW_MY, ("XOR", "REGEXP", "RLIKE", "DIV", "MOD")),
    (F_OPKW_MY | F_TYPE, ("BINARY",)),
    (F_OPKW_PG, ("ILIKE", "ANY", "SOME")),
    (F_OPKW_PG | F_CLAUSE_END, ("RETURNING",)),
    (F_TYPE, ("INT", "INTEGER", "TINYINT", "SMALLINT", "MEDIUMINT", "BIGINT", "DECIMAL", "DEC", "NUMERIC", "FIXED",
              "FLOAT", "DOUBLE", "REAL", "BIT", "CHAR", "CHARACTER", "NCHAR", "VARCHAR", "NVARCHAR", "VARBINARY",
              "TIME", "TIMESTAMP", "DATETIME", "TIMESTAMPTZ", "TIMETZ", "YEAR", "TEXT", "BLOB", "VARYING",
              "VARBIT", "BPCHAR")),
    (F_CLAUSE_END, ("UNION", "INTERSECT", "EXCEPT", "WINDOW", "INTO", "SET", "PROCEDURE", "LOCK")),
    (F_DATA, ("INSERT", "UPDATE", "DELETE", "REPLACE", "WITH")),
    (F_DATA | F_CLAUSE_END, ("VALUES",)),
    (F_DATA | F_CLAUSE_END | _OPKW, ("SELECT",)),
    (F_EXPLAIN, ("EXPLAIN", "VEXPLAIN", "DESCRIBE", "DESC")),
)
_KEYWORD_IDS: dict[str, tuple[int, int]] = {
    "IN": (KW_IN, _OPKW),
    "ORDER": (KW_ORDER, 0),
    "GROUP": (KW_GROUP, 0),
    "BY": (KW_BY, 0),
    "LIMIT": (KW_LIMIT, _OPKW | F_CLAUSE_END),
    "OFFSET": (KW_OFFSET, F_OPKW_PG | F_CLAUSE_END),
    "FETCH": (KW_FETCH, F_CLAUSE_END),
    "FIRST": (KW_FIRST, 0),
    "NEXT": (KW_NEXT, 0),
    "INTERVAL": (KW_INTERVAL, 0),
}


def _keyword_table() -> dict[str, tuple[int, int]]:
    table: dict[str, tuple[int, int]] = {}
    for flags, names in _KEYWORD_GROUPS:
        for name in names:
            assert name not in table, name
            table[name] = (KW_OTHER, flags)
    for name, entry in _KEYWORD_IDS.items():
        assert name not in table, name
        table[name] = entry
    return table


# The compiled module holds the same table; a test compares them.
KEYWORDS: dict[str, tuple[int, int]] = _keyword_table()

# Kinds of the previous significant token. Those from K_WORD on are operands: after one, `-` is binary, a string
# is an alias or typed literal (kept), and in PostgreSQL `?` is an operator.
K_NONE, K_OP, K_OPEN, K_COMMA, K_COMMENT, K_OPKW = range(6)
K_WORD, K_QIDENT, K_LIT, K_VALUE, K_STR, K_PARAM, K_CLOSE = range(6, 13)
# Statement modes.
M_START, M_DATA, M_OTHER, M_PENDING = range(4)
# Number kinds.
N_INT, N_DEC, N_FLOAT, N_WORD = range(4)
# String forms.
S_MY, S_PG, S_E, S_DOLLAR, S_HEX, S_U = range(6)

_WS = " \t\n\r\f\v"
_MY_ESCAPES = {"0": "\x00", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "%": "\\%", "_": "\\_"}
_E_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_KEPT_COMMENTS = ("/*!", "/*M!", "/*+", "/*vt+")


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


def _is_hex(c: str) -> bool:
    return "0" <= c <= "9" or "a" <= c <= "f" or "A" <= c <= "F"


def _is_name_start(c: str) -> bool:
    """First character of a word or a `:name` parameter: ASCII letter, `_`, or any non-ASCII character."""
    return "a" <= c <= "z" or "A" <= c <= "Z" or c == "_" or c >= "\x80"


def _is_ident(c: str) -> bool:
    return _is_name_start(c) or "0" <= c <= "9" or c == "$"


def fingerprint(sql: str, flags: int) -> tuple[str, list]:
    """``(normalized text, values)`` of one SQL text; raises ``FingerprintError`` on unterminated constructs."""
    _check_args(sql, flags)
    scan = _Scanner(sql, flags, False)
    scan.run()
    out = scan.out
    while out and out[-1] in (" ", ";"):
        out.pop()
    if not scan.pg and "".join(out[-2:]).endswith("--"):
        out.append(";")  # MySQL reads `--` at the very end as a comment
    return "".join(out), scan.values


def split_statements(sql: str, flags: int) -> list[str]:
    """The statements of a multi-statement text, split on top-level `;`, each stripped of surrounding whitespace;
    statements holding nothing but whitespace and plain comments are dropped. No DELIMITER support, so compound
    statements (procedure bodies) are not kept whole."""
    _check_args(sql, flags)
    scan = _Scanner(sql, flags, True)
    scan.run()
    scan.end_statement(len(sql))
    return [sql[a:b].strip(_WS) for a, b in scan.statements]


def _check_args(sql: object, flags: object) -> None:
    if not isinstance(flags, int):
        raise TypeError(f"flags must be int, not {type(flags).__name__}")
    if not isinstance(sql, str):
        raise TypeError(f"sql must be str, not {type(sql).__name__}")


class _Scanner:
    """One pass over the text. ``split`` mode tokenizes identically but writes nothing and records statements."""

    def __init__(self, sql: str, flags: int, split: bool) -> None:
        self.sql = sql
        self.n = len(sql)
        self.pg = bool(flags & POSTGRES)
        self.dq_string = not self.pg and not flags & ANSI_QUOTES  # MySQL "..." is a string
        self.my_bs = not self.pg and not flags & NO_BACKSLASH_ESCAPES
        self.pg_bs = self.pg and bool(flags & NO_STANDARD_CONFORMING_STRINGS)
        self.opkw = F_OPKW_PG if self.pg else F_OPKW_MY
        self.split = split
        self.out: list[str] = []
        self.last = ""  # last character written
        self.after_ph = False  # the output ends with a placeholder
        self.space = False  # whitespace or a dropped comment since the last token
        self.newline = False  # ... and it held a line break (PostgreSQL string continuation)
        self.values: list = []
        self.nq = 0  # `?` parameters seen
        self.statements: list[tuple[int, int]] = []
        self.stmt_start = 0
        self.nonempty = False
        self.reset()

    def reset(self) -> None:
        """Per-statement state (start, and after each `;`)."""
        self.mode = M_START
        self.depth = 0  # open parentheses
        self.pkind = K_NONE  # previous significant token: kind, keyword id, keyword flags, end
        self.pkw = 0
        self.pkwf = 0
        self.pkw2 = 0  # keyword id of the token before that
        self.pend = -1
        self.limit = 0  # 1: just kept a LIMIT count; 2: and then a comma (MySQL LIMIT offset, count)
        self.type_depth = -1  # depth of an open type argument list
        self.ob_depth = -1  # depth of an open ORDER BY / GROUP BY list
        self.fold_depth = -1  # depth of an IN list that may still fold
        self.fold_mark = 0  # output length after its `(`
        self.fold_vmark = 0  # values before its first item
        self.fold_expect = False  # an item is expected next

    # -- output ---------------------------------------------------------------------------------------------------

    def gap(self) -> bool:
        """Whether pending whitespace becomes a space: not at the start, and not after a MySQL `--` (from `--#x` or
        `--/**/`), which a space would turn into a comment."""
        return self.space and bool(self.out) and (self.pg or not "".join(self.out[-2:]).endswith("--"))

    def put(self, text: str) -> None:
        if self.split:
            self.nonempty = True
        else:
            if self.gap():
                self.out.append(" ")
            elif self.after_ph and _is_ident(text[0]):
                self.out.append(" ")  # `'a'b` must not become `:v1b`
            self.out.append(text)
            self.last = text[-1]
        self.after_ph = False
        self.space = False

    def put_value(self, value: object, kind: int, end: int) -> None:
        """Append an extracted value and its placeholder; it may be an item of a foldable IN list."""
        if self.fold_depth >= 0:
            if self.depth == self.fold_depth and self.fold_expect:
                self.fold_expect = False
            else:
                self.fold_depth = -1
        if self.split:
            self.nonempty = True
        else:
            self.values.append(value)
            if self.gap():
                self.out.append(" ")
            elif self.last == ":":
                self.out.append(" ")  # `[1:2]` must not become `[:v1::v2]`
            self.out.append(f":v{len(self.values)}")
            self.last = "0"
            self.after_ph = True
        self.space = False
        self.prev(kind, 0, 0, end)

    def prev(self, kind: int, kw: int, kwf: int, end: int, limit: int = 0) -> None:
        if self.mode == M_START and kind != K_OPEN and kind != K_COMMENT:
            self.mode = M_OTHER
        self.pkind = kind
        self.pkw2 = self.pkw
        self.pkw = kw
        self.pkwf = kwf
        self.pend = end
        self.limit = limit
        self.newline = False

    def fold_cancel(self) -> None:
        self.fold_depth = -1

    def end_statement(self, end: int) -> None:
        if self.nonempty:
            self.statements.append((self.stmt_start, end))
        self.stmt_start = end + 1
        self.nonempty = False

    # -- scanning -------------------------------------------------------------------------------------------------

    def comment_end(self, i: int) -> int:
        """End of the comment starting at i, or -1 if none starts there. Raises if it is unterminated."""
        sql, n = self.sql, self.n
        c = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "*":
            if not self.pg:
                j = sql.find("*/", i + 2)
                if j < 0:
                    raise FingerprintError("unterminated comment", i)
                return j + 2
            depth = 1  # PostgreSQL block comments nest
            j = i + 2
            while j < n:
                if sql.startswith("/*", j):
                    depth += 1
                    j += 2
                elif sql.startswith("*/", j):
                    depth -= 1
                    j += 2
                    if depth == 0:
                        return j
                else:
                    j += 1
            raise FingerprintError("unterminated comment", i)
        if (c == "-" and nxt == "-" and (self.pg or i + 2 >= n or sql[i + 2] <= " " or sql[i + 2] == "\x7f")) or (
            c == "#" and not self.pg
        ):
            j = i + 1
            while j < n and sql[j] != "\n" and not (self.pg and sql[j] == "\r"):
                j += 1
            return j
        return -1

    def skip_gap(self, i: int) -> int:
        """Index of the next token after whitespace and plain comments (n at the end)."""
        while i < self.n:
            c = self.sql[i]
            if c in _WS:
                i += 1
                continue
            j = self.comment_end(i)
            if j < 0 or self.sql.startswith(_KEPT_COMMENTS, i):
                return i
            i = j
        return i

    def quoted_end(self, i: int, q: str, backslash: bool) -> int:
        """End (after the closing quote) of a quoted token whose quote is at i, or -1 if unterminated. A doubled
        quote stands for one; with ``backslash`` a backslash escapes the next character."""
        sql, n = self.sql, self.n
        j = i + 1
        while j < n:
            c = sql[j]
            if c == "\\" and backslash:
                j += 2
            elif c == q:
                if j + 1 < n and sql[j + 1] == q:
                    j += 2
                else:
                    return j + 1
            else:
                j += 1
        return -1

    def ident_quoted_end(self, i: int, q: str) -> int:
        j = self.quoted_end(i, q, False)
        if j < 0:
            raise FingerprintError("unterminated quoted identifier", i)
        return j

    def number_end(self, i: int) -> tuple[int, int]:
        """End and kind of the number at i (digits, or `.` and a digit). A number run into identifier characters
        (`1a`, `0x1F`, `1e`) is a word."""
        sql, n = self.sql, self.n
        j = i
        kind = N_INT
        while j < n and _is_digit(sql[j]):
            j += 1
        if j < n and sql[j] == ".":
            kind = N_DEC
            j += 1
            while j < n and _is_digit(sql[j]):
                j += 1
        if j < n and sql[j] in "eE":
            k = j + 1
            if k < n and sql[k] in "+-":
                k += 1
            if k < n and _is_digit(sql[k]):
                kind = N_FLOAT
                j = k
                while j < n and _is_digit(sql[j]):
                    j += 1
        if j < n and _is_ident(sql[j]):
            kind = N_WORD
            while j < n and _is_ident(sql[j]):
                j += 1
        return j, kind

    def ident_end(self, i: int) -> int:
        j = i
        while j < self.n and _is_ident(self.sql[j]):
            j += 1
        return j

    def operand(self) -> bool:
        return self.pkind >= K_WORD

    def run(self) -> None:
        sql, n = self.sql, self.n
        i = 0
        while i < n:
            c = sql[i]
            if c in _WS:
                self.space = True
                if c == "\n" or c == "\r":
                    self.newline = True
                i += 1
                continue
            if c == "/" or c == "-" or c == "#":
                j = self.comment_end(i)
                if j >= 0:
                    if sql.startswith(_KEPT_COMMENTS, i):
                        self.fold_cancel()
                        self.put(sql[i:j])
                        self.prev(K_COMMENT, 0, 0, j)
                    else:
                        self.space = True
                        if "\n" in sql[i:j] or "\r" in sql[i:j]:
                            self.newline = True
                    i = j
                    continue
            if _is_name_start(c) or (c == "$" and not self.pg):
                i = self.word(i)
            elif _is_digit(c):
                if i > 0 and sql[i - 1] == "." and self.pend == i and self.pkind == K_OP:
                    i = self.plain_word(i, self.ident_end(i))  # `t.5col`: a name part, not a number
                else:
                    i = self.number(i, i)
            elif c == "." and i + 1 < n and _is_digit(sql[i + 1]) and not (self.pend == i and self.operand()):
                i = self.number(i, i)
            elif c == "-" and self.unary() and self.number_follows(i + 1):
                i = self.number(i + 1, i)
            elif c == "'":
                i = self.string(i, i, S_E if self.pg_bs else S_PG if self.pg else S_MY)
            elif c == '"':
                if self.dq_string:
                    i = self.string(i, i, S_MY)
                else:
                    i = self.quoted_ident(i, self.ident_quoted_end(i, '"'))
            elif c == "`" and not self.pg:
                i = self.quoted_ident(i, self.ident_quoted_end(i, "`"))
            elif c == "$":  # PostgreSQL
                i = self.dollar(i)
            elif c == "?":
                if self.pg and self.operand():
                    i = self.op(i, 1)  # jsonb `?`, `?|`, `?&`
                else:
                    self.put_value(Param(self.nq), K_PARAM, i + 1)
                    self.nq += 1
                    i += 1
            elif c == ":":
                i = self.colon(i)
            elif c == "@" and not self.pg:
                i = self.variable(i)
            elif c == "(":
                i = self.open_paren(i)
            elif c == ")":
                i = self.close_paren(i)
            elif c == ",":
                self.comma(i)
                i += 1
            elif c == ";":
                self.semicolon(i)
                i += 1
            elif c == "]":
                self.fold_cancel()
                self.put(c)
                self.prev(K_CLOSE, 0, 0, i + 1)
                i += 1
            else:
                i = self.op(i, 1)

    def unary(self) -> bool:
        """Whether a `-` here is a sign: not after an operand (INTERVAL -1 DAY counts as a sign too)."""
        return not self.operand() or self.pkw == KW_INTERVAL

    def number_follows(self, i: int) -> bool:
        sql, n = self.sql, self.n
        return i < n and (_is_digit(sql[i]) or (sql[i] == "." and i + 1 < n and _is_digit(sql[i + 1])))

    # -- tokens ---------------------------------------------------------------------------------------------------

    def op(self, i: int, length: int) -> int:
        self.fold_cancel()
        self.put(self.sql[i:i + length])
        self.prev(K_OP, 0, 0, i + length)
        return i + length

    def plain_word(self, i: int, j: int) -> int:
        self.fold_cancel()
        self.put(self.sql[i:j])
        self.prev(K_WORD, 0, 0, j)
        return j

    def word(self, i: int) -> int:
        sql, n = self.sql, self.n
        c = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if nxt == "'":
            if c in "xX" and not self.pg:
                return self.string(i, i + 1, S_HEX)
            if c in "eE" and self.pg:
                return self.string(i, i + 1, S_E)
        if c in "uU" and nxt == "&" and self.pg and i + 2 < n and sql[i + 2] in "'\"":
            if sql[i + 2] == "'":
                return self.string(i, i + 2, S_U)
            j = self.quoted_end(i + 2, '"', False)
            if j < 0:
                raise FingerprintError("unterminated quoted identifier", i)
            return self.quoted_ident(i, j)
        j = self.ident_end(i)
        word = sql[i:j]
        kw, kwf = KEYWORDS.get(word.upper(), (0, 0)) if word.isascii() else (0, 0)
        if self.mode == M_START:
            self.mode = M_DATA if kwf & F_DATA else M_PENDING if kwf & F_EXPLAIN else M_OTHER
        elif self.mode == M_PENDING and kwf & F_DATA:
            self.mode = M_DATA
        if kw == KW_BY and (self.pkw == KW_ORDER or self.pkw == KW_GROUP):
            self.ob_depth = self.depth
        elif kwf & F_CLAUSE_END and self.ob_depth == self.depth:
            self.ob_depth = -1
        self.fold_cancel()
        self.put(word)
        self.prev(K_OPKW if kwf & self.opkw else K_WORD, kw, kwf, j)
        return j

    def quoted_ident(self, i: int, j: int) -> int:
        self.fold_cancel()
        self.put(self.sql[i:j])
        self.prev(K_QIDENT, 0, 0, j)
        return j

    def variable(self, i: int) -> int:
        """MySQL `@name`, `@@sys.var`, `@'quoted name'`: one word."""
        sql, n = self.sql, self.n
        j = i + 1
        if j < n and sql[j] == "@":
            j += 1
        q = sql[j] if j < n else ""
        if q == "'" or (q == '"' and self.dq_string):
            k = self.quoted_end(j, q, self.my_bs)
            if k < 0:
                raise FingerprintError("unterminated string", j)
            j = k
        elif q == "`" or q == '"':
            j = self.ident_quoted_end(j, q)
        else:
            while j < n and (_is_ident(sql[j]) or sql[j] == "."):
                j += 1
            if j == i + 1:
                return self.op(i, 1)
        return self.plain_word(i, j)

    def number(self, i: int, start: int) -> int:
        """The number whose digits (or `.`) start at i; start < i when a sign `-` at start belongs to it."""
        end, kind = self.number_end(i)
        if kind == N_WORD:
            if start < i:
                return self.op(start, 1)  # `-1abc`: the `-` is an operator, the rest a word
            return self.plain_word(i, end)
        text = self.sql[start:end]
        limit = 1 if self.pkw == KW_LIMIT else 0
        keep = (
            self.mode != M_DATA
            or self.split
            or self.type_depth == self.depth
            or self.pkw == KW_LIMIT
            or self.pkw == KW_OFFSET
            or self.pkw == KW_INTERVAL
            or (self.pkw == KW_FIRST and self.pkw2 == KW_FETCH)
            or self.pkw == KW_NEXT
            or self.limit == 2
            or (kind == N_INT and start == i and self.ob_depth == self.depth
                and (self.pkw == KW_BY or self.pkind == K_COMMA) and self.item_ends(end))
        )
        if keep:
            self.fold_cancel()
            self.put(text)
            self.prev(K_LIT, 0, 0, end, limit)
        else:
            value = _to_int(text) if kind == N_INT else Decimal(text) if kind == N_DEC else float(text)
            self.put_value(value, K_VALUE, end)
        return end

    def item_ends(self, j: int) -> bool:
        """Whether an ORDER BY / GROUP BY item ends at j: `,`, `)`, `;`, the end, a word (ASC, LIMIT, …) or a
        kept comment follows."""
        j = self.skip_gap(j)
        if j >= self.n:
            return True
        c = self.sql[j]
        return (c in ",);" or _is_name_start(c) or (c == "$" and not self.pg)
                or self.sql.startswith(_KEPT_COMMENTS, j))

    def string(self, start: int, q: int, form: int) -> int:
        """A string token from start whose opening quote (or `$`) is at q."""
        sql = self.sql
        if form == S_DOLLAR:
            tag_end = sql.index("$", q + 1) + 1
            delim = sql[q:tag_end]
            close = sql.find(delim, tag_end)
            if close < 0:
                raise FingerprintError("unterminated dollar-quoted string", start)
            end = close + len(delim)
            body = (tag_end, close)
        elif form == S_HEX:
            close = sql.find("'", q + 1)
            if close < 0:
                raise FingerprintError("unterminated string", start)
            end = close + 1
            body = (q + 1, close)
        else:
            end = self.quoted_end(q, sql[q], form == S_E or (form == S_MY and self.my_bs))
            if end < 0:
                raise FingerprintError("unterminated string", start)
            body = (q + 1, end - 1)
        extract = self.mode == M_DATA and not self.split
        if extract and self.operand():
            if self.pkind == K_STR and start == q and form != S_DOLLAR and (not self.pg or self.newline):
                value = self.decode(form, start, q, *body)
                self.values[-1] += value  # adjacent strings are one string
                self.space = False
                self.pend = end
                self.limit = 0
                self.newline = False
                return end
            extract = False  # after an operand: N'x', _utf8mb4'x', DATE 'x', AS 'alias'
        if extract and form == S_HEX and not _valid_hex(sql, *body):
            extract = False
        if not extract or form == S_U:
            self.fold_cancel()
            self.put(sql[start:end])
            self.prev(K_LIT, 0, 0, end)
            return end
        value = self.decode(form, start, q, *body)
        mergeable = form in (S_MY, S_PG, S_E)
        self.put_value(value, K_STR if mergeable else K_VALUE, end)
        return end

    def decode(self, form: int, start: int, q: int, a: int, b: int) -> object:
        sql = self.sql
        if form == S_DOLLAR:
            return sql[a:b]
        if form == S_HEX:
            return bytes.fromhex(sql[a:b])
        if form == S_PG:
            return sql[a:b].replace("''", "'")
        if form == S_MY:
            return _mysql_unescape(sql, a, b, sql[q], self.my_bs)
        return _e_unescape(sql, a, b)

    def dollar(self, i: int) -> int:
        """PostgreSQL `$n` parameter, `$tag$…$tag$` string, or a lone `$`."""
        sql, n = self.sql, self.n
        j = i + 1
        if j < n and _is_digit(sql[j]):
            while j < n and _is_digit(sql[j]):
                j += 1
            digits = sql[i + 1:j]
            if (j < n and _is_ident(sql[j])) or not digits.strip("0"):
                return self.plain_word(i, self.ident_end(j))  # `$0`, `$1a`: not parameters
            self.put_value(Param(_to_int(digits) - 1), K_PARAM, j)
            return j
        if j < n and _is_name_start(sql[j]):
            while j < n and _is_ident(sql[j]) and sql[j] != "$":
                j += 1
        if j < n and sql[j] == "$":
            return self.string(i, i, S_DOLLAR)
        return self.op(i, 1)

    def colon(self, i: int) -> int:
        """`:name` parameter, MySQL `::name` list parameter, PostgreSQL `::` cast, or `:`."""
        sql, n = self.sql, self.n
        nxt = sql[i + 1] if i + 1 < n else ""
        if nxt == ":":
            if self.pg:
                return self.op(i, 2)
            if i + 2 < n and _is_name_start(sql[i + 2]):
                j = self.ident_end(i + 2)
                self.put_value(Param(sql[i + 2:j], True), K_PARAM, j)
                return j
        elif nxt and _is_name_start(nxt):
            j = self.ident_end(i + 1)
            self.put_value(Param(sql[i + 1:j]), K_PARAM, j)
            return j
        return self.op(i, 1)

    def open_paren(self, i: int) -> int:
        self.fold_cancel()
        fold = self.mode == M_DATA and self.pkw == KW_IN and not self.split
        if self.pkwf & F_TYPE and self.type_depth < 0:
            self.type_depth = self.depth + 1
        self.depth += 1
        self.put("(")
        self.prev(K_OPEN, 0, 0, i + 1)
        if fold:
            self.fold_depth = self.depth
            self.fold_mark = len(self.out)
            self.fold_vmark = len(self.values)
            self.fold_expect = True
        return i + 1

    def close_paren(self, i: int) -> int:
        if self.fold_depth >= 0 and self.fold_depth == self.depth and not self.fold_expect:
            items = tuple(self.values[self.fold_vmark:])
            del self.values[self.fold_vmark:]
            self.values.append(items)
            del self.out[self.fold_mark:]
            self.out.append(f":v{len(self.values)})")
            self.last = ")"
            self.after_ph = False
            self.space = False
            self.fold_depth = -1
        else:
            self.fold_cancel()
            self.put(")")
        if self.type_depth == self.depth:
            self.type_depth = -1
        if self.ob_depth >= self.depth:
            self.ob_depth = -1
        if self.depth > 0:
            self.depth -= 1
        self.prev(K_CLOSE, 0, 0, i + 1)
        return i + 1

    def comma(self, i: int) -> None:
        if self.fold_depth >= 0 and self.depth == self.fold_depth and not self.fold_expect:
            self.fold_expect = True
        else:
            self.fold_cancel()
        self.put(",")
        self.prev(K_COMMA, 0, 0, i + 1, 2 if self.limit == 1 else 0)

    def semicolon(self, i: int) -> None:
        if self.split:
            self.end_statement(i)
        else:
            self.put(";")
        self.space = False
        self.newline = False
        self.reset()


def _to_int(text: str) -> int:
    """int() of a digit string of any length (int() alone refuses more than 4300 digits)."""
    return int(text) if len(text) <= 4000 else int(Decimal(text))


def _valid_hex(sql: str, a: int, b: int) -> bool:
    return (b - a) % 2 == 0 and all(_is_hex(c) for c in sql[a:b])


def _mysql_unescape(sql: str, a: int, b: int, q: str, backslash: bool) -> str:
    parts: list[str] = []
    i = a
    while i < b:
        c = sql[i]
        if c == "\\" and backslash:
            d = sql[i + 1]
            parts.append(_MY_ESCAPES.get(d, d))
            i += 2
        elif c == q:  # doubled quote
            parts.append(q)
            i += 2
        else:
            parts.append(c)
            i += 1
    return "".join(parts)


def _e_unescape(sql: str, a: int, b: int) -> str:
    """PostgreSQL escape-string body: C escapes; octal and hex escapes are bytes, decoded as UTF-8 per run."""
    parts: list[str] = []
    raw = bytearray()
    raw_at = -1
    i = a

    def flush() -> None:
        nonlocal raw_at
        if raw:
            try:
                parts.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise FingerprintError("invalid byte sequence in escape string", raw_at) from None
            raw.clear()
        raw_at = -1

    while i < b:
        c = sql[i]
        if c == "\\":
            d = sql[i + 1]
            if "0" <= d <= "7":
                j = i + 1
                v = 0
                while j < b and j < i + 4 and "0" <= sql[j] <= "7":
                    v = v * 8 + ord(sql[j]) - 48
                    j += 1
                if raw_at < 0:
                    raw_at = i
                raw.append(v & 0xFF)
                i = j
                continue
            if d == "x" and i + 2 < b and _is_hex(sql[i + 2]):
                j = i + 2
                v = 0
                while j < b and j < i + 4 and _is_hex(sql[j]):
                    v = v * 16 + int(sql[j], 16)
                    j += 1
                if raw_at < 0:
                    raw_at = i
                raw.append(v)
                i = j
                continue
            flush()
            if d == "u" or d == "U":
                cp, j = _unicode_escape(sql, i, b)
                if 0xD800 <= cp <= 0xDBFF:
                    low = -1
                    if j + 1 < b and sql[j] == "\\" and sql[j + 1] in "uU":
                        low, j = _unicode_escape(sql, j, b)
                    if not 0xDC00 <= low <= 0xDFFF:
                        raise FingerprintError("invalid Unicode surrogate pair", i)
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00)
                elif 0xDC00 <= cp <= 0xDFFF or cp == 0 or cp > 0x10FFFF:
                    raise FingerprintError("invalid Unicode escape value", i)
                parts.append(chr(cp))
                i = j
                continue
            parts.append(_E_ESCAPES.get(d, d))
            i += 2
        else:
            flush()
            parts.append(c)
            i += 2 if c == "'" else 1  # a quote inside the body is doubled
    flush()
    return "".join(parts)


def _unicode_escape(sql: str, i: int, b: int) -> tuple[int, int]:
    """`\\uXXXX` or `\\UXXXXXXXX` at i: (code point, end)."""
    width = 4 if sql[i + 1] == "u" else 8
    j = i + 2
    if j + width > b or not all(_is_hex(c) for c in sql[j:j + width]):
        raise FingerprintError("invalid Unicode escape", i)
    return int(sql[j:j + width], 16), j + width
