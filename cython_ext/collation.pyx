# cython: annotation_typing=False
"""The ``unicode_loose`` collation key, compiled. Twin and spec: ``cython_ext/pure/collation.py``.

Same algorithm, same table file (``cython_ext/data/unicode_loose_weights.bin``, read on first use and copied into C
arrays that live as long as the process), same answers and exceptions. The inner loop works on the UTF-8 bytes with
C arrays: collation elements go to a stack buffer (heap when a text needs more than 256 of them).
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.unicode cimport PyUnicode_Check
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy

import json
import sys
import zlib
from array import array
from pathlib import Path

__all__ = ["DATA_PATH", "table_metadata", "unicode_loose_key"]

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t* size) except NULL

DATA_PATH = Path(__file__).resolve().parent / "data" / "unicode_loose_weights.bin"
_MAGIC = b"SGULCOL1"

cdef extern from *:
    """
    #define SG_MAX_CE 0xAFFFFFFFu        /* <= : normal element */
    #define SG_MAX_CONTRACT 0xDFFFFFFFu  /* <= : contraction index */
    #define SG_MAX_EXPAND 0xEFFFFFFFu    /* <= : expansion index; above: decomposition */
    #define SG_MARKER 0xFF000000u        /* >= : unlisted ideograph marker */
    """
    const uint32_t MAX_CE "SG_MAX_CE"
    const uint32_t MAX_CONTRACT "SG_MAX_CONTRACT"
    const uint32_t MAX_EXPAND "SG_MAX_EXPAND"
    const uint32_t MARKER "SG_MARKER"

cdef enum:
    OTHER_OFFSET = 0x50000
    MAX_COMBINING = 30
    NO_INDEX = 0xFF
    HANGUL_FIRST = 0xAC00
    HANGUL_LAST = 0xD7A3
    MAX_SEGMENT = 128  # norm.MaxSegmentSize; the table file must agree
    STACK_ELEMS = 256


# --- the table (C arrays, filled once) -----------------------------------------------------------------------------

cdef bint _loaded = False
cdef const uint16_t* _stage1 = NULL
cdef const uint32_t* _stage2 = NULL
cdef const uint32_t* _expand = NULL
cdef const uint32_t* _contract = NULL
cdef const uint8_t* _ct = NULL
cdef const uint8_t* _pool = NULL
cdef const uint32_t* _prop_cp = NULL  # sorted code points with non-default NFD properties
cdef const uint32_t* _prop_val = NULL  # leadCCC | trailCCC << 8 | nLead << 16
cdef Py_ssize_t _n_props = 0
cdef object _meta = None


cdef void* _copy_out(object arr) except NULL:
    """A PyMem copy of an array.array's contents (never freed: the table lives as long as the process)."""
    cdef const uint8_t[:] view = memoryview(arr).cast("B")
    cdef Py_ssize_t n = view.shape[0]
    cdef void* out = PyMem_Malloc(n if n > 0 else 1)
    if out == NULL:
        raise MemoryError()
    if n > 0:
        memcpy(out, &view[0], n)
    return out


