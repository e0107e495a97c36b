"""The ``unicode_loose`` collation key in plain Python: the readable spec that ``cython_ext/collation.pyx`` matches.

Vitess's ``unicode_loose_md5`` / ``unicode_loose_xxhash`` vindexes (and ``lookup_unicodeloosemd5_hash``) hash

    collate.New(language.English, collate.Loose).Key(buf, bytes.TrimRight(value, " "))

from ``golang.org/x/text/collate`` (``go/vt/vtgate/vindexes/unicode.go``; Vitess now vendors the same code under
``go/mysql/collations/vindex`` with ``tableIndex{0x15, 0x0}``, the root "und" table that English resolves to). With
``collate.Loose`` only the primary level is kept, so the key is the concatenation of the non-zero UCA primary weights
of the text, each written as 2 bytes big-endian if ``<= 0x7FFF`` and otherwise as 3 bytes
``(w >> 16 | 0x80, w >> 8, w)``. Case, accents and width are ignored; trailing ASCII spaces are trimmed (leading
ones and other white space are not); invalid UTF-8 is an error.

This module is a line-by-line port of the part of ``golang.org/x/text/internal/colltab`` that produces those
weights (``table.go`` ``appendNext``/``matchContraction``, ``contract.go`` ``ctScanner``, ``iter.go`` ``Iter.Next``,
``collelem.go``), run on the tables of ``golang.org/x/text`` v0.43.0 (CLDR 23 / UCA 6.2.0 collation tables,
Unicode 15.0.0 normalization tables). ``scripts/unicode_weights`` (Go, dev-time only) writes those tables to
``cython_ext/data/unicode_loose_weights.bin``, loaded lazily on first use:

- one collation element (a ``colltab.Elem``, uint32) per code point in a two-stage table. Elements are either
  *normal* (a primary weight, plus the canonical combining class for non-starters), the start of a *contraction*
  (look at the following bytes in the contraction trie), an index into the *expansion* table, or a *decomposition*
  (the weights of the code point's NFKD decomposition). Code points the table does not list get an *implicit*
  primary: ``r + 0x10000`` for the common CJK ideographs (U+4E00..9FFF, U+F900..FAFF), ``r + 0x20000`` for other
  ideographs, ``r + 0x50000`` for everything else; Hangul syllables are decomposed into their jamo;
- the expansion elements, the contraction trie (``(L, H, N, I)`` byte-range states) and the contraction elements;
- for discontiguous contractions (a contraction such as Cyrillic ``и`` + U+0306 matched across an interposed
  combining mark of lower class), the NFD lead/trail combining classes and leading non-starter counts.

The collation elements are then put in canonical order the way ``colltab.Iter`` does it (by the combining class
carried in each element), and the key is built from their primaries.
"""
from __future__ import annotations

import functools
import json
import sys
import zlib
from array import array
from pathlib import Path
from typing import Any

__all__ = ["DATA_PATH", "table_metadata", "unicode_loose_key"]

DATA_PATH = Path(__file__).resolve().parent.parent / "data" / "unicode_loose_weights.bin"
_MAGIC = b"SGULCOL1"

# colltab.Elem type boundaries (collelem.go)
_MAX_CE = 0xAFFFFFFF  # <= : normal element
_MAX_CONTRACT = 0xDFFFFFFF  # <= : contraction index
_MAX_EXPAND = 0xEFFFFFFF  # <= : expansion index; above: decomposition
_MARKER = 0xFF000000  # >= : our marker for an unlisted ideograph (implicit weight)
_IMPLICIT_OFFSET = {1: 0x10000, 2: 0x20000}  # marker low byte -> offset; unlisted non-ideographs: 0x50000
_OTHER_OFFSET = 0x50000
_MAX_COMBINING = 30  # iter.go maxCombiningCharacters
_NO_INDEX = 0xFF  # contract.go noIndex
_HANGUL_FIRST, _HANGUL_LAST = 0xAC00, 0xD7A3


