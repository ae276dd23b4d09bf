# cython: language_level=3
"""Byte access shared by the compiled modules: read-only views of bytes /
bytearray / memoryview without a typed memoryview, big-endian loads and
stores, and the builders' argument range check.

FIELD-NOTES: a typed memoryview argument costs ~65 ns per call for buffer
acquisition; ``bytes`` needs none (its storage is immutable), and a plain
``PyObject_GetBuffer(PyBUF_SIMPLE)`` is much cheaper than a typed view.  The
buffer export also pins a bytearray so it cannot be resized while we read it.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_DECREF
from cpython.bytearray cimport PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint32_t
from libc.string cimport memcpy, memmove, memset


ctypedef struct rbuf:
    const unsigned char* p
    Py_ssize_t n
    bint release        # view must be released with rbuf_release
    Py_buffer view


cdef inline object rbuf_get(object obj, rbuf* b):
    """Point ``b`` at the bytes of ``obj``; return the object that owns them.

    Keep the returned object alive and call ``rbuf_release(b)`` when done.  A
    non-contiguous memoryview is flattened into a new ``bytes`` (returned).
    """
    if type(obj) is bytes:
        b.p = <const unsigned char*>PyBytes_AS_STRING(obj)
        b.n = PyBytes_GET_SIZE(obj)
        b.release = False
        return obj
    try:
        PyObject_GetBuffer(obj, &b.view, PyBUF_SIMPLE)
    except BufferError:
        if not isinstance(obj, memoryview):
            raise
        obj = obj.tobytes()
        b.p = <const unsigned char*>PyBytes_AS_STRING(obj)
        b.n = PyBytes_GET_SIZE(obj)
        b.release = False
        return obj
    b.p = <const unsigned char*>b.view.buf
    b.n = b.view.len
    b.release = True
    return obj


cdef inline void rbuf_release(rbuf* b) noexcept:
    if b.release:
        b.release = False
        PyBuffer_Release(&b.view)


# --- big-endian access ---------------------------------------------------------
cdef inline uint32_t rd16(const unsigned char* p) noexcept nogil:
    return (<uint32_t>p[0] << 8) | p[1]


cdef inline uint32_t rd32(const unsigned char* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline void wr16(unsigned char* p, uint32_t v) noexcept nogil:
    p[0] = <unsigned char>(v >> 8)
    p[1] = <unsigned char>v


cdef inline void wr32(unsigned char* p, uint32_t v) noexcept nogil:
    p[0] = <unsigned char>(v >> 24)
    p[1] = <unsigned char>(v >> 16)
    p[2] = <unsigned char>(v >> 8)
    p[3] = <unsigned char>v


# --- argument checks (builders raise ValueError like the pure twins) ------------
cdef inline int chk_range(long long v, long long vmax, str what) except -1:
    if v < 0 or v > vmax:
        raise ValueError(f"{what} out of range 0..{vmax}")
    return 0


# --- bytearray as a FIFO (TCP's send and receive queues) -------------------------
# CPython deletes from the front of a bytearray by moving its start pointer,
# and the next append that must grow it then copies the whole content to a new
# block sized only 1/8 larger: a queue consumed at the front and filled at the
# back (a socket buffer) copies all its content on almost every append (60 us
# per 64 KiB append to a 4 MiB queue, against 2 us without the front delete).
# ba_append slides the content to the front when that leaves room for as much
# again, and otherwise grows to twice the need: every byte moves O(1) times.
# ba_consume drops bytes from the front without CPython's shrink-on-delete
# (which would copy the content again whenever it falls below half the block);
# a queue drained below 1/8 of a large block gives the block back.
cdef extern from "Python.h":
    ctypedef struct PyByteArrayObject:
        Py_ssize_t ob_alloc
        char* ob_bytes
        char* ob_start
        Py_ssize_t ob_exports
    Py_ssize_t Py_SIZE(object o)
    void Py_SET_SIZE(object o, Py_ssize_t size)


cdef inline int ba_append(bytearray ba, const unsigned char* p, Py_ssize_t n) except -1:
    """``ba += p[:n]``, amortized O(n) however the front has been consumed."""
    cdef PyByteArrayObject* o = <PyByteArrayObject*>ba
    cdef Py_ssize_t size = Py_SIZE(ba)
    cdef Py_ssize_t need = size + n
    if n <= 0:
        return 0
    if o.ob_exports > 0:
        PyByteArray_Resize(ba, need)    # BufferError, as += would raise
    if (o.ob_start - o.ob_bytes) + need + 1 > o.ob_alloc:      # no room at the tail
        if 2 * need + 1 <= o.ob_alloc:
            memmove(o.ob_bytes, o.ob_start, size)
            o.ob_start = o.ob_bytes
        else:
            PyByteArray_Resize(ba, 2 * need)    # copies the content once, to the front
            Py_SET_SIZE(ba, size)
    memcpy(o.ob_start + size, p, n)
    Py_SET_SIZE(ba, need)
    o.ob_start[need] = 0
    return 0


cdef inline int ba_consume(bytearray ba, Py_ssize_t n) except -1:
    """``del ba[:n]`` for a FIFO (0 <= n)."""
    cdef PyByteArrayObject* o = <PyByteArrayObject*>ba
    cdef Py_ssize_t size = Py_SIZE(ba)
    if n <= 0:
        return 0
    if o.ob_exports > 0 or n >= size:
        # exports: BufferError like del; emptied: free the block (size 0)
        PyByteArray_Resize(ba, 0 if n >= size else size - n)
        return 0
    if o.ob_alloc > 262144 and (size - n) < o.ob_alloc // 8:
        # mostly drained: move the little that is left to the front and give
        # the rest of the block back (Resize then shrinks it in place)
        memmove(o.ob_bytes, o.ob_start + n, size - n)
        o.ob_start = o.ob_bytes
        PyByteArray_Resize(ba, size - n)
        return 0
    o.ob_start += n
    Py_SET_SIZE(ba, size - n)
    return 0


# --- a bytes subtype to write into (gso.GsoFrame) ----------------------------------
cdef extern from "Python.h":
    ctypedef struct PyBytesObject:
        Py_hash_t ob_shash
    PyObject* PyType_GenericAlloc(PyTypeObject* t, Py_ssize_t nitems) except NULL
    void PyObject_GC_Track(void* o)
    bint PyType_IS_GC(PyTypeObject* t)
    size_t _PyObject_VAR_SIZE(PyTypeObject* t, Py_ssize_t nitems)
    char* PyBytes_AS_STRING_O "PyBytes_AS_STRING"(PyObject* o)

cdef extern from *:
    """
    /* PyObject_GC_NewVar's function, typed for a PyObject*: a GC object of a
       variable-size type with its header set and its items not zeroed */
    static inline PyObject* tcpio_gc_newvar(PyTypeObject* t, Py_ssize_t n) {
        return (PyObject*)_PyObject_GC_NewVar(t, n);
    }
    """
    PyObject* tcpio_gc_newvar(PyTypeObject* t, Py_ssize_t nitems) except NULL


cdef inline object bytes_subtype_alloc(object t, Py_ssize_t n):
    """A new object of the bytes subclass ``t`` with ``n`` bytes to write into
    (nobody else holds it yet; the caller writes every one of them).

    Allocated as PyType_GenericAlloc does it (the cycle collector's header,
    room for ``n + 1`` items, tracked), but without its memset of the whole
    block: a 64 KiB super-frame was written twice, zeros first (issue 12:
    memset was 15% of the instructions of an in-memory bulk transfer).  Only
    what follows the data is zeroed: the terminating NUL and the instance
    dict pointer a subclass keeps at the end (its negative tp_dictoffset),
    as GenericAlloc leaves them.  ``t(n)`` would make a zeroed bytes first
    and copy it into a second zeroed block (bytes_subtype_new), and
    ``t(frame)`` copies a built frame again."""
    cdef PyTypeObject* tp = <PyTypeObject*>t
    cdef PyObject* o
    cdef char* tail
    if not PyType_IS_GC(tp):
        o = PyType_GenericAlloc(tp, n)     # (zeroed: not the GsoFrame case)
    else:
        o = tcpio_gc_newvar(tp, n + 1)     # header set, the rest not
        Py_SET_SIZE(<object>o, n)
        tail = PyBytes_AS_STRING_O(o) + n
        memset(tail, 0, <char*>o + _PyObject_VAR_SIZE(tp, n + 1) - tail)
        PyObject_GC_Track(o)
    (<PyBytesObject*>o).ob_shash = -1      # no hash cached yet
    out = <object>o
    Py_DECREF(out)                          # (the cast took a reference of its own)
    return out
