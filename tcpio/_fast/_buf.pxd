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
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint32_t


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
