# cython: language_level=3
"""Keyed 4-tuple hash table for the TCP receive-path lookup (compiled twin).

Same hash, same bucket layout and the same API as ``ehash_py`` (read its
docstring for the why).  Here the table is plain C: an array of chain heads
and an array of entries holding the packed tuple and an owned reference to the
stored object, chained by index with a free list.  A lookup hashes four C
integers, walks one chain comparing two integers per entry, and builds no
Python object.  Other compiled modules can ``cimport`` ``EHash.lookup_c``.
"""

from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.stdint cimport int32_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc

from tcpio._fast.ehash_py import INITIAL_BUCKETS, derive_keys

cdef extern from *:
    """
    /* 64x64->128 multiply, folded: the "mum" step of wyhash. */
    static inline uint64_t tcpio_mum(uint64_t a, uint64_t b) {
        unsigned __int128 p = (unsigned __int128)a * b;
        return (uint64_t)p ^ (uint64_t)(p >> 64);
    }
    #define TCPIO_EHASH_P0 0xA0761D6478BD642FULL
    #define TCPIO_EHASH_P1 0xE7037ED1A0B428DBULL
    """
    uint64_t tcpio_mum(uint64_t a, uint64_t b) noexcept nogil
    uint64_t P0 "TCPIO_EHASH_P0"
    uint64_t P1 "TCPIO_EHASH_P1"


