# Layout of the compiled ShardMap, shared so hashing.pyx can go from a hash straight to a shard index.
from libc.stdint cimport uint64_t


cdef class ShardMap:
    cdef tuple _starts               # keeps the start keys alive: _data points into them
    cdef Py_ssize_t _n
    cdef const unsigned char** _data
    cdef Py_ssize_t* _lens
    cdef uint64_t* _prefix           # each start as a zero-padded big-endian uint64
    cdef bint _short                 # every start fits in 8 bytes, so _prefix orders 8-byte keyspace ids exactly

    cdef Py_ssize_t find_u64(self, uint64_t key) noexcept nogil
    cdef Py_ssize_t find_bytes(self, const unsigned char* data, Py_ssize_t length) noexcept nogil
    cdef Py_ssize_t find_object(self, object ksid) except -1
