# Declarations of the compiled ehash, so another compiled module (the
# receive fast path) can ``cimport`` it and call ``lookup_c`` without a
# Python-level call.
from cpython.object cimport PyObject
from libc.stdint cimport int32_t, uint16_t, uint32_t, uint64_t


cdef struct ehash_entry:
    # The key: IPv4 a0 = laddr << 32 | raddr (a1..a3 0); IPv6 a0, a1 = laddr's
    # high and low 64 bits, a2, a3 = raddr's.  ports = lport << 16 | rport.
    uint64_t a0
    uint64_t a1
    uint64_t a2
    uint64_t a3
    uint32_t ports
    int32_t next        # next entry in the chain (or the free list), -1 = end
    PyObject *obj       # owned reference; NULL on the free list


cdef class EHashTable:
    """The chains both families' tables share (heads, entries, free list,
    growth, iteration); a subclass gives the hash and the key's Python form."""
    cdef uint64_t k0, k1, k2, k3
    cdef int32_t *heads
    cdef ehash_entry *entries
    cdef uint32_t mask
    cdef Py_ssize_t count
    cdef int32_t cap
    cdef int32_t free_head

    cdef uint64_t entry_hash(self, const ehash_entry *e) noexcept nogil
    cdef object entry_key(self, const ehash_entry *e)
    cdef PyObject *find_c(self, const ehash_entry *key, uint64_t h) noexcept nogil
    cdef int put(self, const ehash_entry *key, uint64_t h, object obj) except -1
    cdef object pop(self, const ehash_entry *key, uint64_t h)
    cdef int _grow_buckets(self) except -1
    cdef int32_t _alloc_entry(self) except -2
    cdef void _clear_entries(self) noexcept


cdef class EHash(EHashTable):
    cdef uint64_t hash_c(self, uint32_t laddr, uint16_t lport,
                         uint32_t raddr, uint16_t rport) noexcept nogil
    cdef PyObject *lookup_c(self, uint32_t laddr, uint16_t lport,
                            uint32_t raddr, uint16_t rport) noexcept nogil


cdef class EHash6(EHashTable):
    cdef uint64_t hash6_c(self, uint64_t lhi, uint64_t llo, uint32_t ports,
                          uint64_t rhi, uint64_t rlo) noexcept nogil
    cdef PyObject *lookup_c(self, const unsigned char *laddr, uint16_t lport,
                            const unsigned char *raddr, uint16_t rport) noexcept nogil
    cdef uint64_t _key(self, ehash_entry *k, laddr, uint16_t lport, raddr,
                       uint16_t rport) except? 0