cdef class EHash:
    """The established hash: ``(laddr, lport, raddr, rport) -> obj``."""

    def __cinit__(self, secret, nbuckets=INITIAL_BUCKETS):
        self.heads = NULL
        self.entries = NULL

    def __init__(self, secret, nbuckets=INITIAL_BUCKETS):
        cdef uint32_t n = INITIAL_BUCKETS
        cdef uint32_t i
        self.k0, self.k1, self.k2, self.k3 = derive_keys(secret)
        self._clear_entries()           # __init__ called again: start empty
        while n < nbuckets:
            n <<= 1
        free(self.heads)
        self.heads = <int32_t *>malloc(n * sizeof(int32_t))
        if self.heads == NULL:
            raise MemoryError()
        for i in range(n):
            self.heads[i] = -1
        self.mask = n - 1

    def __dealloc__(self):
        self._clear_entries()
        free(self.heads)

    cdef void _clear_entries(self) noexcept:
        cdef int32_t i
        cdef PyObject *p
        if self.entries != NULL:
            for i in range(self.cap):
                p = self.entries[i].obj
                if p != NULL:
                    self.entries[i].obj = NULL
                    Py_DECREF(<object>p)
            free(self.entries)
        self.entries = NULL
        self.cap = 0
        self.count = 0
        self.free_head = -1

    # -- hashing ----------------------------------------------------------
    cdef inline uint64_t hash_c(self, uint32_t laddr, uint16_t lport,
                                uint32_t raddr, uint16_t rport) noexcept nogil:
        cdef uint64_t h = tcpio_mum(((<uint64_t>laddr << 32) | raddr) ^ self.k0,
                                    ((<uint64_t>lport << 16) | rport) ^ self.k1)
        return tcpio_mum(h ^ self.k2, P0 ^ self.k3) ^ P1

    def hash4(self, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport):
        """The keyed 64-bit hash of a 4-tuple (identical in both twins)."""
        return self.hash_c(laddr, lport, raddr, rport)

    def bucket_index(self, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport):
        return self.hash_c(laddr, lport, raddr, rport) & self.mask

    @property
    def nbuckets(self):
        return self.mask + 1

    def bucket_sizes(self):
        """Chain lengths, bucket by bucket (for tests and diagnostics)."""
        cdef uint32_t b
        cdef int32_t i
        cdef Py_ssize_t n
        out = []
        for b in range(self.mask + 1):
            n = 0
            i = self.heads[b]
            while i >= 0:
                n += 1
                i = self.entries[i].next
            out.append(n)
        return out

    # -- the table ----------------------------------------------------------
    cdef PyObject *lookup_c(self, uint32_t laddr, uint16_t lport,
                            uint32_t raddr, uint16_t rport) noexcept nogil:
        """Borrowed reference to the stored object, or NULL."""
        cdef uint64_t addrs = (<uint64_t>laddr << 32) | raddr
        cdef uint32_t ports = (<uint32_t>lport << 16) | rport
        cdef int32_t i = self.heads[self.hash_c(laddr, lport, raddr, rport) & self.mask]
        cdef ehash_entry *e
        while i >= 0:
            e = &self.entries[i]
            if e.addrs == addrs and e.ports == ports:
                return e.obj
            i = e.next
        return NULL

    def lookup(self, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport):
        cdef PyObject *p = self.lookup_c(laddr, lport, raddr, rport)
        if p == NULL:
            return None
        return <object>p

    def insert(self, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport, obj):
        if obj is None:
            raise TypeError("EHash cannot store None")
        cdef uint64_t addrs = (<uint64_t>laddr << 32) | raddr
        cdef uint32_t ports = (<uint32_t>lport << 16) | rport
        cdef uint32_t b = self.hash_c(laddr, lport, raddr, rport) & self.mask
        cdef int32_t i = self.heads[b]
        cdef PyObject *old
        while i >= 0:
            if self.entries[i].addrs == addrs and self.entries[i].ports == ports:
                old = self.entries[i].obj
                Py_INCREF(obj)
                self.entries[i].obj = <PyObject *>obj
                Py_DECREF(<object>old)
                return
            i = self.entries[i].next
        i = self._alloc_entry()
        Py_INCREF(obj)
        self.entries[i].addrs = addrs
        self.entries[i].ports = ports
        self.entries[i].obj = <PyObject *>obj
        self.entries[i].next = self.heads[b]
        self.heads[b] = i
        self.count += 1
        if self.count > <Py_ssize_t>self.mask + 1:
            self._grow_buckets()

    def remove(self, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport):
        cdef uint64_t addrs = (<uint64_t>laddr << 32) | raddr
        cdef uint32_t ports = (<uint32_t>lport << 16) | rport
        cdef int32_t *link = &self.heads[self.hash_c(laddr, lport, raddr, rport) & self.mask]
        cdef int32_t i = link[0]
        cdef PyObject *p
        while i >= 0:
            if self.entries[i].addrs == addrs and self.entries[i].ports == ports:
                link[0] = self.entries[i].next
                p = self.entries[i].obj
                self.entries[i].obj = NULL
                self.entries[i].next = self.free_head
                self.free_head = i
                self.count -= 1
                result = <object>p       # takes a new reference ...
                Py_DECREF(result)        # ... and drops the table's one
                return result
            link = &self.entries[i].next
            i = link[0]
        return None

    cdef int32_t _alloc_entry(self) except -2:
        cdef int32_t i, newcap
        cdef ehash_entry *grown
        if self.free_head < 0:
            newcap = self.cap * 2 if self.cap else 64
            grown = <ehash_entry *>realloc(self.entries, newcap * sizeof(ehash_entry))
            if grown == NULL:
                raise MemoryError()
            self.entries = grown
            for i in range(newcap - 1, self.cap - 1, -1):
                self.entries[i].obj = NULL
                self.entries[i].next = self.free_head
                self.free_head = i
            self.cap = newcap
        i = self.free_head
        self.free_head = self.entries[i].next
        return i

    cdef int _grow_buckets(self) except -1:
        """Double the chain heads; each old chain splits in two, order kept."""
        cdef uint32_t oldn = self.mask + 1
        cdef uint32_t n = oldn * 2
        cdef uint32_t b, nb
        cdef int32_t i, nxt
        cdef int32_t *tails
        cdef int32_t *heads = <int32_t *>malloc(n * sizeof(int32_t))
        if heads == NULL:
            raise MemoryError()
        tails = <int32_t *>malloc(n * sizeof(int32_t))
        if tails == NULL:
            free(heads)
            raise MemoryError()
        for b in range(n):
            heads[b] = -1
            tails[b] = -1
        for b in range(oldn):
            i = self.heads[b]
            while i >= 0:
                nxt = self.entries[i].next
                nb = self.hash_c(<uint32_t>(self.entries[i].addrs >> 32),
                                 <uint16_t>(self.entries[i].ports >> 16),
                                 <uint32_t>self.entries[i].addrs,
                                 <uint16_t>self.entries[i].ports) & (n - 1)
                # Append at the tail: the chain keeps its order.
                self.entries[i].next = -1
                if tails[nb] < 0:
                    heads[nb] = i
                else:
                    self.entries[tails[nb]].next = i
                tails[nb] = i
                i = nxt
        free(tails)
        free(self.heads)
        self.heads = heads
        self.mask = n - 1
        return 0

    def __len__(self):
        return self.count

    def __iter__(self):
        """Values, bucket by bucket (a snapshot: the table may change meanwhile)."""
        return iter(self._entries(False))

    def items(self):
        return self._entries(True)

    def _entries(self, bint with_keys):
        """The stored objects bucket by bucket, as ``(key, obj)`` pairs when ``with_keys``."""
        cdef uint32_t b
        cdef int32_t i
        cdef ehash_entry *e
        out = []
        for b in range(self.mask + 1):
            i = self.heads[b]
            while i >= 0:
                e = &self.entries[i]
                if with_keys:
                    out.append((((e.addrs >> 32), (e.ports >> 16), (e.addrs & 0xFFFFFFFF),
                                 (e.ports & 0xFFFF)), <object>e.obj))
                else:
                    out.append(<object>e.obj)
                i = e.next
        return out
