# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""A TAP/TUN fd's read and write loops, compiled.  Same API as ``devio_py``.

A TAP takes one frame per read(2) and per write(2) (issues 11-13), so the
per-frame Python around the syscall was most of what tcpio paid per frame
beside the kernel: ``os.read`` (a ``readsize`` bytes object, 64 KiB with
offloads on, allocated and shrunk per frame), the slice that strips the
virtio-net header (a second allocation and copy), the loop, the counters;
``os.writev`` (a tuple and two buffer acquisitions per frame) in a
try/except.  Here a batch is one call each way (DESIGN principle 3):

- ``FrameIO.read``: up to ``budget`` frames with read(2), each read into a
  spare ``bytes`` of ``size`` that the loop keeps across reads and calls.
  A frame of more than half of ``size`` is handed out as that object itself
  (the header moved out in place, the object shrunk: no copy), a smaller one
  (an ACK, a SYN, a 1514-byte frame of a 64 KiB-capable device) is copied
  out into a right-sized ``bytes`` and the spare reused (no 64 KiB
  allocation per ACK).  A frame whose virtio header has flags or gso_type
  set goes, header and all, to ``offloaded(raw, frames)`` (the device's
  ``_rx_offloaded``) in its place in the batch, as before.  EAGAIN ends
  the loop; another errno ends it too and is left in ``error``; a read
  shorter than the header is a runt (``runts``), not delivered.
- ``FrameIO.write``: ``frames[start:]`` one write(2) each (writev(2) with
  the header in front when ``hlen``: ``plain`` for a ``bytes`` frame,
  ``tx_hdr(frame, plain)`` for any other, as the device chooses), until one
  fails: its index is returned and its errno left in ``error``, so the
  device decides (a full queue holds the rest, other errors drop one frame
  and it calls again from the next).

The GIL is kept around the syscalls: they are short (a frame), and
releasing and taking it back per frame costs more than it lets another
thread do.  EINTR is retried after the signal handlers ran (PEP 475, as
``os.read``/``os.write``).

- ``FrameIO.write_all``: a device's writer thread (the TAP's ``tx_thread``)
  writes a whole batch without the GIL, taken once on each side of it: the
  kernel's receive of each frame, which runs inside its write(2) (issue 11:
  most of what writing to a TAP costs), then runs beside the event loop's
  Python instead of in it.  A full queue (EAGAIN, ENOBUFS) is waited out
  with poll(2), as a blocking write would wait.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals
from cpython.object cimport PyObject
from cpython.ref cimport Py_XDECREF
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_ITEM, PySequence_Fast_GET_SIZE
from libc.errno cimport EAGAIN, EINTR, ENOBUFS, errno
from libc.stdlib cimport free, malloc
from libc.stdint cimport uint16_t
from libc.string cimport memcpy, memmove

from tcpio._fast._buf cimport rbuf, rbuf_get, rbuf_release, wr16
from tcpio._fast._csum cimport csum_net

__all__ = ["FrameIO", "LONE_DRAIN"]

# FrameIO.read_flows: while batches come one frame each, the flows' reader
# reads one frame a callback, draining to EAGAIN every fourth (and whenever
# a batch was not one frame): a 1-byte echo's batch made two reads, one to
# find the queue empty (~1-2 us here), which the loop's next epoll_wait finds
# out anyway.  A burst that begins then waits at most three loop iterations
# for its drain.  (``lone & LONE_DRAIN`` is that "every fourth": 2**k - 1.)
LONE_DRAIN = 3


cdef extern from "<errno.h>":
    int EWOULDBLOCK


cdef extern from "<unistd.h>" nogil:
    ssize_t c_read "read"(int fd, void* buf, size_t n)
    ssize_t c_write "write"(int fd, const void* buf, size_t n)


cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void* iov_base
        size_t iov_len
    ssize_t c_writev "writev"(int fd, const iovec* iov, int iovcnt)


cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int c_poll "poll"(pollfd* fds, unsigned long nfds, int timeout)
    short POLLOUT


cdef extern from *:
    """
    /* A new bytes of n bytes to read into (NULL with MemoryError). */
    static PyObject* devio_new_bytes(Py_ssize_t n) {
        return PyBytes_FromStringAndSize(NULL, n);
    }
    /* ``o`` (a reference given away, the only one) shrunk to n bytes: a new
       reference, or NULL with an exception (``o`` is gone then). */
    static PyObject* devio_shrink(PyObject* o, Py_ssize_t n) {
        if (_PyBytes_Resize(&o, n) < 0)
            return NULL;
        return o;
    }
    """
    PyObject* devio_new_bytes(Py_ssize_t n)
    object devio_shrink(PyObject* o, Py_ssize_t n)


