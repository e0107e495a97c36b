# cython: annotation_typing=False
"""Keyspace id -> shard index, compiled. Twin and spec: ``cython_ext/pure/shardmap.py``.

The shard holding a keyspace id is the last one whose start key is <= it (Go ``bytes.Compare`` order). When every
start key has at most 8 bytes, an 8-byte keyspace id (``hash``, ``xxhash``, ``numeric`` vindexes) compares with the
zero-padded starts as plain uint64s, which is exact: padding zeros can never make a start sort after a key that it
prefixes. Other lengths use memcmp.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_GET_SIZE
from cpython.list cimport PyList_CheckExact, PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_FromSsize_t
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.sequence cimport PySequence_Fast_GET_SIZE, PySequence_Fast_ITEMS
from cpython.tuple cimport PyTuple_CheckExact
from libc.stdint cimport uint64_t
from libc.string cimport memcmp

__all__ = ["ShardMap"]


cdef inline object _as_sequence(object values):
    """A list or tuple whose item array can be read directly; other iterables are copied (Python's own errors)."""
    if PyList_CheckExact(values) or PyTuple_CheckExact(values):
        return values
    return list(values)


cdef inline uint64_t _load_be64(const unsigned char* p) noexcept nogil:
    return ((<uint64_t>p[0] << 56) | (<uint64_t>p[1] << 48) | (<uint64_t>p[2] << 40) | (<uint64_t>p[3] << 32)
            | (<uint64_t>p[4] << 24) | (<uint64_t>p[5] << 16) | (<uint64_t>p[6] << 8) | <uint64_t>p[7])


cdef inline int _compare(const unsigned char* a, Py_ssize_t alen,
                         const unsigned char* b, Py_ssize_t blen) noexcept nogil:
    """Go bytes.Compare: bytewise, then a proper prefix sorts first."""
    cdef int c = memcmp(a, b, <size_t>(alen if alen < blen else blen))
    if c != 0:
        return c
    return (alen > blen) - (alen < blen)


cdef tuple _check_starts(object starts):
    """The starts as a tuple, once they are known to cover the whole space in order (same errors as the twin)."""
    cdef tuple keys = tuple(starts)
    cdef Py_ssize_t i
    for key in keys:
        if not PyBytes_Check(key):
            raise TypeError(f"shard start keys must be bytes, got {type(key).__name__}")
    if not keys or PyBytes_GET_SIZE(keys[0]) != 0:
        raise ValueError("the first shard must start at b'' (the keyspace's lowest key)")
    for i in range(1, len(keys)):
        prev = keys[i - 1]
        key = keys[i]
        if _compare(<const unsigned char*>PyBytes_AS_STRING(prev), PyBytes_GET_SIZE(prev),
                    <const unsigned char*>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key)) >= 0:
            raise ValueError(f"shard start keys must be strictly increasing: {prev.hex()!r} then {key.hex()!r}")
    return keys


cdef class ShardMap:
    """The sorted start keys of one keyspace's shards; ``find`` maps a keyspace id to its shard's index."""

    def __cinit__(self, starts):
        cdef tuple keys = _check_starts(starts)
        cdef Py_ssize_t i, j, n = len(keys)
        cdef const unsigned char* p
        cdef uint64_t padded
        self._data = <const unsigned char**>PyMem_Malloc(n * sizeof(const unsigned char*))
        self._lens = <Py_ssize_t*>PyMem_Malloc(n * sizeof(Py_ssize_t))
        self._prefix = <uint64_t*>PyMem_Malloc(n * sizeof(uint64_t))
        if self._data == NULL or self._lens == NULL or self._prefix == NULL:
            raise MemoryError()
        self._starts = keys
        self._n = n
        self._short = True
        for i in range(n):
            key = keys[i]
            p = <const unsigned char*>PyBytes_AS_STRING(key)
            self._data[i] = p
            self._lens[i] = PyBytes_GET_SIZE(key)
            self._short = self._short and self._lens[i] <= 8
            padded = 0
            for j in range(8):
                padded = (padded << 8) | (p[j] if j < self._lens[i] else 0)
            self._prefix[i] = padded

    def __dealloc__(self):
        PyMem_Free(self._data)
        PyMem_Free(self._lens)
        PyMem_Free(self._prefix)

    def __len__(self) -> int:
        return self._n

    cdef Py_ssize_t find_u64(self, uint64_t key) noexcept nogil:
        """Last index whose start is <= key (requires _short). Branch-free: the compiler emits a cmov."""
        cdef Py_ssize_t base = 0, length = self._n, half
        while length > 1:
            half = length >> 1
            base = base + half if self._prefix[base + half] <= key else base
            length -= half
        return base

    cdef Py_ssize_t find_bytes(self, const unsigned char* data, Py_ssize_t length) noexcept nogil:
        """Last index whose start is <= the key, for any key and start lengths."""
        cdef Py_ssize_t lo = 0, hi = self._n, mid  # starts[lo] <= key always holds: starts[0] is b""
        while hi - lo > 1:
            mid = (lo + hi) >> 1
            if _compare(self._data[mid], self._lens[mid], data, length) <= 0:
                lo = mid
            else:
                hi = mid
        return lo

    cdef Py_ssize_t find_object(self, object ksid) except -1:
        if not PyBytes_Check(ksid):
            raise TypeError(f"a keyspace id must be bytes, got {type(ksid).__name__}")
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(ksid)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(ksid)
        if n == 8 and self._short:
            return self.find_u64(_load_be64(p))
        return self.find_bytes(p, n)

    def find(self, ksid: bytes) -> int:
        """Index of the shard whose range holds ``ksid``."""
        return self.find_object(ksid)

    def find_many(self, ksids) -> list:
        """``find`` of each keyspace id, in order."""
        seq = _as_sequence(ksids)
        cdef Py_ssize_t i, n = PySequence_Fast_GET_SIZE(seq)
        cdef PyObject** items = PySequence_Fast_ITEMS(seq)
        cdef list out = PyList_New(n)
        for i in range(n):
            index = PyLong_FromSsize_t(self.find_object(<object>items[i]))
            Py_INCREF(index)
            PyList_SET_ITEM(out, i, index)
        return out