def _load():
    """Read the table file into the module's C arrays (same parsing as the twin's ``_Table``)."""
    global _loaded, _stage1, _stage2, _expand, _contract, _ct, _pool, _prop_cp, _prop_val, _n_props, _meta
    raw = DATA_PATH.read_bytes()
    if raw[:8] != _MAGIC:
        raise ValueError(f"{DATA_PATH} is not a unicode_loose table")
    buf = zlib.decompress(raw[8:])
    pos = 0

    def take(typecode, count):
        nonlocal pos
        arr = array(typecode)
        size = arr.itemsize * count
        arr.frombytes(buf[pos : pos + size])
        if sys.byteorder != "little":
            arr.byteswap()
        pos += size
        pos += -pos % 4
        return arr

    (meta_len,) = take("I", 1)
    meta = json.loads(buf[pos : pos + meta_len])
    pos += meta_len + (-meta_len % 4)
    n1, n2, nexp, ncon, nct, npool, nprops, max_segment = take("I", 8)
    stage1 = take("H", n1)
    stage2 = take("I", n2)
    expand = take("I", nexp)
    contract = take("I", ncon)
    ct = array("B", buf[pos : pos + 4 * nct])
    pos += 4 * nct
    pool = array("B", buf[pos : pos + npool])
    pos += npool + (-npool % 4)
    props = take("I", 2 * nprops)
    if pos != len(buf) or n1 != 0x110000 >> 6 or max_segment != MAX_SEGMENT or max(stage1) * 64 + 64 > n2:
        raise ValueError(f"{DATA_PATH} is truncated or has an unexpected layout")
    pairs = sorted((props[i], props[i + 1]) for i in range(0, len(props), 2))
    prop_cp = array("I", [cp for cp, _ in pairs])
    prop_val = array("I", [v for _, v in pairs])
    # Publish only complete arrays; a racing second load just leaks one copy.
    _stage1 = <const uint16_t*>_copy_out(stage1)
    _stage2 = <const uint32_t*>_copy_out(stage2)
    _expand = <const uint32_t*>_copy_out(expand)
    _contract = <const uint32_t*>_copy_out(contract)
    _ct = <const uint8_t*>_copy_out(ct)
    _pool = <const uint8_t*>_copy_out(pool)
    _prop_cp = <const uint32_t*>_copy_out(prop_cp)
    _prop_val = <const uint32_t*>_copy_out(prop_val)
    _n_props = len(pairs)
    _meta = meta
    _loaded = True


def table_metadata():
    """Where the table came from (x/text version, Unicode versions, generator); loads the table."""
    if not _loaded:
        _load()
    return dict(_meta)


cdef inline uint32_t _elem(uint32_t cp) noexcept nogil:
    return _stage2[(<uint32_t>_stage1[cp >> 6] << 6) | (cp & 63)]


cdef uint32_t _props(uint32_t cp) noexcept nogil:
    """NFD properties of ``cp`` (leadCCC | trailCCC << 8 | nLead << 16), 0 for most code points."""
    cdef Py_ssize_t lo = 0, hi = _n_props, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if _prop_cp[mid] < cp:
            lo = mid + 1
        else:
            hi = mid
    if lo < _n_props and _prop_cp[lo] == cp:
        return _prop_val[lo]
    return 0


# --- colltab.Elem accessors (collelem.go) --------------------------------------------------------------------------

cdef inline uint32_t _ccc(uint32_t ce) noexcept nogil:
    if ce & 0x80000000u:
        if (ce & 0xA0000000u) == 0x80000000u:
            return (ce >> 16) & 0xFF
        return (ce >> 20) & 0xFF
    return 0


cdef inline uint32_t _primary(uint32_t ce) noexcept nogil:
    if ce >= 0x80000000u:
        if ce > 0xA0000000u:
            return 0
        return ce & 0xFFFF
    return (ce & 0x3FFFFE00u) >> 9


cdef inline uint32_t _implicit(uint32_t primary) noexcept nogil:
    return 0x40000000u | (primary << 9) | 0x20u


cdef inline Py_ssize_t _decode(const uint8_t* s, Py_ssize_t p, uint32_t* cp) noexcept nogil:
    """The code point at s[p] (valid UTF-8) into ``cp``; returns its length."""
    cdef uint32_t c0 = s[p]
    if c0 < 0x80:
        cp[0] = c0
        return 1
    if c0 < 0xE0:
        cp[0] = ((c0 & 0x1F) << 6) | (s[p + 1] & 0x3F)
        return 2
    if c0 < 0xF0:
        cp[0] = ((c0 & 0x0F) << 12) | (<uint32_t>(s[p + 1] & 0x3F) << 6) | (s[p + 2] & 0x3F)
        return 3
    cp[0] = (((c0 & 0x07) << 18) | (<uint32_t>(s[p + 1] & 0x3F) << 12) | (<uint32_t>(s[p + 2] & 0x3F) << 6)
             | (s[p + 3] & 0x3F))
    return 4