cdef inline void _bump(dict d, str key, Py_ssize_t n) except *:
    """``d[key] += n`` (a device's counter)."""
    d[key] = d[key] + n


cdef inline void _count_rx(dict stats, Py_ssize_t nread, Py_ssize_t nbytes,
                           Py_ssize_t runts, int error) except *:
    """A read's counts, as the device kept them: frames (runts are not),
    their bytes, and errors (the errno that ended it, each runt)."""
    if nread > runts:
        _bump(stats, "rx_packets", nread - runts)
        _bump(stats, "rx_bytes", nbytes)
    if error or runts:
        _bump(stats, "rx_errors", (error != 0) + runts)


cdef class FrameIO:
    """The read and write loops of a device whose fd carries one frame per
    syscall, each behind an ``hlen``-byte virtio-net header (0: none); a
    read takes at most ``size`` bytes (the header included).

    After each call: ``nbytes`` (frame bytes read or written, headers not
    counted), ``error`` (the errno that ended it: 0 when it ended at
    EAGAIN, the budget or the end of the frames), and for ``read``
    ``runts`` (reads shorter than the header: counted, not delivered)."""

    cdef readonly Py_ssize_t size
    cdef readonly Py_ssize_t hlen
    cdef readonly Py_ssize_t nbytes
    cdef readonly int error
    cdef readonly Py_ssize_t runts
    cdef readonly Py_ssize_t dropped      # write_all's frames that did not go
    cdef readonly Py_ssize_t csum_done    # read's partial checksums completed here
    cdef PyObject* spare        # a bytes of ``size`` to read into (owned), or NULL

    def __cinit__(self, Py_ssize_t size, Py_ssize_t hlen = 0):
        if hlen < 0 or size <= hlen:
            raise ValueError("FrameIO: size must exceed hlen >= 0")
        self.size = size
        self.hlen = hlen
        self.dropped = 0
        self.spare = NULL

    def __dealloc__(self):
        Py_XDECREF(self.spare)
        self.spare = NULL

    def read(self, int fd, Py_ssize_t budget, list frames not None, offloaded,
             Py_ssize_t small=0, dict stats=None, dict gso_stats=None):
        """Read up to ``budget`` frames from ``fd`` onto ``frames`` (headers
        stripped; a flagged header's frame through ``offloaded(raw,
        frames)``); the number of reads that returned a frame.

        ``stats`` (a device's counters, devices.base.new_stats): the call
        counts what it read there (``_count_rx``) and ``gso_stats``'s
        ``rx_csum_partial`` the checksums it completed, so the device's
        reader does no counting of its own per batch.

        ``small``: a flagged frame of at most that many bytes whose header
        says no more than NEEDS_CSUM or DATA_VALID (no GSO) is taken here
        as rx.vnet_rx takes it below RX_FLAGGED_MIN, in the copy out of the
        read buffer: the partial checksum completed (counted in
        ``csum_done``), plain ``bytes``.  A handshake's or an ACK's frame
        from the kernel's own stack needs no call into Python then."""
        return self._read(fd, budget, frames, offloaded, small, stats, gso_stats)

    cdef Py_ssize_t _read(self, int fd, Py_ssize_t budget, list frames, offloaded,
                          Py_ssize_t small, dict stats, dict gso_stats) except -1:
        cdef Py_ssize_t nread = 0, nbytes = 0, runts = 0, done = 0
        cdef Py_ssize_t size = self.size, hlen = self.hlen, n, m, start, where
        cdef ssize_t got
        cdef unsigned char* p
        cdef unsigned char* d
        cdef PyObject* raw
        cdef int e
        cdef uint16_t v
        self.error = 0
        self.nbytes = 0
        self.runts = 0
        self.csum_done = 0
        if hlen < 10:
            small = 0           # (not a virtio-net header: nothing to read in it)
        try:
            while nread < budget:
                if self.spare == NULL:
                    self.spare = devio_new_bytes(size)
                    if self.spare == NULL:
                        raise MemoryError()
                p = <unsigned char*>PyBytes_AS_STRING(<object>self.spare)
                got = c_read(fd, p, size)
                if got < 0:
                    e = errno
                    if e == EINTR:
                        PyErr_CheckSignals()
                        continue
                    if e != EAGAIN and e != EWOULDBLOCK:
                        self.error = e
                    break
                nread += 1
                n = got
                if n < hlen:
                    runts += 1
                    continue
                m = n - hlen
                nbytes += m
                if hlen and (p[0] or p[1]):
                    if m <= small and p[1] == 0 and not p[0] & ~3:
                        # NEEDS_CSUM (1) and/or DATA_VALID (2), no GSO
                        if not p[0] & 1:
                            frames.append(PyBytes_FromStringAndSize(<char*>p + hlen, m))
                            continue
                        # csum_start, csum_offset: the host's byte order
                        memcpy(&v, p + 6, 2)
                        start = v
                        memcpy(&v, p + 8, 2)
                        where = start + v
                        if where + 2 <= m:
                            out = PyBytes_FromStringAndSize(<char*>p + hlen, m)
                            d = <unsigned char*>PyBytes_AS_STRING(out)
                            # skb_checksum_help: the field holds the pseudo-header sum
                            wr16(d + where, ~csum_net(d + start, m - start, 0) & 0xFFFF)
                            frames.append(out)
                            done += 1
                            continue
                    # flags or gso_type: a partial checksum or a super-frame,
                    # the raw read (header included) handed over
                    raw = self.spare
                    self.spare = NULL
                    offloaded(devio_shrink(raw, n), frames)
                elif 2 * m > size:
                    # large: the spare itself becomes the frame
                    if hlen:
                        memmove(p, p + hlen, m)
                    raw = self.spare
                    self.spare = NULL
                    frames.append(devio_shrink(raw, m))
                else:
                    frames.append(PyBytes_FromStringAndSize(<char*>p + hlen, m))
        finally:
            self.nbytes = nbytes
            self.runts = runts
            self.csum_done = done
        if stats is not None:
            _count_rx(stats, nread, nbytes, runts, self.error)
            if done and gso_stats is not None:
                _bump(gso_stats, "rx_csum_partial", done)
        return nread

    def read_flows(self, dev, Py_ssize_t small=0, bint timed=False):
        """One turn of a TAP/TUN device's flows' queue (``dev``: its fd, its
        budget and reader state, its counters and ``_on_frames``), the lone
        read rule with it, in one compiled call: the loop's reader itself
        (TapDevice.start), so a request/response flow's frame goes from
        read(2) to the host with no Python of the device's between.  The
        frames read; ``small`` as for ``read``.

        The rule (``LONE_DRAIN``): while the last batches were one frame
        each (``dev._rx_lone``), read one frame and leave the read that
        would find the queue empty to the loop's next poll of the fd (which
        reports it again if more came); every ``LONE_DRAIN + 1``-th drains.
        Stopped at the budget: more is waiting (``dev.rx_more``); short of
        it: the queue was seen empty (``dev.rx_emptied``).  A lone read is
        not "more waiting" (NAPI that completes and re-enables the
        interrupt).  ``dev.rx_flows_read`` counts the frames.

        Unless ``timed`` (the caller times it), a device whose SYN share
        asks for the flows' reads to be timed (``syn_share.times_flows``)
        is handed to its own ``_on_readable``, which does and comes back."""
        cdef Py_ssize_t budget, nread, lone
        cdef bint full
        cdef list frames
        fd = dev.fd
        if fd is None:
            return 0
        if not timed and dev.syn_share.times_flows:
            return dev._on_readable()
        lone = dev._rx_lone
        budget = 1 if lone & LONE_DRAIN else dev.budget
        frames = []
        nread = self._read(fd, budget, frames, dev._rx_offloaded, small, dev.stats,
                           dev.gso_stats)
        full = nread == budget
        dev.rx_more = full and not lone & LONE_DRAIN
        dev.rx_flows_read = dev.rx_flows_read + nread
        if not full:
            dev.rx_emptied = dev.rx_emptied + 1
        dev._rx_lone = lone + 1 if nread == 1 else 0
        if frames:
            on_frames = dev._on_frames
            if on_frames is not None:
                on_frames(frames)
        return nread

    cdef int _write_one(self, int fd, frame, plain, tx_hdr) except -1:
        """One frame with one write(2) (writev(2) behind its header when
        ``hlen``: ``plain`` for a ``bytes`` frame, ``tx_hdr(frame, plain)``
        for any other), EINTR retried: 0 with the frame's length in
        ``nbytes``, or the errno of the write that failed (in ``error``)."""
        cdef Py_ssize_t hlen = self.hlen
        cdef ssize_t r
        cdef iovec iov[2]
        cdef rbuf fb, hb
        cdef int e
        cdef object fown, hown, hdr
        fb.release = hb.release = False
        fown = rbuf_get(frame, &fb)
        try:
            if hlen:
                hdr = plain if type(frame) is bytes else tx_hdr(frame, plain)
                hown = rbuf_get(hdr, &hb)
                iov[0].iov_base = <void*>hb.p
                iov[0].iov_len = hb.n
                iov[1].iov_base = <void*>fb.p
                iov[1].iov_len = fb.n
            while True:
                if hlen:
                    r = c_writev(fd, iov, 2)
                else:
                    r = c_write(fd, fb.p, fb.n)
                if r >= 0:
                    self.nbytes = fb.n
                    return 0
                e = errno
                if e != EINTR:
                    self.error = e
                    return e
                PyErr_CheckSignals()
        finally:
            rbuf_release(&hb)
            rbuf_release(&fb)

    def send(self, int fd, frame, plain, tx_hdr, dict stats not None):
        """``write(fd, (frame,), 0, plain, tx_hdr)`` for the one frame a
        request/response flow sends per kick, without the tuple, counted
        in ``stats`` (tx_packets, tx_bytes) when it went: 0, or the errno
        of the write that failed (nothing counted; the device decides)."""
        cdef int e
        self.error = 0
        self.nbytes = 0
        e = self._write_one(fd, frame, plain, tx_hdr)
        if e:
            return e
        _bump(stats, "tx_packets", 1)
        _bump(stats, "tx_bytes", self.nbytes)
        return 0

    def write(self, int fd, frames, Py_ssize_t start, plain, tx_hdr):
        """Write ``frames[start:]`` to ``fd``, one frame a write, until one
        fails: the index of that frame (its errno in ``error``), or
        ``len(frames)``.  With ``hlen``, each goes behind a header:
        ``plain`` (bytes) for a ``bytes`` frame, ``tx_hdr(frame, plain)``
        for any other."""
        cdef object seq = PySequence_Fast(frames, "frames must be a sequence")
        cdef Py_ssize_t count = PySequence_Fast_GET_SIZE(seq)
        cdef Py_ssize_t i = start if start > 0 else 0
        cdef Py_ssize_t nbytes = 0
        self.error = 0
        self.nbytes = 0
        try:
            while i < count:
                if self._write_one(fd, <object>PySequence_Fast_GET_ITEM(seq, i), plain, tx_hdr):
                    return i
                nbytes += self.nbytes
                i += 1
            return count
        finally:
            self.nbytes = nbytes

    def write_all(self, int fd, list frames not None, list hdrs, int wait_ms):
        """Write each of ``frames`` (``bytes``, a subclass too) with one
        write(2), behind ``hdrs[i]`` (``bytes``) with writev(2) when
        ``hlen``, the GIL released for the whole batch; the count written.
        A frame the queue will not take (EAGAIN, ENOBUFS) waits for room
        with poll(2), at most ``wait_ms`` in all for the batch, then is
        dropped like a frame whose write failed otherwise: ``dropped`` counts
        them, ``error`` is the errno of the last, ``nbytes`` the frame bytes
        written."""
        cdef Py_ssize_t n = len(frames), i, sent = 0, dropped = 0, nbytes = 0
        cdef Py_ssize_t hlen = self.hlen
        cdef iovec* iov
        cdef ssize_t r
        cdef int e, last = 0, waited = 0
        cdef pollfd pfd
        cdef object f, h
        self.error = 0
        self.nbytes = 0
        if n == 0:
            return 0
        if hlen and (hdrs is None or len(hdrs) != n):
            raise ValueError("write_all: one header a frame")
        iov = <iovec*>malloc(2 * n * sizeof(iovec))
        if iov == NULL:
            raise MemoryError()
        try:
            for i in range(n):
                f = frames[i]
                if not isinstance(f, bytes):
                    raise TypeError("write_all: frames must be bytes")
                iov[2 * i + 1].iov_base = <void*>PyBytes_AS_STRING(f)
                iov[2 * i + 1].iov_len = len(<bytes>f)
                if hlen:
                    h = hdrs[i]
                    if not isinstance(h, bytes):
                        raise TypeError("write_all: headers must be bytes")
                    iov[2 * i].iov_base = <void*>PyBytes_AS_STRING(h)
                    iov[2 * i].iov_len = len(<bytes>h)
            pfd.fd = fd
            pfd.events = POLLOUT
            # (the lists keep every buffer alive while the GIL is away)
            with nogil:
                i = 0
                while i < n:
                    if hlen:
                        r = c_writev(fd, &iov[2 * i], 2)
                    else:
                        r = c_write(fd, iov[2 * i + 1].iov_base, iov[2 * i + 1].iov_len)
                    if r >= 0:
                        sent += 1
                        nbytes += <Py_ssize_t>iov[2 * i + 1].iov_len
                        i += 1
                        continue
                    e = errno
                    if e == EINTR:
                        continue
                    if (e == EAGAIN or e == EWOULDBLOCK or e == ENOBUFS) and waited < wait_ms:
                        # room comes as the kernel frees what it took
                        c_poll(&pfd, 1, 1)
                        waited += 1
                        continue
                    dropped += 1
                    last = e
                    i += 1
        finally:
            free(iov)
        self.nbytes = nbytes
        self.error = last
        self.dropped = dropped
        return sent
