# cython: language_level=3
"""Keyed 4-tuple hash tables for the TCP receive-path lookup (compiled twin).

Same hashes, same bucket layout and the same API as ``ehash_py`` (read its
docstring for the why).  Here a table is plain C: an array of chain heads and
an array of entries holding the packed tuple and an owned reference to the
stored object, chained by index with a free list.  ``EHashTable`` is that
part, shared by both families; ``EHash`` (IPv4: 32-bit addresses) and
``EHash6`` (IPv6: 128-bit addresses, TCP's tagged ints at the API) give the
hash and the key's Python form.  A lookup hashes C integers, walks one chain
comparing integers, and builds no Python object.  Other compiled modules can
``cimport`` ``EHash.lookup_c`` and ``EHash6.lookup_c`` (the latter takes the
two addresses as 16 network-order bytes, straight from a packet).
"""

from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.stdint cimport int32_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc

from tcpio._fast.ehash_py import INITIAL_BUCKETS, V6TAG, derive_keys

cdef extern from *:
    """
    /* 64x64->128 multiply, folded: the "mum" step of wyhash. */
    static inline uint64_t tcpio_mum(uint64_t a, uint64_t b) {
        unsigned __int128 p = (unsigned __int128)a * b;
        return (uint64_t)p ^ (uint64_t)(p >> 64);
    }
    static inline uint64_t tcpio_be64(const unsigned char *p) {
        return ((uint64_t)p[0] << 56) | ((uint64_t)p[1] << 48) | ((uint64_t)p[2] << 40)
             | ((uint64_t)p[3] << 32) | ((uint64_t)p[4] << 24) | ((uint64_t)p[5] << 16)
             | ((uint64_t)p[6] << 8) | (uint64_t)p[7];
    }
    #define TCPIO_EHASH_P0 0xA0761D6478BD642FULL
    #define TCPIO_EHASH_P1 0xE7037ED1A0B428DBULL
    """
    uint64_t tcpio_mum(uint64_t a, uint64_t b) noexcept nogil
    uint64_t tcpio_be64(const unsigned char *p) noexcept nogil
    uint64_t P0 "TCPIO_EHASH_P0"
    uint64_t P1 "TCPIO_EHASH_P1"

_M64 = (1 << 64) - 1


cdef inline bint _same(const ehash_entry *e, const ehash_entry *k) noexcept nogil:
    return (e.a0 == k.a0 and e.ports == k.ports and e.a1 == k.a1 and e.a2 == k.a2
            and e.a3 == k.a3)


cdef class EHashTable:
    """Chains of entries by a keyed 64-bit hash (the part both families share)."""

    def __cinit__(self, *args, **kwargs):
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

    # -- what a family gives ------------------------------------------------
    cdef uint64_t entry_hash(self, const ehash_entry *e) noexcept nogil:
        return 0

    cdef object entry_key(self, const ehash_entry *e):
        return None

    # -- the chains -----------------------------------------------------------
    cdef PyObject *find_c(self, const ehash_entry *key, uint64_t h) noexcept nogil:
        """Borrowed reference to the object stored under ``key`` (hash ``h``), or NULL."""
        cdef int32_t i = self.heads[h & self.mask]
        cdef ehash_entry *e
        while i >= 0:
            e = &self.entries[i]
            if _same(e, key):
                return e.obj
            i = e.next
        return NULL

    cdef int put(self, const ehash_entry *key, uint64_t h, object obj) except -1:
        """Store ``obj`` under ``key``, replacing in place what was there."""
        if obj is None:
            raise TypeError(f"{type(self).__name__} cannot store None")
        cdef uint32_t b = h & self.mask
        cdef int32_t i = self.heads[b]
        cdef PyObject *old
        while i >= 0:
            if _same(&self.entries[i], key):
                old = self.entries[i].obj
                Py_INCREF(obj)
                self.entries[i].obj = <PyObject *>obj
                Py_DECREF(<object>old)
                return 0
            i = self.entries[i].next
        i = self._alloc_entry()
        Py_INCREF(obj)
        self.entries[i].a0 = key.a0
        self.entries[i].a1 = key.a1
        self.entries[i].a2 = key.a2
        self.entries[i].a3 = key.a3
        self.entries[i].ports = key.ports
        self.entries[i].obj = <PyObject *>obj
        self.entries[i].next = self.heads[b]
        self.heads[b] = i
        self.count += 1
        if self.count > <Py_ssize_t>self.mask + 1:
            self._grow_buckets()
        return 0

    cdef object pop(self, const ehash_entry *key, uint64_t h):
        """Unlink ``key``'s entry; its object, or None."""
        cdef int32_t *link = &self.heads[h & self.mask]
        cdef int32_t i = link[0]
        cdef PyObject *p
        while i >= 0:
            if _same(&self.entries[i], key):
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
                nb = self.entry_hash(&self.entries[i]) & (n - 1)
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
                    out.append((self.entry_key(e), <object>e.obj))
                else:
                    out.append(<object>e.obj)
                i = e.next
        return out


cdef inline void _key4(ehash_entry *k, uint32_t laddr, uint16_t lport, uint32_t raddr,
                       uint16_t rport) noexcept nogil:
    k.a0 = (<uint64_t>laddr << 32) | raddr
    k.a1 = k.a2 = k.a3 = 0
    k.ports = (<uint32_t>lport << 16) | rport


