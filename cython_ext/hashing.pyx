# cython: annotation_typing=False
"""Vindex hashes, compiled. Twin and spec: ``cython_ext/pure/hashing.py`` (same answers, exceptions, messages).

The batch functions read the input sequence's item array directly, build each 8-byte keyspace id in place in a
fresh bytes object and fill a preallocated list, so the only per-key Python work is one bytes allocation.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_Check, PyByteArray_GET_SIZE
from cpython.list cimport PyList_CheckExact, PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_AsUnsignedLongLong, PyLong_Check, PyLong_FromSsize_t, PyLong_FromUnsignedLongLong
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.sequence cimport PySequence_Fast_GET_SIZE, PySequence_Fast_ITEMS
from cpython.tuple cimport PyTuple_CheckExact
from cpython.unicode cimport PyUnicode_Check
from libc.stdint cimport uint32_t, uint64_t

from cython_ext.shardmap cimport ShardMap

cdef extern from "Python.h":
    # Never fails for an int (only overflow is reported), so no error check is generated.
    long long PyLong_AsLongLongAndOverflow(object value, int* overflow) noexcept
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL
    str PyNumber_ToBase(object number, int base)


__all__ = [
    "reverse_bits64",
    "vhash",
    "vhash_many",
    "vhash_shards",
    "vunhash",
    "xxhash64",
    "xxhash_ksid",
    "xxhash_ksid_many",
]


cdef inline object _as_sequence(object values):
    """A list or tuple whose item array can be read directly; other iterables are copied (Python's own errors)."""
    if PyList_CheckExact(values) or PyTuple_CheckExact(values):
        return values
    return list(values)


cdef inline uint64_t _load_be64(const unsigned char* p) noexcept nogil:
    return ((<uint64_t>p[0] << 56) | (<uint64_t>p[1] << 48) | (<uint64_t>p[2] << 40) | (<uint64_t>p[3] << 32)
            | (<uint64_t>p[4] << 24) | (<uint64_t>p[5] << 16) | (<uint64_t>p[6] << 8) | <uint64_t>p[7])


cdef inline void _store_be64(unsigned char* p, uint64_t v) noexcept nogil:
    cdef int k
    for k in range(8):
        p[k] = <unsigned char>(v >> (56 - 8 * k))


cdef inline void _store_le64(unsigned char* p, uint64_t v) noexcept nogil:
    cdef int k
    for k in range(8):
        p[k] = <unsigned char>(v >> (8 * k))


cdef uint64_t as_u64(object value) except? 0:
    """The uint64 Vitess would use for ``value``: two's complement for negatives, range-checked."""
    cdef int overflow
    cdef long long signed_value
    if not PyLong_Check(value):
        raise TypeError(f"expected an int, got {type(value).__name__}")
    signed_value = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow == 0:
        return <uint64_t>signed_value
    if overflow > 0:
        try:
            return PyLong_AsUnsignedLongLong(value)
        except OverflowError:
            pass
    raise ValueError(f"integer out of 64-bit range [-2**63, 2**64): {int(value)}")


# --- DES with the all-zero key ------------------------------------------------------------------------------------
# FIPS 46-3 tables, 1-based bit numbers counted from the most significant bit.

_IP = (
    58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4,
    62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8,
    57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
    61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7,
)
_FP = (
    40, 8, 48, 16, 56, 24, 64, 32, 39, 7, 47, 15, 55, 23, 63, 31,
    38, 6, 46, 14, 54, 22, 62, 30, 37, 5, 45, 13, 53, 21, 61, 29,
    36, 4, 44, 12, 52, 20, 60, 28, 35, 3, 43, 11, 51, 19, 59, 27,
    34, 2, 42, 10, 50, 18, 58, 26, 33, 1, 41, 9, 49, 17, 57, 25,
)
_P = (16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10,
      2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25)
_SBOX = (
    (14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7,
     0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
     4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0,
     15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13),
    (15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10,
     3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
     0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15,
     13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9),
    (10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8,
     13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
     13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7,
     1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12),
    (7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15,
     13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
     10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4,
     3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14),
    (2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9,
     14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
     4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14,
     11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3),
    (12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11,
     10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
     9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6,
     4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13),
    (4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1,
     13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
     1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2,
     6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12),
    (13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7,
     1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
     7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8,
     2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11),
)

# The zero-key round function P(S(E(R))) as one table per pair of S-boxes: neighbouring six-bit windows of E(R)
# overlap by two bits, so a pair reads one ten-bit window and a round takes four lookups instead of eight (16 KiB).
cdef uint32_t _sp2[4][1024]
# IP and FP each send the bits of input byte k to one fixed bit position of every output byte. IP: byte k lands on
# bit value 1 << k, so the table for byte 0 shifted left by k serves every byte. FP: byte 4 lands on bit value 0x80,
# and byte k on the same bits shifted right by _FP_SHIFT[k]. Two 2 KiB tables instead of sixteen.
cdef uint64_t _ip_byte0[256]
cdef uint64_t _fp_byte4[256]
cdef unsigned char _FP_SHIFT[8]
_FP_SHIFT[:] = [1, 3, 5, 7, 0, 2, 4, 6]


cdef uint64_t _permute(uint64_t value, tuple table, int width):
    """Output bit i (from the top) is input bit ``table[i]`` of a ``width``-bit value."""
    cdef uint64_t out = 0
    cdef int src
    for src in table:
        out = (out << 1) | ((value >> (width - src)) & 1)
    return out


cdef uint32_t _sp(int box, int six):
    """S-box ``box`` then P for one six-bit input: that S-box's share of the zero-key round function."""
    cdef int row = ((six >> 4) & 2) | (six & 1)  # outer bits pick the row, the middle four the column
    cdef int col = (six >> 1) & 0xF
    return <uint32_t>_permute(<uint64_t>_SBOX[box][row * 16 + col] << (28 - 4 * box), _P, 32)


cdef void _init_des_tables():
    cdef int pair, ten, b
    for pair in range(4):
        for ten in range(1024):
            _sp2[pair][ten] = _sp(2 * pair, ten >> 4) ^ _sp(2 * pair + 1, ten & 0x3F)
    for b in range(256):
        _ip_byte0[b] = _permute(<uint64_t>b << 56, _IP, 64)
        _fp_byte4[b] = _permute(<uint64_t>b << 24, _FP, 64)


_init_des_tables()


cdef inline uint32_t _f(uint32_t r) noexcept nogil:
    """The DES round function with a zero subkey: S-boxes over the six-bit windows of E(R), then P."""
    cdef uint32_t rot = (r >> 1) | (r << 31)  # E's first window starts at bit 32: rotate it to the top
    cdef uint64_t wide = (<uint64_t>rot << 32) | rot  # so the last window (bits 28..32, 1) is contiguous too
    return (_sp2[0][(wide >> 54) & 0x3FF] ^ _sp2[1][(wide >> 46) & 0x3FF]
            ^ _sp2[2][(wide >> 38) & 0x3FF] ^ _sp2[3][(wide >> 30) & 0x3FF])


cdef inline uint64_t _ip(uint64_t block) noexcept nogil:
    cdef uint64_t x = 0
    cdef int k
    for k in range(8):
        x |= _ip_byte0[(block >> (56 - 8 * k)) & 0xFF] << k
    return x


cdef inline uint64_t _fp(uint64_t x) noexcept nogil:
    cdef uint64_t out = 0
    cdef int k
    for k in range(8):
        out |= _fp_byte4[(x >> (56 - 8 * k)) & 0xFF] >> _FP_SHIFT[k]
    return out


cdef uint64_t des_zero_key(uint64_t block) noexcept nogil:
    """DES-ECB of one 64-bit block under the all-zero key; its own inverse, since all 16 subkeys are equal."""
    cdef uint64_t x = _ip(block)
    cdef uint32_t left = <uint32_t>(x >> 32), right = <uint32_t>x
    cdef int k
    for k in range(8):  # two rounds per step, so the halves never swap places
        left ^= _f(right)
        right ^= _f(left)
    return _fp((<uint64_t>right << 32) | left)


cdef enum:
    _LANES = 4  # batches hash this many blocks side by side


cdef inline void _des_zero_key_lanes(uint64_t* blocks) noexcept nogil:
    """``des_zero_key`` of _LANES blocks in place. One block's 16 rounds are a chain of dependent table loads;
    interleaving independent blocks lets the CPU overlap their latencies (+40% on vhash_many)."""
    cdef uint32_t left[_LANES]
    cdef uint32_t right[_LANES]
    cdef uint64_t x
    cdef int j, k
    for j in range(_LANES):
        x = _ip(blocks[j])
        left[j] = <uint32_t>(x >> 32)
        right[j] = <uint32_t>x
    for k in range(8):
        for j in range(_LANES):
            left[j] ^= _f(right[j])
        for j in range(_LANES):
            right[j] ^= _f(left[j])
    for j in range(_LANES):
        blocks[j] = _fp((<uint64_t>right[j] << 32) | left[j])


cdef uint64_t reverse64(uint64_t value) noexcept nogil:
    """bits.Reverse64: swap ever larger blocks, from neighbouring bits up to the two halves."""
    value = ((value >> 1) & 0x5555555555555555ULL) | ((value & 0x5555555555555555ULL) << 1)
    value = ((value >> 2) & 0x3333333333333333ULL) | ((value & 0x3333333333333333ULL) << 2)
    value = ((value >> 4) & 0x0F0F0F0F0F0F0F0FULL) | ((value & 0x0F0F0F0F0F0F0F0FULL) << 4)
    value = ((value >> 8) & 0x00FF00FF00FF00FFULL) | ((value & 0x00FF00FF00FF00FFULL) << 8)
    value = ((value >> 16) & 0x0000FFFF0000FFFFULL) | ((value & 0x0000FFFF0000FFFFULL) << 16)
    return (value >> 32) | (value << 32)


cdef inline bytes _ksid_be(uint64_t v):
    cdef bytes b = PyBytes_FromStringAndSize(NULL, 8)
    _store_be64(<unsigned char*>PyBytes_AS_STRING(b), v)
    return b


def vhash(value: int) -> bytes:
    """Keyspace id of Vitess's ``hash`` vindex: DES(zero key) of the big-endian uint64."""
    return _ksid_be(des_zero_key(as_u64(value)))


def vunhash(ksid: bytes) -> int:
    """The uint64 whose ``vhash`` is ``ksid`` (the ``hash`` vindex is reversible)."""
    if not PyBytes_Check(ksid):
        raise TypeError(f"expected bytes, got {type(ksid).__name__}")
    if PyBytes_GET_SIZE(ksid) != 8:
        raise ValueError(f"a hash keyspace id has 8 bytes, got {PyBytes_GET_SIZE(ksid)}")
    return PyLong_FromUnsignedLongLong(des_zero_key(_load_be64(<const unsigned char*>PyBytes_AS_STRING(ksid))))


def vhash_many(values) -> list:
    """``vhash`` of each value, in order."""
    seq = _as_sequence(values)
    cdef Py_ssize_t n = PySequence_Fast_GET_SIZE(seq)
    cdef PyObject** items = PySequence_Fast_ITEMS(seq)
    cdef list out = PyList_New(n)
    cdef uint64_t blocks[_LANES]
    cdef Py_ssize_t base, j, m
    for base in range(0, n, _LANES):
        m = min(_LANES, n - base)
        for j in range(_LANES):  # the last batch may be short: hash zeros in the unused lanes
            blocks[j] = as_u64(<object>items[base + j]) if j < m else 0
        _des_zero_key_lanes(blocks)
        for j in range(m):
            ksid = _ksid_be(blocks[j])
            Py_INCREF(ksid)
            PyList_SET_ITEM(out, base + j, ksid)
    return out


def vhash_shards(values, shard_map) -> list:
    """Shard index of each value's ``vhash`` keyspace id in ``shard_map``, without building the keyspace ids."""
    if not isinstance(shard_map, ShardMap):
        return shard_map.find_many(vhash_many(values))
    cdef ShardMap shards = <ShardMap>shard_map
    seq = _as_sequence(values)
    cdef Py_ssize_t n = PySequence_Fast_GET_SIZE(seq)
    cdef PyObject** items = PySequence_Fast_ITEMS(seq)
    cdef list out = PyList_New(n)
    cdef uint64_t blocks[_LANES]
    cdef unsigned char buf[8]
    cdef Py_ssize_t base, j, m
    for base in range(0, n, _LANES):
        m = min(_LANES, n - base)
        for j in range(_LANES):  # the last batch may be short: hash zeros in the unused lanes
            blocks[j] = as_u64(<object>items[base + j]) if j < m else 0
        _des_zero_key_lanes(blocks)
        for j in range(m):
            if shards._short:
                index = PyLong_FromSsize_t(shards.find_u64(blocks[j]))
            else:
                _store_be64(buf, blocks[j])
                index = PyLong_FromSsize_t(shards.find_bytes(buf, 8))
            Py_INCREF(index)
            PyList_SET_ITEM(out, base + j, index)
    return out


def reverse_bits64(value: int) -> int:
    """``bits.Reverse64`` of the uint64 (Vitess ``reverse_bits`` vindex)."""
    return PyLong_FromUnsignedLongLong(reverse64(as_u64(value)))


# --- xxHash64 (https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md) -------------------------------------

cdef enum:
    _DIGITS_MAX = 20  # len("-9223372036854775808") == len("18446744073709551615")

cdef uint64_t _P1 = 0x9E3779B185EBCA87ULL
cdef uint64_t _P2 = 0xC2B2AE3D27D4EB4FULL
cdef uint64_t _P3 = 0x165667B19E3779F9ULL
cdef uint64_t _P4 = 0x85EBCA77C2B2AE63ULL
cdef uint64_t _P5 = 0x27D4EB2F165667C5ULL


cdef inline uint64_t _load_le64(const unsigned char* p) noexcept nogil:
    return (<uint64_t>p[0] | (<uint64_t>p[1] << 8) | (<uint64_t>p[2] << 16) | (<uint64_t>p[3] << 24)
            | (<uint64_t>p[4] << 32) | (<uint64_t>p[5] << 40) | (<uint64_t>p[6] << 48) | (<uint64_t>p[7] << 56))


cdef inline uint64_t _load_le32(const unsigned char* p) noexcept nogil:
    return <uint64_t>p[0] | (<uint64_t>p[1] << 8) | (<uint64_t>p[2] << 16) | (<uint64_t>p[3] << 24)


cdef inline uint64_t _rotl64(uint64_t x, int r) noexcept nogil:
    return (x << r) | (x >> (64 - r))


cdef inline uint64_t _round(uint64_t acc, uint64_t lane) noexcept nogil:
    return _rotl64(acc + lane * _P2, 31) * _P1


cdef inline uint64_t _merge(uint64_t acc, uint64_t val) noexcept nogil:
    return (acc ^ _round(0, val)) * _P1 + _P4


cdef uint64_t xxh64(const unsigned char* data, size_t length, uint64_t seed) noexcept nogil:
    cdef const unsigned char* p = data
    cdef const unsigned char* end = data + length
    cdef uint64_t h, v1, v2, v3, v4
    if length >= 32:
        v1 = seed + _P1 + _P2
        v2 = seed + _P2
        v3 = seed
        v4 = seed - _P1
        while end - p >= 32:
            v1 = _round(v1, _load_le64(p))
            v2 = _round(v2, _load_le64(p + 8))
            v3 = _round(v3, _load_le64(p + 16))
            v4 = _round(v4, _load_le64(p + 24))
            p += 32
        h = _rotl64(v1, 1) + _rotl64(v2, 7) + _rotl64(v3, 12) + _rotl64(v4, 18)
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = seed + _P5
    h += <uint64_t>length
    while end - p >= 8:
        h ^= _round(0, _load_le64(p))
        h = _rotl64(h, 27) * _P1 + _P4
        p += 8
    if end - p >= 4:
        h ^= _load_le32(p) * _P1
        h = _rotl64(h, 23) * _P2 + _P3
        p += 4
    while p < end:
        h ^= p[0] * _P5
        h = _rotl64(h, 11) * _P1
        p += 1
    h ^= h >> 33
    h *= _P2
    h ^= h >> 29
    h *= _P3
    h ^= h >> 32
    return h


def xxhash64(data, seed: int = 0) -> int:
    """xxHash64 of ``data`` (bytes or bytearray); ``seed`` follows the 64-bit integer rule."""
    cdef const unsigned char* p
    cdef Py_ssize_t n
    if PyBytes_Check(data):
        p = <const unsigned char*>PyBytes_AS_STRING(data)
        n = PyBytes_GET_SIZE(data)
    elif PyByteArray_Check(data):
        p = <const unsigned char*>PyByteArray_AS_STRING(data)
        n = PyByteArray_GET_SIZE(data)
    else:
        raise TypeError(f"expected bytes or bytearray, got {type(data).__name__}")
    return PyLong_FromUnsignedLongLong(xxh64(p, <size_t>n, as_u64(seed)))


cdef const char* _PAIRS = (b"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                          b"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                          b"8081828384858687888990919293949596979899")


cdef inline Py_ssize_t _decimal(uint64_t magnitude, bint negative, char* end) noexcept nogil:
    """Writes the decimal text of a signed magnitude so that it ends just before ``end``; returns its length.
    Two digits per division halve the chain of dependent divisions."""
    cdef char* p = end
    cdef uint64_t pair
    while magnitude >= 100:
        pair = magnitude % 100
        magnitude //= 100
        p -= 2
        p[0] = _PAIRS[2 * pair]
        p[1] = _PAIRS[2 * pair + 1]
    if magnitude >= 10:
        p -= 2
        p[0] = _PAIRS[2 * magnitude]
        p[1] = _PAIRS[2 * magnitude + 1]
    else:
        p -= 1
        p[0] = <char>(48 + magnitude)
    if negative:
        p -= 1
        p[0] = b'-'
    return end - p


cdef uint64_t _value_hash(object value) except? 0:
    """xxHash64 (seed 0) of the bytes Vitess hashes for a value: raw bytes, UTF-8 text, or decimal text."""
    cdef char digits[_DIGITS_MAX]
    cdef const char* p
    cdef Py_ssize_t n
    cdef int overflow
    cdef long long small
    if PyBytes_Check(value):
        return xxh64(<const unsigned char*>PyBytes_AS_STRING(value), <size_t>PyBytes_GET_SIZE(value), 0)
    if PyUnicode_Check(value):
        p = PyUnicode_AsUTF8AndSize(value, &n)
        return xxh64(<const unsigned char*>p, <size_t>n, 0)
    if PyLong_Check(value):
        small = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow == 0:
            if small < 0:
                n = _decimal(0 - <uint64_t>small, True, digits + _DIGITS_MAX)
            else:
                n = _decimal(<uint64_t>small, False, digits + _DIGITS_MAX)
            return xxh64(<const unsigned char*>digits + _DIGITS_MAX - n, <size_t>n, 0)
        if overflow > 0:
            try:  # uint64 columns above 2**63
                n = _decimal(PyLong_AsUnsignedLongLong(value), False, digits + _DIGITS_MAX)
                return xxh64(<const unsigned char*>digits + _DIGITS_MAX - n, <size_t>n, 0)
            except OverflowError:
                pass
        text = PyNumber_ToBase(value, 10)  # beyond 64 bits: rare; unlike str() it calls no user code
        p = PyUnicode_AsUTF8AndSize(text, &n)
        return xxh64(<const unsigned char*>p, <size_t>n, 0)
    raise TypeError(f"expected bytes, str or int, got {type(value).__name__}")


cdef inline bytes _ksid_le(uint64_t v):
    cdef bytes b = PyBytes_FromStringAndSize(NULL, 8)
    _store_le64(<unsigned char*>PyBytes_AS_STRING(b), v)
    return b


def xxhash_ksid(value) -> bytes:
    """Keyspace id of Vitess's ``xxhash`` vindex: xxHash64 (seed 0) of the value's bytes, little-endian."""
    return _ksid_le(_value_hash(value))


def xxhash_ksid_many(values) -> list:
    """``xxhash_ksid`` of each value, in order."""
    seq = _as_sequence(values)
    cdef Py_ssize_t i, n = PySequence_Fast_GET_SIZE(seq)
    cdef PyObject** items = PySequence_Fast_ITEMS(seq)
    cdef list out = PyList_New(n)
    for i in range(n):
        ksid = _ksid_le(_value_hash(<object>items[i]))
        Py_INCREF(ksid)
        PyList_SET_ITEM(out, i, ksid)
    return out
