# C-level vindex hash primitives, for other extension modules (e.g. xxHash64 over collation keys).
from libc.stdint cimport uint64_t


cdef uint64_t des_zero_key(uint64_t block) noexcept nogil
cdef uint64_t xxh64(const unsigned char* data, size_t length, uint64_t seed) noexcept nogil
cdef uint64_t reverse64(uint64_t value) noexcept nogil
cdef uint64_t as_u64(object value) except? 0