cdef Py_ssize_t _invalid_utf8_at(const uint8_t* s, Py_ssize_t n) noexcept nogil:
    """-1 when s[:n] is valid UTF-8 (Go's utf8.Valid), else the start of the first bad sequence."""
    cdef Py_ssize_t i = 0
    cdef uint8_t c, lo, hi
    cdef int k
    while i < n:
        c = s[i]
        if c < 0x80:
            i += 1
            continue
        lo = 0x80
        hi = 0xBF
        if 0xC2 <= c <= 0xDF:
            k = 1
        elif c == 0xE0:
            k = 2
            lo = 0xA0
        elif c == 0xED:
            k = 2
            hi = 0x9F
        elif 0xE1 <= c <= 0xEF:
            k = 2
        elif c == 0xF0:
            k = 3
            lo = 0x90
        elif c == 0xF4:
            k = 3
            hi = 0x8F
        elif 0xF1 <= c <= 0xF3:
            k = 3
        else:
            return i
        if i + k >= n:
            return i
        if not (lo <= s[i + 1] <= hi):
            return i
        if k >= 2 and not (0x80 <= s[i + 2] <= 0xBF):
            return i
        if k == 3 and not (0x80 <= s[i + 3] <= 0xBF):
            return i
        i += k + 1
    return -1


# --- growable element buffer -----------------------------------------------------------------------------------------

cdef struct ElemBuf:
    uint32_t* data
    Py_ssize_t n
    Py_ssize_t cap
    bint on_heap


cdef int _grow(ElemBuf* w) except -1:
    cdef Py_ssize_t cap = w.cap * 2
    cdef uint32_t* data = <uint32_t*>PyMem_Malloc(cap * sizeof(uint32_t))
    if data == NULL:
        raise MemoryError()
    memcpy(data, w.data, w.n * sizeof(uint32_t))
    if w.on_heap:
        PyMem_Free(w.data)
    w.data = data
    w.cap = cap
    w.on_heap = True
    return 0


cdef inline int _push(ElemBuf* w, uint32_t ce) except -1:
    if w.n == w.cap:
        _grow(w)
    w.data[w.n] = ce
    w.n += 1
    return 0


# --- table.go -----------------------------------------------------------------------------------------------------

cdef int _append_expansion(ElemBuf* w, uint32_t ce) except -1:
    cdef uint32_t i = ce & 0xFFFF
    cdef uint32_t n = _expand[i], j
    for j in range(i + 1, i + 1 + n):
        _push(w, _expand[j])
    return 0