cdef class EHash(EHashTable):
    """The IPv4 established hash: ``(laddr, lport, raddr, rport) -> obj``."""

    cdef inline uint64_t hash_c(self, uint32_t laddr, uint16_t lport,
                                uint32_t raddr, uint16_t rport) noexcept nogil:
        cdef uint64_t h = tcpio_mum(((<uint64_t>laddr << 32) | raddr) ^ self.k0,
                                    ((<uint64_t>lport << 16) | rport) ^ self.k1)
        return tcpio_mum(h ^ self.k2, P0 ^ self.k3) ^ P1

    cdef uint64_t entry_hash(self, const ehash_entry *e) noexcept nogil:
        return self.hash_c(<uint32_t>(e.a0 >> 32), <uint16_t>(e.ports >> 16),
                           <uint32_t>e.a0, <uint16_t>e.ports)

    cdef object entry_key(self, const ehash_entry *e):
        return (e.a0 >> 32, e.ports >> 16, e.a0 & 0xFFFFFFFF, e.ports & 0xFFFF)

    def hash4(self, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport):
        """The keyed 64-bit hash of a 4-tuple (identical in both twins)."""
        return self.hash_c(laddr, lport, raddr, rport)

    def bucket_index(self, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport):
        return self.hash_c(laddr, lport, raddr, rport) & self.mask

    cdef PyObject *lookup_c(self, uint32_t laddr, uint16_t lport,
                            uint32_t raddr, uint16_t rport) noexcept nogil:
        """Borrowed reference to the stored object, or NULL."""
        cdef ehash_entry k
        _key4(&k, laddr, lport, raddr, rport)
        return self.find_c(&k, self.hash_c(laddr, lport, raddr, rport))

    def lookup(self, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport):
        cdef PyObject *p = self.lookup_c(laddr, lport, raddr, rport)
        if p == NULL:
            return None
        return <object>p

    def insert(self, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport, obj):
        cdef ehash_entry k
        _key4(&k, laddr, lport, raddr, rport)
        self.put(&k, self.hash_c(laddr, lport, raddr, rport), obj)

    def remove(self, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport):
        cdef ehash_entry k
        _key4(&k, laddr, lport, raddr, rport)
        return self.pop(&k, self.hash_c(laddr, lport, raddr, rport))


cdef int _split6(object addr, uint64_t *hi, uint64_t *lo) except -1:
    """An IPv6 address (TCP's tagged int or the plain 128-bit one) as two words."""
    if addr < 0 or addr >> 129:
        raise OverflowError("not an IPv6 address: must be below 2**129")
    hi[0] = (addr >> 64) & _M64
    lo[0] = addr & _M64
    return 0


cdef class EHash6(EHashTable):
    """The IPv6 established hash: ``(laddr, lport, raddr, rport) -> obj`` with
    128-bit addresses (TCP's tagged ints, ``inet6_addr``; the tag is ignored
    on the way in and present in ``items()``)."""

    cdef inline uint64_t hash6_c(self, uint64_t lhi, uint64_t llo, uint32_t ports,
                                 uint64_t rhi, uint64_t rlo) noexcept nogil:
        cdef uint64_t a = tcpio_mum(lhi ^ self.k0, llo ^ self.k1)
        cdef uint64_t b = tcpio_mum(rhi ^ self.k2, rlo ^ self.k3)
        cdef uint64_t h = tcpio_mum(a ^ ports ^ P0, b ^ P1)
        return tcpio_mum(h ^ self.k2, P0 ^ self.k3) ^ P1

    cdef uint64_t entry_hash(self, const ehash_entry *e) noexcept nogil:
        return self.hash6_c(e.a0, e.a1, e.ports, e.a2, e.a3)

    cdef object entry_key(self, const ehash_entry *e):
        return (V6TAG | (<object>e.a0 << 64) | e.a1, e.ports >> 16,
                V6TAG | (<object>e.a2 << 64) | e.a3,
                e.ports & 0xFFFF)

    cdef uint64_t _key(self, ehash_entry *k, laddr, uint16_t lport, raddr,
                       uint16_t rport) except? 0:
        _split6(laddr, &k.a0, &k.a1)
        _split6(raddr, &k.a2, &k.a3)
        k.ports = (<uint32_t>lport << 16) | rport
        return self.hash6_c(k.a0, k.a1, k.ports, k.a2, k.a3)

    def hash4(self, laddr, uint16_t lport, raddr, uint16_t rport):
        """The keyed 64-bit hash of a 4-tuple (identical in both twins)."""
        cdef ehash_entry k
        return self._key(&k, laddr, lport, raddr, rport)

    def bucket_index(self, laddr, uint16_t lport, raddr, uint16_t rport):
        cdef ehash_entry k
        return self._key(&k, laddr, lport, raddr, rport) & self.mask

    cdef PyObject *lookup_c(self, const unsigned char *laddr, uint16_t lport,
                            const unsigned char *raddr, uint16_t rport) noexcept nogil:
        """Borrowed reference to the stored object, or NULL; the addresses as
        16 network-order bytes each (as in the IPv6 header)."""
        cdef ehash_entry k
        k.a0 = tcpio_be64(laddr)
        k.a1 = tcpio_be64(laddr + 8)
        k.a2 = tcpio_be64(raddr)
        k.a3 = tcpio_be64(raddr + 8)
        k.ports = (<uint32_t>lport << 16) | rport
        return self.find_c(&k, self.hash6_c(k.a0, k.a1, k.ports, k.a2, k.a3))

    def lookup(self, laddr, uint16_t lport, raddr, uint16_t rport):
        cdef ehash_entry k
        cdef PyObject *p = self.find_c(&k, self._key(&k, laddr, lport, raddr, rport))
        if p == NULL:
            return None
        return <object>p

    def insert(self, laddr, uint16_t lport, raddr, uint16_t rport, obj):
        cdef ehash_entry k
        self.put(&k, self._key(&k, laddr, lport, raddr, rport), obj)

    def remove(self, laddr, uint16_t lport, raddr, uint16_t rport):
        cdef ehash_entry k
        return self.pop(&k, self._key(&k, laddr, lport, raddr, rport))
