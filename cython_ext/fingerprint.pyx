# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# cython: annotation_typing=False
"""SQL fingerprinting for the plan cache, compiled. Twin and spec: ``cython_ext/pure/fingerprint.py``.

Same scanner, method for method, as the twin (read that one for the rules). What differs is only how: the text is
read in place through ``PyUnicode_READ`` on the str's own buffer, the normalized text is built in a C buffer of the
input's kind and made into a str once, keywords are found in a C hash table of uppercased ASCII words packed into two
64-bit words, and small integers are parsed in C. Python objects are made only for the values themselves.
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.float cimport PyFloat_FromString
from cpython.list cimport PyList_GET_SIZE
from cpython.long cimport PyLong_FromLongLong
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.unicode cimport (PyUnicode_DATA, PyUnicode_FromKindAndData, PyUnicode_GET_LENGTH, PyUnicode_KIND,
                              PyUnicode_READ, PyUnicode_Substring, PyUnicode_WRITE)
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

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
POSTGRES = 1
ANSI_QUOTES = 2
NO_BACKSLASH_ESCAPES = 4
NO_STANDARD_CONFORMING_STRINGS = 8

# -- keywords (the same table as the twin's KEYWORDS; a test compares them) ---------------------------------------

_OPKW = F_OPKW_MY | F_OPKW_PG
_KEYWORD_GROUPS = (
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
_KEYWORD_IDS = {
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

KEYWORDS = {}
for _flags, _names in _KEYWORD_GROUPS:
    for _name in _names:
        KEYWORDS[_name] = (KW_OTHER, _flags)
KEYWORDS.update(_KEYWORD_IDS)

cdef KwSlot _kw_slots[KW_SLOTS]


cdef inline unsigned int _kw_hash(uint64_t lo, uint64_t hi) noexcept nogil:
    return <unsigned int>(((lo * 0x9E3779B97F4A7C15ULL) ^ (hi * 0xC2B2AE3D27D4EB4FULL)) >> 56)


cdef void _kw_insert(str name, int kw, int flags) noexcept:
    cdef uint64_t lo = 0, hi = 0
    cdef Py_ssize_t k
    cdef unsigned int h
    for k in range(len(name)):
        if k < 8:
            lo |= (<uint64_t>ord(name[k])) << (8 * k)
        else:
            hi |= (<uint64_t>ord(name[k])) << (8 * (k - 8))
    h = _kw_hash(lo, hi)
    while _kw_slots[h].lo != 0:
        h = (h + 1) & (KW_SLOTS - 1)
    _kw_slots[h].lo = lo
    _kw_slots[h].hi = hi
    _kw_slots[h].kw = kw
    _kw_slots[h].flags = flags


for _name, (_kw, _flags) in KEYWORDS.items():
    assert len(_name) <= KW_MAXLEN
    _kw_insert(_name, _kw, _flags)

# -- character classes -------------------------------------------------------------------------------------------

cdef inline bint _is_digit(Py_UCS4 c) noexcept nogil:
    return 48 <= c <= 57


cdef inline bint _is_hex(Py_UCS4 c) noexcept nogil:
    cdef unsigned int u = c
    return (48 <= u <= 57) or (97 <= (u | 32) <= 102)


cdef inline bint _is_name_start(Py_UCS4 c) noexcept nogil:
    cdef unsigned int u = c
    return (97 <= (u | 32) <= 122) or u == 95 or u >= 0x80


cdef inline bint _is_ident(Py_UCS4 c) noexcept nogil:
    cdef unsigned int u = c
    return (97 <= (u | 32) <= 122) or u == 95 or u >= 0x80 or (48 <= u <= 57) or u == 36


cdef inline bint _is_ws(Py_UCS4 c) noexcept nogil:
    return c == 32 or 9 <= c <= 13


cdef list _SMALL_PARAMS = [Param(_k) for _k in range(256)]


cdef inline object _param(Py_ssize_t index):
    if index < 256:
        return _SMALL_PARAMS[index]
    return Param(index)


# Named parameters repeat with the query shapes; keep their (immutable) markers, up to a bound.
cdef dict _NAMED = {}
cdef dict _NAMED_LISTS = {}


cdef object _named_param(str name, bint is_list):
    cdef dict cache = _NAMED_LISTS if is_list else _NAMED
    p = cache.get(name)
    if p is None:
        p = Param(name, is_list)
        if len(cache) < 4096:
            cache[name] = p
    return p


cdef object _to_int(str text):
    """int() of a digit string of any length (int() alone refuses more than 4300 digits)."""
    return int(text) if len(text) <= 4000 else int(Decimal(text))


cdef inline str _checked(object sql, object flags):
    """sql as an exact str (a subclass is copied: the scanner reads the buffer of a plain str)."""
    if not isinstance(flags, int):
        raise TypeError(f"flags must be int, not {type(flags).__name__}")
    if type(sql) is str:
        return <str>sql
    if not isinstance(sql, str):
        raise TypeError(f"sql must be str, not {type(sql).__name__}")
    return str.__str__(sql)


# -- the scanner -------------------------------------------------------------------------------------------------

cdef class _Scan:
    """One pass over the text; the twin's ``_Scanner``, with the layout in fingerprint.pxd."""

    def __dealloc__(self):
        if self.obuf != NULL:
            PyMem_Free(self.obuf)
            self.obuf = NULL

    cdef int init(self, str sql, int flags, bint split) except -1:
        self.sql = sql
        self.data = PyUnicode_DATA(sql)
        self.kind = PyUnicode_KIND(sql)
        self.n = PyUnicode_GET_LENGTH(sql)
        self.pg = flags & 1
        self.dq_string = not self.pg and not (flags & 2)
        self.my_bs = not self.pg and not (flags & 4)
        self.pg_bs = self.pg and (flags & 8) != 0
        self.opkw = F_OPKW_PG if self.pg else F_OPKW_MY
        self.split = split
        self.olen = 0
        self.ocap = 0
        self.obuf = NULL
        if not split:
            self.ocap = self.n + 32
            self.obuf = <char*>PyMem_Malloc(self.ocap * self.kind)
            if self.obuf == NULL:
                raise MemoryError()
        self.after_ph = False
        self.space = False
        self.newline = False
        self.values = []
        self.nq = 0
        self.statements = [] if split else None
        self.stmt_start = 0
        self.nonempty = False
        self.reset()
        return 0

    cdef inline void reset(self) noexcept:
        self.mode = M_START
        self.depth = 0
        self.pkind = K_NONE
        self.pkw = 0
        self.pkwf = 0
        self.pkw2 = 0
        self.pend = -1
        self.limit = 0
        self.type_depth = -1
        self.ob_depth = -1
        self.fold_depth = -1
        self.fold_mark = 0
        self.fold_vmark = 0
        self.fold_expect = False

    cdef inline Py_UCS4 at(self, Py_ssize_t i) noexcept:
        """The character at i, or 0 past the end (callers never mistake it for a real NUL that matters)."""
        if i < self.n:
            return PyUnicode_READ(self.kind, self.data, i)
        return 0

    cdef bint starts_kept_comment(self, Py_ssize_t i) noexcept:
        cdef Py_UCS4 c
        if self.at(i) != c'/' or self.at(i + 1) != c'*':
            return False
        c = self.at(i + 2)
        return (c == c'!' or c == c'+' or (c == c'M' and self.at(i + 3) == c'!')
                or (c == c'v' and self.at(i + 3) == c't' and self.at(i + 4) == c'+'))

    # -- output ----------------------------------------------------------------------------------------------

    cdef int reserve(self, Py_ssize_t extra) except -1:
        cdef Py_ssize_t cap
        cdef char* p
        if self.olen + extra > self.ocap:
            cap = self.ocap * 2
            if cap < self.olen + extra + 32:
                cap = self.olen + extra + 32
            p = <char*>PyMem_Realloc(self.obuf, cap * self.kind)
            if p == NULL:
                raise MemoryError()
            self.obuf = p
            self.ocap = cap
        return 0

    cdef inline void write(self, Py_UCS4 c) noexcept:
        PyUnicode_WRITE(self.kind, self.obuf, self.olen, c)
        self.olen += 1

    cdef inline Py_UCS4 last(self) noexcept:
        if self.olen == 0:
            return 0
        return PyUnicode_READ(self.kind, self.obuf, self.olen - 1)

    cdef void write_placeholder(self, Py_ssize_t number) noexcept:
        cdef char digits[24]
        cdef int nd = 0
        self.write(c':')
        self.write(c'v')
        while True:
            digits[nd] = <char>(48 + number % 10)
            nd += 1
            number //= 10
            if number == 0:
                break
        while nd > 0:
            nd -= 1
            self.write(<Py_UCS4>digits[nd])

    cdef inline bint gap(self) noexcept:
        return self.space and self.olen > 0 and (self.pg or not self.ends_with_dashes())

    cdef bint ends_with_dashes(self) noexcept:
        return (self.olen >= 2 and PyUnicode_READ(self.kind, self.obuf, self.olen - 1) == c'-'
                and PyUnicode_READ(self.kind, self.obuf, self.olen - 2) == c'-')

    cdef int put(self, Py_ssize_t a, Py_ssize_t b) except -1:
        """The twin's put(sql[a:b])."""
        if self.split:
            self.nonempty = True
        else:
            self.reserve(b - a + 1)
            if self.gap():
                self.write(c' ')
            elif self.after_ph and _is_ident(self.at(a)):
                self.write(c' ')
            memcpy(self.obuf + self.olen * self.kind, <char*>self.data + a * self.kind, (b - a) * self.kind)
            self.olen += b - a
        self.after_ph = False
        self.space = False
        return 0

    cdef int put_value(self, object value, int kind, Py_ssize_t end) except -1:
        if self.fold_depth >= 0:
            if self.depth == self.fold_depth and self.fold_expect:
                self.fold_expect = False
            else:
                self.fold_depth = -1
        if self.split:
            self.nonempty = True
        else:
            self.values.append(value)
            self.reserve(24)
            if self.gap():
                self.write(c' ')
            elif self.last() == c':':
                self.write(c' ')
            self.write_placeholder(PyList_GET_SIZE(self.values))
            self.after_ph = True
        self.space = False
        self.prev(kind, 0, 0, end, 0)
        return 0

    cdef inline void prev(self, int kind, int kw, int kwf, Py_ssize_t end, int limit) noexcept:
        if self.mode == M_START and kind != K_OPEN and kind != K_COMMENT:
            self.mode = M_OTHER
        self.pkind = kind
        self.pkw2 = self.pkw
        self.pkw = kw
        self.pkwf = kwf
        self.pend = end
        self.limit = limit
        self.newline = False

    cdef int end_statement(self, Py_ssize_t end) except -1:
        if self.nonempty:
            self.statements.append((self.stmt_start, end))
        self.stmt_start = end + 1
        self.nonempty = False
        return 0

    # -- scanning --------------------------------------------------------------------------------------------

    cdef Py_ssize_t comment_end(self, Py_ssize_t i) except -2:
        cdef Py_UCS4 c = self.at(i), nxt = self.at(i + 1), d
        cdef Py_ssize_t j, n = self.n, depth
        if c == c'/' and nxt == c'*':
            j = i + 2
            if not self.pg:
                while j + 1 < n:
                    if self.at(j) == c'*' and self.at(j + 1) == c'/':
                        return j + 2
                    j += 1
                raise FingerprintError("unterminated comment", i)
            depth = 1
            while j < n:
                d = self.at(j)
                if d == c'/' and self.at(j + 1) == c'*':
                    depth += 1
                    j += 2
                elif d == c'*' and self.at(j + 1) == c'/':
                    depth -= 1
                    j += 2
                    if depth == 0:
                        return j
                else:
                    j += 1
            raise FingerprintError("unterminated comment", i)
        if c == c'-' and nxt == c'-':
            d = self.at(i + 2)
            if not (self.pg or i + 2 >= n or d <= 32 or d == 0x7f):
                return -1
        elif not (c == c'#' and not self.pg):
            return -1
        j = i + 1
        while j < n:
            d = self.at(j)
            if d == 10 or (self.pg and d == 13):
                break
            j += 1
        return j

    cdef Py_ssize_t skip_gap(self, Py_ssize_t i) except -2:
        cdef Py_ssize_t j
        while i < self.n:
            if _is_ws(self.at(i)):
                i += 1
                continue
            j = self.comment_end(i)
            if j < 0 or self.starts_kept_comment(i):
                return i
            i = j
        return i

    cdef Py_ssize_t quoted_end(self, Py_ssize_t i, Py_UCS4 q, bint backslash) noexcept:
        cdef Py_ssize_t j = i + 1, n = self.n
        cdef Py_UCS4 c
        while j < n:
            c = PyUnicode_READ(self.kind, self.data, j)
            if c == 92 and backslash:
                j += 2
            elif c == q:
                if j + 1 < n and PyUnicode_READ(self.kind, self.data, j + 1) == q:
                    j += 2
                else:
                    return j + 1
            else:
                j += 1
        return -1

    cdef Py_ssize_t ident_quoted_end(self, Py_ssize_t i, Py_UCS4 q) except -1:
        cdef Py_ssize_t j = self.quoted_end(i, q, False)
        if j < 0:
            raise FingerprintError("unterminated quoted identifier", i)
        return j

    cdef Py_ssize_t number_end(self, Py_ssize_t i, int* kind) noexcept:
        cdef Py_ssize_t j = i, k, n = self.n
        cdef Py_UCS4 c
        kind[0] = N_INT
        while j < n and _is_digit(self.at(j)):
            j += 1
        if j < n and self.at(j) == c'.':
            kind[0] = N_DEC
            j += 1
            while j < n and _is_digit(self.at(j)):
                j += 1
        c = self.at(j)
        if j < n and (c == c'e' or c == c'E'):
            k = j + 1
            c = self.at(k)
            if k < n and (c == c'+' or c == c'-'):
                k += 1
            if k < n and _is_digit(self.at(k)):
                kind[0] = N_FLOAT
                j = k
                while j < n and _is_digit(self.at(j)):
                    j += 1
        if j < n and _is_ident(self.at(j)):
            kind[0] = N_WORD
            while j < n and _is_ident(self.at(j)):
                j += 1
        return j

    cdef inline Py_ssize_t ident_end(self, Py_ssize_t i) noexcept:
        cdef Py_ssize_t j = i
        while j < self.n and _is_ident(PyUnicode_READ(self.kind, self.data, j)):
            j += 1
        return j

    cdef inline bint operand(self) noexcept:
        return self.pkind >= K_WORD

    cdef int run(self) except -1:
        cdef Py_ssize_t i = 0, j, n = self.n, k
        cdef Py_UCS4 c
        while i < n:
            c = PyUnicode_READ(self.kind, self.data, i)
            if _is_ws(c):
                self.space = True
                if c == 10 or c == 13:
                    self.newline = True
                i += 1
                continue
            if c == c'/' or c == c'-' or c == c'#':
                j = self.comment_end(i)
                if j >= 0:
                    if self.starts_kept_comment(i):
                        self.fold_depth = -1
                        self.put(i, j)
                        self.prev(K_COMMENT, 0, 0, j, 0)
                    else:
                        self.space = True
                        for k in range(i, j):
                            c = PyUnicode_READ(self.kind, self.data, k)
                            if c == 10 or c == 13:
                                self.newline = True
                                break
                    i = j
                    continue
            if _is_name_start(c) or (c == c'$' and not self.pg):
                i = self.word(i)
            elif _is_digit(c):
                if i > 0 and self.at(i - 1) == c'.' and self.pend == i and self.pkind == K_OP:
                    i = self.plain_word(i, self.ident_end(i))
                else:
                    i = self.number(i, i)
            elif c == c'.' and _is_digit(self.at(i + 1)) and not (self.pend == i and self.operand()):
                i = self.number(i, i)
            elif c == c'-' and self.unary() and self.number_follows(i + 1):
                i = self.number(i + 1, i)
            elif c == c"'":
                i = self.string(i, i, S_E if self.pg_bs else (S_PG if self.pg else S_MY))
            elif c == c'"':
                if self.dq_string:
                    i = self.string(i, i, S_MY)
                else:
                    i = self.quoted_ident(i, self.ident_quoted_end(i, c'"'))
            elif c == c'`' and not self.pg:
                i = self.quoted_ident(i, self.ident_quoted_end(i, c'`'))
            elif c == c'$':
                i = self.dollar(i)
            elif c == c'?':
                if self.pg and self.operand():
                    i = self.op(i, 1)
                else:
                    self.put_value(_param(self.nq), K_PARAM, i + 1)
                    self.nq += 1
                    i += 1
            elif c == c':':
                i = self.colon(i)
            elif c == c'@' and not self.pg:
                i = self.variable(i)
            elif c == c'(':
                i = self.open_paren(i)
            elif c == c')':
                i = self.close_paren(i)
            elif c == c',':
                self.comma(i)
                i += 1
            elif c == c';':
                self.semicolon(i)
                i += 1
            elif c == c']':
                self.fold_depth = -1
                self.put(i, i + 1)
                self.prev(K_CLOSE, 0, 0, i + 1, 0)
                i += 1
            else:
                i = self.op(i, 1)
        return 0

    cdef inline bint unary(self) noexcept:
        return not self.operand() or self.pkw == KW_INTERVAL

    cdef inline bint number_follows(self, Py_ssize_t i) noexcept:
        cdef Py_UCS4 c = self.at(i)
        return i < self.n and (_is_digit(c) or (c == c'.' and _is_digit(self.at(i + 1))))

    # -- tokens ----------------------------------------------------------------------------------------------

    cdef Py_ssize_t op(self, Py_ssize_t i, Py_ssize_t length) except -1:
        self.fold_depth = -1
        self.put(i, i + length)
        self.prev(K_OP, 0, 0, i + length, 0)
        return i + length

    cdef Py_ssize_t plain_word(self, Py_ssize_t i, Py_ssize_t j) except -1:
        self.fold_depth = -1
        self.put(i, j)
        self.prev(K_WORD, 0, 0, j, 0)
        return j

    cdef int kw_lookup(self, Py_ssize_t i, Py_ssize_t j, int* flags) noexcept:
        cdef uint64_t lo = 0, hi = 0, c
        cdef Py_ssize_t k
        cdef unsigned int h
        flags[0] = 0
        if j - i > KW_MAXLEN:
            return 0
        for k in range(j - i):
            c = PyUnicode_READ(self.kind, self.data, i + k)
            if c >= 0x80:
                return 0
            if 97 <= c <= 122:
                c -= 32
            if k < 8:
                lo |= c << (8 * k)
            else:
                hi |= c << (8 * (k - 8))
        h = _kw_hash(lo, hi)
        while _kw_slots[h].lo != 0:
            if _kw_slots[h].lo == lo and _kw_slots[h].hi == hi:
                flags[0] = _kw_slots[h].flags
                return _kw_slots[h].kw
            h = (h + 1) & (KW_SLOTS - 1)
        return 0

    cdef Py_ssize_t word(self, Py_ssize_t i) except -1:
        cdef Py_UCS4 c = self.at(i), nxt = self.at(i + 1), q
        cdef Py_ssize_t j
        cdef int kw, kwf
        if nxt == c"'":
            if (c == c'x' or c == c'X') and not self.pg:
                return self.string(i, i + 1, S_HEX)
            if (c == c'e' or c == c'E') and self.pg:
                return self.string(i, i + 1, S_E)
        if (c == c'u' or c == c'U') and nxt == c'&' and self.pg:
            q = self.at(i + 2)
            if i + 2 < self.n and (q == c"'" or q == c'"'):
                if q == c"'":
                    return self.string(i, i + 2, S_U)
                j = self.quoted_end(i + 2, c'"', False)
                if j < 0:
                    raise FingerprintError("unterminated quoted identifier", i)
                return self.quoted_ident(i, j)
        j = self.ident_end(i)
        kw = self.kw_lookup(i, j, &kwf)
        if self.mode == M_START:
            self.mode = M_DATA if kwf & F_DATA else (M_PENDING if kwf & F_EXPLAIN else M_OTHER)
        elif self.mode == M_PENDING and kwf & F_DATA:
            self.mode = M_DATA
        if kw == KW_BY and (self.pkw == KW_ORDER or self.pkw == KW_GROUP):
            self.ob_depth = self.depth
        elif kwf & F_CLAUSE_END and self.ob_depth == self.depth:
            self.ob_depth = -1
        self.fold_depth = -1
        self.put(i, j)
        self.prev(K_OPKW if kwf & self.opkw else K_WORD, kw, kwf, j, 0)
        return j

    cdef Py_ssize_t quoted_ident(self, Py_ssize_t i, Py_ssize_t j) except -1:
        self.fold_depth = -1
        self.put(i, j)
        self.prev(K_QIDENT, 0, 0, j, 0)
        return j

    cdef Py_ssize_t variable(self, Py_ssize_t i) except -1:
        cdef Py_ssize_t j = i + 1, k, n = self.n
        cdef Py_UCS4 q, c
        if j < n and self.at(j) == c'@':
            j += 1
        q = self.at(j)
        if j < n and (q == c"'" or (q == c'"' and self.dq_string)):
            k = self.quoted_end(j, q, self.my_bs)
            if k < 0:
                raise FingerprintError("unterminated string", j)
            j = k
        elif j < n and (q == c'`' or q == c'"'):
            j = self.ident_quoted_end(j, q)
        else:
            while j < n:
                c = self.at(j)
                if not (_is_ident(c) or c == c'.'):
                    break
                j += 1
            if j == i + 1:
                return self.op(i, 1)
        return self.plain_word(i, j)

    cdef Py_ssize_t number(self, Py_ssize_t i, Py_ssize_t start) except -1:
        cdef int kind
        cdef Py_ssize_t end = self.number_end(i, &kind)
        cdef int limit
        cdef bint keep
        if kind == N_WORD:
            if start < i:
                return self.op(start, 1)
            return self.plain_word(i, end)
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
            self.fold_depth = -1
            self.put(start, end)
            self.prev(K_LIT, 0, 0, end, limit)
        else:
            self.put_value(self.number_value(i, start, end, kind), K_VALUE, end)
        return end

    cdef object number_value(self, Py_ssize_t i, Py_ssize_t start, Py_ssize_t end, int kind):
        cdef long long v = 0
        cdef Py_ssize_t k
        if kind == N_INT:
            if end - i <= 18:
                for k in range(i, end):
                    v = v * 10 + (<long long>PyUnicode_READ(self.kind, self.data, k) - 48)
                return PyLong_FromLongLong(-v if start < i else v)
            return _to_int(PyUnicode_Substring(self.sql, start, end))
        if kind == N_DEC:
            return Decimal(PyUnicode_Substring(self.sql, start, end))
        return PyFloat_FromString(PyUnicode_Substring(self.sql, start, end))

    cdef bint item_ends(self, Py_ssize_t j) except -1:
        cdef Py_UCS4 c
        j = self.skip_gap(j)
        if j >= self.n:
            return True
        c = self.at(j)
        return (c == c',' or c == c')' or c == c';' or _is_name_start(c) or (c == c'$' and not self.pg)
                or self.starts_kept_comment(j))

    cdef Py_ssize_t find_dollar_close(self, Py_ssize_t q, Py_ssize_t tag_end) noexcept:
        """First occurrence of the delimiter sql[q:tag_end] at or after tag_end, or -1."""
        cdef Py_ssize_t L = tag_end - q, k, m
        cdef Py_ssize_t last = self.n - L
        k = tag_end
        while k <= last:
            if PyUnicode_READ(self.kind, self.data, k) == c'$':
                m = 1
                while m < L and PyUnicode_READ(self.kind, self.data, k + m) == \
                        PyUnicode_READ(self.kind, self.data, q + m):
                    m += 1
                if m == L:
                    return k
            k += 1
        return -1

    cdef Py_ssize_t string(self, Py_ssize_t start, Py_ssize_t q, int form) except -1:
        cdef Py_ssize_t end, a, b, tag_end, close, k
        cdef bint extract
        cdef object value
        if form == S_DOLLAR:
            tag_end = q + 1
            while self.at(tag_end) != c'$':
                tag_end += 1
            tag_end += 1
            close = self.find_dollar_close(q, tag_end)
            if close < 0:
                raise FingerprintError("unterminated dollar-quoted string", start)
            end = close + (tag_end - q)
            a = tag_end
            b = close
        elif form == S_HEX:
            close = q + 1
            while close < self.n and self.at(close) != c"'":
                close += 1
            if close >= self.n:
                raise FingerprintError("unterminated string", start)
            end = close + 1
            a = q + 1
            b = close
        else:
            end = self.quoted_end(q, self.at(q), form == S_E or (form == S_MY and self.my_bs))
            if end < 0:
                raise FingerprintError("unterminated string", start)
            a = q + 1
            b = end - 1
        extract = self.mode == M_DATA and not self.split
        if extract and self.operand():
            if self.pkind == K_STR and start == q and form != S_DOLLAR and (not self.pg or self.newline):
                value = self.decode(form, q, a, b)
                k = PyList_GET_SIZE(self.values) - 1
                self.values[k] = self.values[k] + value
                self.space = False
                self.pend = end
                self.limit = 0
                self.newline = False
                return end
            extract = False
        if extract and form == S_HEX and not self.valid_hex(a, b):
            extract = False
        if not extract or form == S_U:
            self.fold_depth = -1
            self.put(start, end)
            self.prev(K_LIT, 0, 0, end, 0)
            return end
        value = self.decode(form, q, a, b)
        self.put_value(value, K_STR if (form == S_MY or form == S_PG or form == S_E) else K_VALUE, end)
        return end

    cdef bint valid_hex(self, Py_ssize_t a, Py_ssize_t b) noexcept:
        cdef Py_ssize_t k
        if (b - a) % 2:
            return False
        for k in range(a, b):
            if not _is_hex(PyUnicode_READ(self.kind, self.data, k)):
                return False
        return True

    cdef object decode(self, int form, Py_ssize_t q, Py_ssize_t a, Py_ssize_t b):
        if form == S_DOLLAR:
            return PyUnicode_Substring(self.sql, a, b)
        if form == S_HEX:
            return self.decode_hex(a, b)
        if form == S_PG:
            return self.decode_quoted(a, b, self.at(q), False)
        if form == S_MY:
            return self.decode_quoted(a, b, self.at(q), self.my_bs)
        return _e_unescape(self.sql, a, b)

    cdef object decode_hex(self, Py_ssize_t a, Py_ssize_t b):
        cdef bytes out = PyBytes_FromStringAndSize(NULL, (b - a) // 2)
        cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
        cdef Py_ssize_t k
        cdef unsigned int hi, lo
        for k in range((b - a) // 2):
            hi = (<unsigned int>self.at(a + 2 * k)) | 32
            lo = (<unsigned int>self.at(a + 2 * k + 1)) | 32
            p[k] = <unsigned char>(((hi - 48) if hi <= 57 else (hi - 87)) * 16 + ((lo - 48) if lo <= 57 else (lo - 87)))
        return out

    cdef object decode_quoted(self, Py_ssize_t a, Py_ssize_t b, Py_UCS4 q, bint backslash):
        """MySQL (backslash escapes optional) or standard PostgreSQL string body; a doubled quote is one."""
        cdef Py_ssize_t k
        cdef Py_UCS4 c, d
        cdef char* buf
        cdef Py_ssize_t m = 0
        for k in range(a, b):
            c = PyUnicode_READ(self.kind, self.data, k)
            if c == q or (c == 92 and backslash):
                break
        else:
            return PyUnicode_Substring(self.sql, a, b)
        # Unescaping never widens: every output character is an input character or ASCII. `\%` and `\_` keep both.
        buf = <char*>PyMem_Malloc((b - a) * self.kind + 1)
        if buf == NULL:
            raise MemoryError()
        try:
            k = a
            while k < b:
                c = PyUnicode_READ(self.kind, self.data, k)
                if c == 92 and backslash:
                    d = PyUnicode_READ(self.kind, self.data, k + 1)
                    if d == c'0':
                        d = 0
                    elif d == c'b':
                        d = 8
                    elif d == c'n':
                        d = 10
                    elif d == c'r':
                        d = 13
                    elif d == c't':
                        d = 9
                    elif d == c'Z':
                        d = 26
                    elif d == c'%' or d == c'_':
                        PyUnicode_WRITE(self.kind, buf, m, 92)
                        m += 1
                    PyUnicode_WRITE(self.kind, buf, m, d)
                    m += 1
                    k += 2
                elif c == q:
                    PyUnicode_WRITE(self.kind, buf, m, q)
                    m += 1
                    k += 2
                else:
                    PyUnicode_WRITE(self.kind, buf, m, c)
                    m += 1
                    k += 1
            return PyUnicode_FromKindAndData(self.kind, buf, m)
        finally:
            PyMem_Free(buf)

    cdef Py_ssize_t dollar(self, Py_ssize_t i) except -1:
        cdef Py_ssize_t j = i + 1, k, m, n = self.n
        cdef bint zero
        cdef Py_UCS4 c
        if j < n and _is_digit(self.at(j)):
            zero = True
            while j < n and _is_digit(self.at(j)):
                if self.at(j) != c'0':
                    zero = False
                j += 1
            if (j < n and _is_ident(self.at(j))) or zero:
                return self.plain_word(i, self.ident_end(j))
            if j - i - 1 <= 18:
                k = 0
                for m in range(i + 1, j):
                    k = k * 10 + (<Py_ssize_t>self.at(m) - 48)
                self.put_value(_param(k - 1), K_PARAM, j)
            else:
                self.put_value(Param(_to_int(PyUnicode_Substring(self.sql, i + 1, j)) - 1), K_PARAM, j)
            return j
        if j < n and _is_name_start(self.at(j)):
            while j < n:
                c = self.at(j)
                if not _is_ident(c) or c == c'$':
                    break
                j += 1
        if j < n and self.at(j) == c'$':
            return self.string(i, i, S_DOLLAR)
        return self.op(i, 1)

    cdef Py_ssize_t colon(self, Py_ssize_t i) except -1:
        cdef Py_ssize_t j, n = self.n
        cdef Py_UCS4 nxt = self.at(i + 1)
        if i + 1 < n and nxt == c':':
            if self.pg:
                return self.op(i, 2)
            if i + 2 < n and _is_name_start(self.at(i + 2)):
                j = self.ident_end(i + 2)
                self.put_value(_named_param(PyUnicode_Substring(self.sql, i + 2, j), True), K_PARAM, j)
                return j
        elif i + 1 < n and _is_name_start(nxt):
            j = self.ident_end(i + 1)
            self.put_value(_named_param(PyUnicode_Substring(self.sql, i + 1, j), False), K_PARAM, j)
            return j
        return self.op(i, 1)

    cdef Py_ssize_t open_paren(self, Py_ssize_t i) except -1:
        cdef bint fold
        self.fold_depth = -1
        fold = self.mode == M_DATA and self.pkw == KW_IN and not self.split
        if self.pkwf & F_TYPE and self.type_depth < 0:
            self.type_depth = self.depth + 1
        self.depth += 1
        self.put(i, i + 1)
        self.prev(K_OPEN, 0, 0, i + 1, 0)
        if fold:
            self.fold_depth = self.depth
            self.fold_mark = self.olen
            self.fold_vmark = PyList_GET_SIZE(self.values)
            self.fold_expect = True
        return i + 1

    cdef Py_ssize_t close_paren(self, Py_ssize_t i) except -1:
        cdef tuple items
        if self.fold_depth >= 0 and self.fold_depth == self.depth and not self.fold_expect:
            items = tuple(self.values[self.fold_vmark:])
            del self.values[self.fold_vmark:]
            self.values.append(items)
            self.olen = self.fold_mark
            self.reserve(24)
            self.write_placeholder(PyList_GET_SIZE(self.values))
            self.write(c')')
            self.after_ph = False
            self.space = False
            self.fold_depth = -1
        else:
            self.fold_depth = -1
            self.put(i, i + 1)
        if self.type_depth == self.depth:
            self.type_depth = -1
        if self.ob_depth >= self.depth:
            self.ob_depth = -1
        if self.depth > 0:
            self.depth -= 1
        self.prev(K_CLOSE, 0, 0, i + 1, 0)
        return i + 1

    cdef int comma(self, Py_ssize_t i) except -1:
        if self.fold_depth >= 0 and self.depth == self.fold_depth and not self.fold_expect:
            self.fold_expect = True
        else:
            self.fold_depth = -1
        self.put(i, i + 1)
        self.prev(K_COMMA, 0, 0, i + 1, 2 if self.limit == 1 else 0)
        return 0

    cdef int semicolon(self, Py_ssize_t i) except -1:
        if self.split:
            self.end_statement(i)
        else:
            self.put(i, i + 1)
        self.space = False
        self.newline = False
        self.reset()
        return 0


# -- PostgreSQL escape strings (rare: kept as plain Python, line for line the twin's) -------------------------------

_E_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _e_unescape(str sql, Py_ssize_t a, Py_ssize_t b):
    cdef list parts = []
    cdef bytearray raw = bytearray()
    cdef Py_ssize_t raw_at = -1, i = a, j
    cdef long long v, cp, low
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
            if d == "x" and i + 2 < b and _is_hex(ord(sql[i + 2])):
                j = i + 2
                v = 0
                while j < b and j < i + 4 and _is_hex(ord(sql[j])):
                    v = v * 16 + int(sql[j], 16)
                    j += 1
                if raw_at < 0:
                    raw_at = i
                raw.append(v)
                i = j
                continue
            raw_at = _e_flush(parts, raw, raw_at)
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
            raw_at = _e_flush(parts, raw, raw_at)
            parts.append(c)
            i += 2 if c == "'" else 1
    _e_flush(parts, raw, raw_at)
    return "".join(parts)


cdef Py_ssize_t _e_flush(list parts, bytearray raw, Py_ssize_t raw_at) except -2:
    if raw:
        try:
            parts.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise FingerprintError("invalid byte sequence in escape string", raw_at) from None
        del raw[:]
    return -1


cdef tuple _unicode_escape(str sql, Py_ssize_t i, Py_ssize_t b):
    cdef Py_ssize_t width = 4 if sql[i + 1] == "u" else 8, j = i + 2, k
    if j + width > b:
        raise FingerprintError("invalid Unicode escape", i)
    for k in range(j, j + width):
        if not _is_hex(ord(sql[k])):
            raise FingerprintError("invalid Unicode escape", i)
    return int(sql[j:j + width], 16), j + width


# -- entry points ------------------------------------------------------------------------------------------------

def fingerprint(sql, flags):
    """fingerprint(sql: str, flags: int) -> tuple[str, list]

    ``(normalized text, values)`` of one SQL text; raises ``FingerprintError`` on unterminated constructs."""
    cdef _Scan s = _Scan.__new__(_Scan)
    s.init(_checked(sql, flags), flags & 15, False)
    s.run()
    cdef Py_UCS4 c
    while s.olen > 0:
        c = PyUnicode_READ(s.kind, s.obuf, s.olen - 1)
        if c != c' ' and c != c';':
            break
        s.olen -= 1
    if not s.pg and s.ends_with_dashes():
        s.reserve(1)
        s.write(c';')
    return PyUnicode_FromKindAndData(s.kind, s.obuf, s.olen), s.values


def split_statements(sql, flags):
    """split_statements(sql: str, flags: int) -> list[str]

    The statements of a multi-statement text, split on top-level `;`, each stripped of surrounding whitespace;
    statements holding nothing but whitespace and plain comments are dropped."""
    cdef _Scan s = _Scan.__new__(_Scan)
    s.init(_checked(sql, flags), flags & 15, True)
    s.run()
    s.end_statement(s.n)
    return [s.sql[a:b].strip(" \t\n\r\f\v") for a, b in s.statements]