cdef Py_ssize_t _append_next(ElemBuf* w, const uint8_t* s, Py_ssize_t p, Py_ssize_t end) except -1:
    """Append the elements of the rune (or contraction) at s[p:end]; return the bytes consumed."""
    cdef uint32_t cp, ce, si
    cdef Py_ssize_t sz = _decode(s, p, &cp), q, dn
    cdef const uint8_t* d
    ce = _elem(cp)
    if ce <= MAX_CE:
        if ce == 0:
            if HANGUL_FIRST <= cp <= HANGUL_LAST:
                si = cp - HANGUL_FIRST
                _push(w, _elem(0x1100 + si // 588))
                _push(w, _elem(0x1161 + (si % 588) // 28))
                if si % 28:
                    _push(w, _elem(0x11A7 + si % 28))
                return sz
            ce = _implicit(cp + OTHER_OFFSET)
        _push(w, ce)
    elif ce <= MAX_CONTRACT:
        sz += _match_contraction(w, ce, s + p + sz, end - p - sz)
    elif ce <= MAX_EXPAND:
        _append_expansion(w, ce)
    elif ce >= MARKER:
        _push(w, _implicit(cp + (0x10000u if (ce & 0xFF) == 1 else 0x20000u)))
    else:
        d = _pool + (ce & 0xFFFFFF)
        dn = d[0]
        d += 1
        q = 0
        while q < dn:
            q += _append_next(w, d, q, dn)
    return sz


cdef struct Scanner:
    Py_ssize_t base
    Py_ssize_t n
    Py_ssize_t limit
    Py_ssize_t index
    Py_ssize_t pindex
    bint done


cdef Py_ssize_t _scan(Scanner* sc, const uint8_t* s, Py_ssize_t p) noexcept nogil:
    """contract.go ctScanner.scan."""
    cdef Py_ssize_t pr = p, base = sc.base, n = sc.n, i = 0, k
    cdef uint8_t lo, hi, nxt, idx, c
    while i < n and p < sc.limit:
        k = 4 * (base + i)
        lo = _ct[k]
        hi = _ct[k + 1]
        nxt = _ct[k + 2]
        idx = _ct[k + 3]
        c = s[p]
        if c >= lo:
            if c == lo:
                p += 1
                if idx != NO_INDEX:
                    sc.index = idx
                    sc.pindex = p
                if nxt != 0:
                    base = base + hi + n
                    n = nxt
                    i = 0
                    if p >= sc.limit or (s[p] & 0xC0) != 0x80:
                        sc.base = base
                        sc.n = n
                        pr = p
                else:
                    sc.done = True
                    return p
                continue
            if nxt == 0 and c <= hi:
                p += 1
                sc.done = True
                sc.index = c - lo + idx
                sc.pindex = p
                return p
        i += 1
    return pr


cdef Py_ssize_t _first_boundary(const uint8_t* s, Py_ssize_t p, Py_ssize_t end) noexcept nogil:
    """norm.NFD.FirstBoundary(s[p:end]) for p at a rune start, p < end (-1: none before the end)."""
    cdef Py_ssize_t i = p, sz
    cdef uint32_t cp, nlead, ss = 0
    while True:
        sz = _decode(s, i, &cp)
        nlead = _props(cp) >> 16
        ss += nlead
        if ss > MAX_COMBINING or nlead == 0:
            return i - p
        i += sz
        if i >= end:
            return -1


cdef Py_ssize_t _match_contraction(ElemBuf* w, uint32_t ce, const uint8_t* suffix, Py_ssize_t slen) except -1:
    cdef Scanner sc
    cdef uint8_t buf[MAX_SEGMENT]
    cdef Py_ssize_t bufn = 0, bufp = 0, p, p0, pp, size, room, bnd, q
    cdef uint32_t offset = (ce >> 16) & 0x1FFF, cp, pr, lead, prev_cc
    sc.base = (ce >> 4) & 0xFFF
    sc.n = ce & 0xF
    sc.limit = slen
    sc.index = 0
    sc.pindex = 0
    sc.done = False
    p = _scan(&sc, suffix, 0)
    if not sc.done and p < slen and suffix[p] >= 0x80:
        p0 = p
        size = _decode(suffix, p, &cp)
        pr = _props(cp)
        p += size
        if (pr & 0xFF) != 0:
            prev_cc = (pr >> 8) & 0xFF
            if p < slen:
                bnd = _first_boundary(suffix, p, slen)
                if bnd != -1:
                    sc.limit = p + bnd
            while p < slen and not sc.done and suffix[p] >= 0x80:
                size = _decode(suffix, p, &cp)
                pr = _props(cp)
                lead = pr & 0xFF
                if lead == 0 or prev_cc >= lead:
                    break
                prev_cc = (pr >> 8) & 0xFF
                pp = _scan(&sc, suffix, p)
                if pp != p:
                    room = MAX_SEGMENT - bufn
                    if p - p0 < room:
                        room = p - p0
                    memcpy(buf + bufn, suffix + p0, room)
                    bufn += room
                    if sc.pindex == pp:
                        bufp = bufn
                    p = pp
                    p0 = pp
                else:
                    p += size
    ce = _contract[sc.index + offset]
    if ce <= MAX_CE:
        _push(w, ce)
    else:
        _append_expansion(w, ce)
    q = 0
    while q < bufp:
        q += _append_next(w, buf, q, bufp)
    return sc.pindex


# --- iter.go ------------------------------------------------------------------------------------------------------

cdef inline void _reverse(uint32_t* a, Py_ssize_t i, Py_ssize_t j) noexcept nogil:
    cdef uint32_t t
    j -= 1
    while i < j:
        t = a[i]
        a[i] = a[j]
        a[j] = t
        i += 1
        j -= 1


cdef void _do_norm(ElemBuf* w, Py_ssize_t n_done, Py_ssize_t p, uint32_t ccc) noexcept nogil:
    """iter.go doNorm: E[p:n] = E[k:n] + E[p:k], moving the new elements before those of higher class."""
    cdef Py_ssize_t k = p, n = w.n
    p -= 1
    while p > n_done and ccc < _ccc(w.data[p - 1]):
        p -= 1
    _reverse(w.data, p, k)
    _reverse(w.data, k, n)
    _reverse(w.data, p, n)


cdef int _collation_elements(ElemBuf* w, const uint8_t* s, Py_ssize_t end) except -1:
    cdef Py_ssize_t n_done = 0, p_next = 0, p, sz
    cdef uint32_t prev_ccc, ccc
    cdef bint starter_left
    while True:
        if n_done == w.n:
            if p_next >= end:
                break
            sz = _append_next(w, s, p_next, end)
            p_next += sz if sz else 1
        prev_ccc = _ccc(w.data[w.n - 1])
        if prev_ccc == 0:
            n_done = w.n
            continue
        if _ccc(w.data[n_done]) == 0:
            n_done += 1
            while n_done < w.n and _ccc(w.data[n_done]) == 0:
                n_done += 1
            continue
        starter_left = False
        while True:
            p = w.n
            if p_next >= end:
                break
            sz = _append_next(w, s, p_next, end)
            p_next += sz if sz else 1
            ccc = _ccc(w.data[p])
            if ccc == 0 or w.n - n_done > MAX_COMBINING:
                n_done = p
                starter_left = True
                break
            if ccc < prev_ccc:
                _do_norm(w, n_done, p, ccc)
            else:
                prev_ccc = ccc
        if starter_left:
            continue
        if w.n == n_done:
            break
        n_done = w.n
    return 0


# --- the key ------------------------------------------------------------------------------------------------------

cdef bytes _key(const uint8_t* s, Py_ssize_t n):
    cdef uint32_t stack_elems[STACK_ELEMS]
    cdef uint8_t stack_out[3 * STACK_ELEMS]
    cdef ElemBuf w
    cdef uint8_t* out = stack_out
    cdef Py_ssize_t i, k = 0
    cdef uint32_t pw
    while n > 0 and s[n - 1] == 0x20:
        n -= 1
    if n == 0:
        return b""
    w.data = stack_elems
    w.n = 0
    w.cap = STACK_ELEMS
    w.on_heap = False
    try:
        _collation_elements(&w, s, n)
        if w.n > STACK_ELEMS:
            out = <uint8_t*>PyMem_Malloc(3 * w.n)
            if out == NULL:
                raise MemoryError()
        for i in range(w.n):
            pw = _primary(w.data[i])
            if pw:
                if pw <= 0x7FFF:
                    out[k] = pw >> 8
                    out[k + 1] = pw & 0xFF
                    k += 2
                else:
                    out[k] = (pw >> 16) | 0x80
                    out[k + 1] = (pw >> 8) & 0xFF
                    out[k + 2] = pw & 0xFF
                    k += 3
        return PyBytes_FromStringAndSize(<char*>out, k)
    finally:
        if w.on_heap:
            PyMem_Free(w.data)
        if out != stack_out:
            PyMem_Free(out)


def unicode_loose_key(data):
    """The x/text ``collate.Loose`` primary key that Vitess's unicode_loose vindexes hash.

    ``data`` is bytes (must be valid UTF-8, else ``ValueError``) or ``str`` (encoded as UTF-8; a lone surrogate is
    ``ValueError``); anything else is ``TypeError``. Trailing ASCII spaces are trimmed first.
    ``md5(key)`` is the unicode_loose_md5 keyspace id, ``xxhash64(key)`` (8 bytes LE) the unicode_loose_xxhash one.
    """
    cdef const char* s
    cdef Py_ssize_t n, bad
    if not _loaded:
        _load()
    if PyUnicode_Check(data):
        try:
            s = PyUnicode_AsUTF8AndSize(data, &n)
        except UnicodeEncodeError:
            raise ValueError("cannot normalize string containing invalid UTF-8 (lone surrogate)") from None
        return _key(<const uint8_t*>s, n)
    if not PyBytes_Check(data):
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        else:
            raise TypeError(f"expected bytes or str, got {type(data).__name__}")
    s = PyBytes_AS_STRING(data)
    n = PyBytes_GET_SIZE(data)
    bad = _invalid_utf8_at(<const uint8_t*>s, n)
    if bad >= 0:
        raise ValueError(f"cannot normalize string containing invalid UTF-8 at byte {bad}")
    return _key(<const uint8_t*>s, n)