class _Table:
    """The decoded data file; see scripts/unicode_weights/main.go ``writeTable`` for the layout."""

    __slots__ = ("contract", "ct", "expand", "max_segment", "meta", "pool", "props", "stage1", "stage2")

    def __init__(self, raw: bytes) -> None:
        if raw[:8] != _MAGIC:
            raise ValueError(f"{DATA_PATH} is not a unicode_loose table")
        buf = zlib.decompress(raw[8:])
        pos = 0

        def take(typecode: str, count: int) -> array:
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
        self.meta: dict[str, Any] = json.loads(buf[pos : pos + meta_len])
        pos += meta_len + (-meta_len % 4)
        n1, n2, nexp, ncon, nct, npool, nprops, self.max_segment = take("I", 8)
        self.stage1 = take("H", n1)
        self.stage2 = take("I", n2)
        self.expand = take("I", nexp)
        self.contract = take("I", ncon)
        self.ct = bytes(buf[pos : pos + 4 * nct])
        pos += 4 * nct
        self.pool = bytes(buf[pos : pos + npool])
        pos += npool + (-npool % 4)
        props = take("I", 2 * nprops)
        # code point -> (NFD LeadCCC, NFD TrailCCC, leading non-starters); absent means (0, 0, 0)
        self.props = {props[i]: (props[i + 1] & 0xFF, (props[i + 1] >> 8) & 0xFF, props[i + 1] >> 16)
                      for i in range(0, len(props), 2)}
        if pos != len(buf) or len(self.stage1) != 0x110000 >> 6:
            raise ValueError(f"{DATA_PATH} is truncated or has an unexpected layout")

    def elem(self, cp: int) -> int:
        return self.stage2[(self.stage1[cp >> 6] << 6) | (cp & 63)]


@functools.cache
def _table() -> _Table:
    return _Table(DATA_PATH.read_bytes())


def table_metadata() -> dict[str, Any]:
    """Where the table came from (x/text version, Unicode versions, generator); loads the table."""
    return dict(_table().meta)


# --- colltab.Elem accessors (collelem.go) --------------------------------------------------------------------------

def _ccc(ce: int) -> int:
    if ce & 0x80000000:
        if ce & 0xA0000000 == 0x80000000:
            return (ce >> 16) & 0xFF
        return (ce >> 20) & 0xFF
    return 0


def _primary(ce: int) -> int:
    if ce >= 0x80000000:
        if ce > 0xA0000000:
            return 0
        return ce & 0xFFFF
    return (ce & 0x3FFFFE00) >> 9


def _implicit(primary: int) -> int:
    """makeImplicitCE: a type-1 element with the default secondary."""
    return 0x40000000 | (primary << 9) | 0x20


def _decode(s: bytes, p: int) -> tuple[int, int]:
    """The code point at ``s[p]`` and its UTF-8 length (``s`` is valid UTF-8)."""
    c0 = s[p]
    if c0 < 0x80:
        return c0, 1
    if c0 < 0xE0:
        return ((c0 & 0x1F) << 6) | (s[p + 1] & 0x3F), 2
    if c0 < 0xF0:
        return ((c0 & 0x0F) << 12) | ((s[p + 1] & 0x3F) << 6) | (s[p + 2] & 0x3F), 3
    return ((c0 & 0x07) << 18) | ((s[p + 1] & 0x3F) << 12) | ((s[p + 2] & 0x3F) << 6) | (s[p + 3] & 0x3F), 4


# --- table.go -----------------------------------------------------------------------------------------------------

