# Declarations of the compiled ehash, so another compiled module (a future
# receive fast path) can ``cimport`` it and call ``lookup_c`` without a
# Python-level call.
from cpython.object cimport PyObject
from libc.stdint cimport int32_t, uint16_t, uint32_t, uint64_t


cdef struct ehash_entry:
    uint64_t addrs      # laddr << 32 | raddr
    uint32_t ports      # lport << 16 | rport
    int32_t next        # next entry in the chain (or the free list), -1 = end
    PyObject *obj       # owned reference; NULL on the free list


cdef class EHash:
    cdef uint64_t k0, k1, k2, k3
    cdef int32_t *heads
    cdef ehash_entry *entries
    cdef uint32_t mask
    cdef Py_ssize_t count
    cdef int32_t cap
    cdef int32_t free_head

    cdef uint64_t hash_c(self, uint32_t laddr, uint16_t lport,
                         uint32_t raddr, uint16_t rport) noexcept nogil
    cdef PyObject *lookup_c(self, uint32_t laddr, uint16_t lport,
                            uint32_t raddr, uint16_t rport) noexcept nogil
    cdef int _grow_buckets(self) except -1
    cdef int32_t _alloc_entry(self) except -2
    cdef void _clear_entries(self) noexcept
