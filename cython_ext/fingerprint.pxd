"""Layout of the compiled fingerprint scanner: its constants and the state of one pass (``fingerprint.pyx``).

The twin ``cython_ext/pure/fingerprint.py`` names the same constants and fields; see it for their meaning.
"""
cimport cython
from libc.stdint cimport uint64_t


cdef enum:
    KW_IN = 1
    KW_ORDER = 2
    KW_GROUP = 3
    KW_BY = 4
    KW_LIMIT = 5
    KW_OFFSET = 6
    KW_FETCH = 7
    KW_FIRST = 8
    KW_NEXT = 9
    KW_INTERVAL = 10
    KW_OTHER = 11

cdef enum:
    F_OPKW_MY = 1
    F_OPKW_PG = 2
    F_TYPE = 4
    F_CLAUSE_END = 8
    F_DATA = 16
    F_EXPLAIN = 32

# Previous-token kinds; from K_WORD on they are operands.
cdef enum:
    K_NONE = 0
    K_OP = 1
    K_OPEN = 2
    K_COMMA = 3
    K_COMMENT = 4
    K_OPKW = 5
    K_WORD = 6
    K_QIDENT = 7
    K_LIT = 8
    K_VALUE = 9
    K_STR = 10
    K_PARAM = 11
    K_CLOSE = 12

cdef enum:
    M_START = 0
    M_DATA = 1
    M_OTHER = 2
    M_PENDING = 3

cdef enum:
    N_INT = 0
    N_DEC = 1
    N_FLOAT = 2
    N_WORD = 3

cdef enum:
    S_MY = 0
    S_PG = 1
    S_E = 2
    S_DOLLAR = 3
    S_HEX = 4
    S_U = 5


cdef enum:
    KW_SLOTS = 256  # open addressing, load about 0.35
    KW_MAXLEN = 16  # two packed 64-bit words

cdef struct KwSlot:
    uint64_t lo
    uint64_t hi
    int kw
    int flags


@cython.final
@cython.freelist(4)
cdef class _Scan:
    cdef str sql
    cdef void* data  # the str's own buffer, `kind` bytes per character
    cdef int kind
    cdef Py_ssize_t n
    cdef bint pg, dq_string, my_bs, pg_bs, split  # dialect, MySQL "..." is a string, backslash escapes, split mode
    cdef int opkw  # F_OPKW_MY or F_OPKW_PG
    cdef char* obuf  # output, `kind` bytes per character
    cdef Py_ssize_t olen, ocap
    cdef bint after_ph, space, newline  # output ends with a placeholder; pending gap; the gap has a line break
    cdef list values
    cdef Py_ssize_t nq  # `?` seen
    cdef list statements  # split mode: (start, end) of non-empty statements
    cdef Py_ssize_t stmt_start
    cdef bint nonempty
    # per statement (reset after each `;`)
    cdef int mode  # M_*
    cdef int pkind, pkw, pkwf, pkw2  # previous token: K_* kind, keyword id and flags; keyword id before it
    cdef int limit  # 1 after a kept LIMIT count, 2 after its comma
    cdef Py_ssize_t depth, pend  # open parentheses; end of the previous token
    cdef Py_ssize_t type_depth, ob_depth  # depth of an open type argument list / ORDER BY or GROUP BY list, or -1
    cdef Py_ssize_t fold_depth, fold_mark, fold_vmark  # IN list that may fold: depth (-1: none), olen, len(values)
    cdef bint fold_expect  # an IN-list item is expected next

    cdef int init(self, str sql, int flags, bint split) except -1
    cdef inline void reset(self) noexcept
    cdef inline Py_UCS4 at(self, Py_ssize_t i) noexcept
    cdef bint starts_kept_comment(self, Py_ssize_t i) noexcept
    cdef int reserve(self, Py_ssize_t extra) except -1
    cdef inline void write(self, Py_UCS4 c) noexcept
    cdef inline Py_UCS4 last(self) noexcept
    cdef void write_placeholder(self, Py_ssize_t number) noexcept
    cdef inline bint gap(self) noexcept
    cdef bint ends_with_dashes(self) noexcept
    cdef int put(self, Py_ssize_t a, Py_ssize_t b) except -1
    cdef int put_value(self, object value, int kind, Py_ssize_t end) except -1
    cdef inline void prev(self, int kind, int kw, int kwf, Py_ssize_t end, int limit) noexcept
    cdef int end_statement(self, Py_ssize_t end) except -1
    cdef Py_ssize_t comment_end(self, Py_ssize_t i) except -2
    cdef Py_ssize_t skip_gap(self, Py_ssize_t i) except -2
    cdef Py_ssize_t quoted_end(self, Py_ssize_t i, Py_UCS4 q, bint backslash) noexcept
    cdef Py_ssize_t ident_quoted_end(self, Py_ssize_t i, Py_UCS4 q) except -1
    cdef Py_ssize_t number_end(self, Py_ssize_t i, int* kind) noexcept
    cdef inline Py_ssize_t ident_end(self, Py_ssize_t i) noexcept
    cdef inline bint operand(self) noexcept
    cdef int run(self) except -1
    cdef inline bint unary(self) noexcept
    cdef inline bint number_follows(self, Py_ssize_t i) noexcept
    cdef Py_ssize_t op(self, Py_ssize_t i, Py_ssize_t length) except -1
    cdef Py_ssize_t plain_word(self, Py_ssize_t i, Py_ssize_t j) except -1
    cdef int kw_lookup(self, Py_ssize_t i, Py_ssize_t j, int* flags) noexcept
    cdef Py_ssize_t word(self, Py_ssize_t i) except -1
    cdef Py_ssize_t quoted_ident(self, Py_ssize_t i, Py_ssize_t j) except -1
    cdef Py_ssize_t variable(self, Py_ssize_t i) except -1
    cdef Py_ssize_t number(self, Py_ssize_t i, Py_ssize_t start) except -1
    cdef object number_value(self, Py_ssize_t i, Py_ssize_t start, Py_ssize_t end, int kind)
    cdef bint item_ends(self, Py_ssize_t j) except -1
    cdef Py_ssize_t find_dollar_close(self, Py_ssize_t q, Py_ssize_t tag_end) noexcept
    cdef Py_ssize_t string(self, Py_ssize_t start, Py_ssize_t q, int form) except -1
    cdef bint valid_hex(self, Py_ssize_t a, Py_ssize_t b) noexcept
    cdef object decode(self, int form, Py_ssize_t q, Py_ssize_t a, Py_ssize_t b)
    cdef object decode_hex(self, Py_ssize_t a, Py_ssize_t b)
    cdef object decode_quoted(self, Py_ssize_t a, Py_ssize_t b, Py_UCS4 q, bint backslash)
    cdef Py_ssize_t dollar(self, Py_ssize_t i) except -1
    cdef Py_ssize_t colon(self, Py_ssize_t i) except -1
    cdef Py_ssize_t open_paren(self, Py_ssize_t i) except -1
    cdef Py_ssize_t close_paren(self, Py_ssize_t i) except -1
    cdef int comma(self, Py_ssize_t i) except -1
    cdef int semicolon(self, Py_ssize_t i) except -1