def _append_next(t: _Table, w: list[int], s: bytes, p: int) -> int:
    """Append the elements of the rune (or contraction) at ``s[p:]`` to ``w``; return the bytes consumed."""
    cp, sz = _decode(s, p)
    ce = t.elem(cp)
    if ce <= _MAX_CE:
        if ce == 0:
            if _HANGUL_FIRST <= cp <= _HANGUL_LAST:
                # NFD of a syllable is 2 or 3 jamo; their elements are appended as looked up.
                si = cp - _HANGUL_FIRST
                w.append(t.elem(0x1100 + si // 588))
                w.append(t.elem(0x1161 + (si % 588) // 28))
                if si % 28:
                    w.append(t.elem(0x11A7 + si % 28))
                return sz
            ce = _implicit(cp + _OTHER_OFFSET)
        w.append(ce)
    elif ce <= _MAX_CONTRACT:
        sz += _match_contraction(t, w, ce, s[p + sz :])
    elif ce <= _MAX_EXPAND:
        _append_expansion(t, w, ce)
    elif ce >= _MARKER:
        w.append(_implicit(cp + _IMPLICIT_OFFSET[ce & 0xFF]))
    else:
        # The NFKD decomposition, collated on its own (its tertiary rewrite does not touch primaries or classes).
        off = ce & 0xFFFFFF
        nfkd = t.pool[off + 1 : off + 1 + t.pool[off]]
        q = 0
        while q < len(nfkd):
            q += _append_next(t, w, nfkd, q)
    return sz


def _append_expansion(t: _Table, w: list[int], ce: int) -> None:
    i = ce & 0xFFFF
    n = t.expand[i]
    w.extend(t.expand[i + 1 : i + 1 + n])


class _Scanner:
    """contract.go ctScanner: walks the contraction trie over the bytes of ``s[:limit]``."""

    __slots__ = ("base", "done", "index", "limit", "n", "pindex", "s", "states")

    def __init__(self, states: bytes, index: int, n: int, s: bytes) -> None:
        self.states = states
        self.base = index  # the current state list is states[4*base : 4*(base+n)]
        self.n = n
        self.s = s
        self.limit = len(s)
        self.index = 0
        self.pindex = 0
        self.done = False

    def scan(self, p: int) -> int:
        pr = p  # the p at the rune start
        s, st, limit = self.s, self.states, self.limit
        base, n = self.base, self.n
        i = 0
        while i < n and p < limit:
            k = 4 * (base + i)
            lo, hi, nxt, idx = st[k], st[k + 1], st[k + 2], st[k + 3]
            c = s[p]
            if c >= lo:
                if c == lo:
                    p += 1
                    if idx != _NO_INDEX:
                        self.index = idx
                        self.pindex = p
                    if nxt != 0:
                        base, n, i = base + hi + n, nxt, 0
                        if p >= limit or s[p] & 0xC0 != 0x80:  # utf8.RuneStart
                            self.base, self.n, pr = base, n, p
                    else:
                        self.done = True
                        return p
                    continue
                if nxt == 0 and c <= hi:
                    p += 1
                    self.done = True
                    self.index = c - lo + idx
                    self.pindex = p
                    return p
            i += 1
        return pr


def _nfd_props(t: _Table, s: bytes, p: int) -> tuple[int, int, int, int]:
    """(LeadCCC, TrailCCC, leading non-starters, size) of norm.NFD.Properties(s[p:])."""
    cp, sz = _decode(s, p)
    lead, trail, nlead = t.props.get(cp, (0, 0, 0))
    return lead, trail, nlead, sz


def _first_boundary(t: _Table, s: bytes, p: int) -> int:
    """norm.NFD.FirstBoundary(s[p:]) (p is at a rune start): the offset of the first starter, or of the rune that
    overflows 30 non-starters; at the end of ``s`` it returns ``len(s) - p`` or -1, which callers treat alike."""
    i, end, ss = p, len(s), 0
    while True:
        _, _, nlead, sz = _nfd_props(t, s, i)
        ss += nlead
        if ss > _MAX_COMBINING or nlead == 0:
            return i - p
        i += sz
        if i >= end:
            return -1


def _match_contraction(t: _Table, w: list[int], ce: int, suffix: bytes) -> int:
    n = ce & 0xF
    index = (ce >> 4) & 0xFFF
    offset = (ce >> 16) & 0x1FFF
    scan = _Scanner(t.ct, index, n, suffix)
    buf = bytearray()
    bufp = 0
    p = scan.scan(0)
    if not scan.done and p < len(suffix) and suffix[p] >= 0x80:
        p0 = p
        lead, trail, _, size = _nfd_props(t, suffix, p)
        p += size
        if lead != 0:
            prev_cc = trail
            # A gap may only occur in the last normalization segment.
            if p < len(suffix):
                end = _first_boundary(t, suffix, p)
                if end != -1:
                    scan.limit = p + end
            while p < len(suffix) and not scan.done and suffix[p] >= 0x80:
                lead, trail, _, size = _nfd_props(t, suffix, p)
                if lead == 0 or prev_cc >= lead:
                    break
                prev_cc = trail
                pp = scan.scan(p)
                if pp != p:
                    # Copy the interstitial runes for later processing (into a MaxSegmentSize buffer).
                    room = t.max_segment - len(buf)
                    buf += suffix[p0:p][:room]
                    if scan.pindex == pp:
                        bufp = len(buf)
                    p = p0 = pp
                else:
                    p += size
    # The matched contraction, which may be an expansion.
    ce = t.contract[scan.index + offset]
    if ce <= _MAX_CE:
        w.append(ce)
    else:
        _append_expansion(t, w, ce)
    # The runes skipped over inside the segment.
    rest = bytes(buf[:bufp])
    q = 0
    while q < len(rest):
        q += _append_next(t, w, rest, q)
    return scan.pindex


# --- iter.go ------------------------------------------------------------------------------------------------------

def _collation_elements(t: _Table, s: bytes) -> list[int]:
    """All collation elements of ``s``, canonically ordered as colltab.Iter.Next leaves them."""
    elems: list[int] = []
    n_done = 0  # Iter.N: elements that will not be reordered any more
    p_next = 0
    end = len(s)

    def append_next() -> bool:
        nonlocal p_next
        if p_next >= end:
            return False
        p_next += _append_next(t, elems, s, p_next) or 1
        return True

    while True:  # for iter.Next() {}
        if n_done == len(elems) and not append_next():
            break
        prev_ccc = _ccc(elems[-1])
        if prev_ccc == 0:
            n_done = len(elems)
            continue
        if _ccc(elems[n_done]) == 0:
            n_done += 1
            while n_done < len(elems) and _ccc(elems[n_done]) == 0:
                n_done += 1
            continue
        # The segment starts with non-starters: collect them all so that they can be put in canonical order.
        starter_left = False
        while True:
            p = len(elems)
            if not append_next():
                break
            ccc = _ccc(elems[p])
            if ccc == 0 or len(elems) - n_done > _MAX_COMBINING:
                n_done = p  # leave the starter for the next round
                starter_left = True
                break
            if ccc < prev_ccc:
                _do_norm(elems, n_done, p, ccc)
            else:
                prev_ccc = ccc
        if starter_left:
            continue
        more = len(elems) != n_done
        n_done = len(elems)
        if not more:
            break
    return elems


def _do_norm(elems: list[int], n_done: int, p: int, ccc: int) -> None:
    """iter.go doNorm: move the elements appended at ``p`` before those of higher combining class."""
    k = p
    p -= 1
    while p > n_done and ccc < _ccc(elems[p - 1]):
        p -= 1
    elems[p:] = elems[k:] + elems[p:k]


# --- the key ------------------------------------------------------------------------------------------------------

def _as_utf8(data: object) -> bytes:
    if isinstance(data, str):
        try:
            return data.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("cannot normalize string containing invalid UTF-8 (lone surrogate)") from None
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"cannot normalize string containing invalid UTF-8 at byte {exc.start}") from None
        return raw
    raise TypeError(f"expected bytes or str, got {type(data).__name__}")


def unicode_loose_key(data: bytes | bytearray | memoryview | str) -> bytes:
    """The x/text ``collate.Loose`` primary key that Vitess's unicode_loose vindexes hash.

    ``data`` is bytes (must be valid UTF-8, else ``ValueError``) or ``str`` (encoded as UTF-8; a lone surrogate is
    ``ValueError``); anything else is ``TypeError``. Trailing ASCII spaces are trimmed first.
    ``md5(key)`` is the unicode_loose_md5 keyspace id, ``xxhash64(key)`` (8 bytes LE) the unicode_loose_xxhash one.
    """
    s = _as_utf8(data).rstrip(b" ")
    if not s:
        return b""
    out = bytearray()
    for ce in _collation_elements(_table(), s):
        w = _primary(ce)
        if w:
            if w <= 0x7FFF:
                out += bytes((w >> 8, w & 0xFF))
            else:
                out += bytes(((w >> 16) | 0x80, (w >> 8) & 0xFF, w & 0xFF))
    return bytes(out)
