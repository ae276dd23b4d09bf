"""asyncio Transport for a TCP core sock, and ``create_connection``.

``TcpTransport`` is what ``_SelectorSocketTransport`` is for a kernel socket:
it moves bytes between a Protocol and the core's ``TcpSock``, and keeps the
contract asyncio code relies on (connection_made/connection_lost exactly
once and in order, write buffer limits with pause_writing/resume_writing,
pause_reading/resume_reading, close vs abort, write_eof, BufferedProtocol).

Where the bytes wait:
- the transport's own buffer holds what ``sk.sendmsg`` has not accepted yet
  (the core's send buffer was full).  ``get_write_buffer_size()`` is that
  buffer only: bytes in the core's send buffer or in flight are TCP's
  business, exactly as bytes in the kernel's socket buffer are for asyncio.
- receive: pausing reading means not calling ``sk.recvmsg``; the core's
  receive buffer fills and the advertised window closes.

The transport learns about events through ``sk.wakeup`` (see "Sock wakeups"
in docs/internals.md) and re-reads the sock's state each time.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket as _socket
import ssl as _ssl
from asyncio import constants, transports
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from tcpio import tls
from tcpio.netdb import gaierror, inet6_literal
from tcpio.socket import SOCK_STREAM, TCP_CLOSE, Socket, check_family, pop_error, to_address

if TYPE_CHECKING:
    from tcpio.stack import Stack

logger = logging.getLogger("tcpio")

_ProtocolT = TypeVar("_ProtocolT", bound=asyncio.BaseProtocol)

# asyncio's selector transport reads 256 KiB at most per recv; same here.
MAX_READ = 256 * 1024
# get_extra_info's names TcpTransport fills in when first asked for.
_LAZY_NAMES = frozenset({"sockname", "peername"})
# The write buffer of a transport with nothing buffered (see TcpTransport._buffer).
_NO_BUFFER = b""
# TcpTransport._more while no chunk waits behind _buffer.
_NO_MORE: tuple[()] = ()
# A write that finds bytes already waiting is kept by reference from this
# size on when immutable; smaller ones (and any mutable data) are copied
# onto the last chunk, so a run of tiny writes makes one chunk, not many.
_REF_MIN = 4096


def _immutable(data: bytes | bytearray | memoryview) -> bool:
    """Is ``data`` a ``bytes``, or a view of one?  Then the transport may keep
    a reference to it; anything else the caller may still change after
    write() returns, so it is copied."""
    return type(data.obj if isinstance(data, memoryview) else data) is bytes


# after this many writes on a lost connection, say so once (asyncio does too)
LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5


# _connect_each's list of errors when there is one address (never appended to)
_NO_ERRORS: list[OSError] = []


def _set_result_unless_cancelled(fut: asyncio.Future[None], result: None) -> None:
    """asyncio.futures' private helper of the same name: the waiter may be cancelled."""
    if fut.cancelled():
        return
    fut.set_result(result)


class TcpTransport(transports._FlowControlMixin, asyncio.Transport):
    """A Transport over one connected ``TcpSock``."""

    # loop.sendfile() and aiohttp's FileResponse check this; FALLBACK makes
    # them read the file and call write() (else the body is silently empty).
    _sendfile_compatible = constants._SendfileMode.FALLBACK
    # asyncio's loop.start_tls (and so StreamWriter.start_tls) refuses any
    # transport without this; it only needs pause/resume_reading and
    # set_protocol, which we have.  (uvloop refuses foreign transports anyway:
    # tcpio.tls.start_tls works on both.)
    _start_tls_compatible = True

    # Set and provided by asyncio's base classes (BaseTransport and
    # _FlowControlMixin), which typeshed does not declare.
    _extra: dict[str, Any]
    _loop: asyncio.AbstractEventLoop
    _maybe_pause_protocol: Callable[[], None]
    _maybe_resume_protocol: Callable[[], None]

    # What waits behind _buffer, in order (a deque while there is any: made
    # by the first write that finds bytes waiting, so an idle or unblocked
    # transport keeps neither attribute of its own), and its size in bytes.
    _more: Any = _NO_MORE
    _more_len = 0
    # resume_reading's _poll_resumed is queued (the class's False until a
    # transport first resumes: most connections never pause)
    _poll_queued = False
    # the protocol is tcpio.streams' StreamReaderProtocol (set_protocol)
    _feeds_reader = False
    # a wakeup came while this transport was inside one (_on_wakeup)
    _rewake = False

    def __init__(self, loop: asyncio.AbstractEventLoop, stack: Stack, sk: Any,
                 protocol: asyncio.BaseProtocol, extra: dict[str, Any] | None = None,
                 server: Any = None, waiter: asyncio.Future[None] | None = None) -> None:
        super().__init__(extra, loop)
        self._stack = stack
        self._sk = sk
        registry = getattr(stack, "_transports", None)
        if registry is not None:   # Stack.close() ends every transport
            registry.add(self)     # (until connection_lost: _call_connection_lost)
        # the core TcpSock, for introspection (state, srtt, rto); not for I/O:
        # get_extra_info("tcp_sock") (and "socket", None: no kernel socket to
        # hand out) answer without an entry in _extra, which stays empty and
        # so untracked by the cycle collector (issue 11: every tracked object
        # of an idle connection is scanned by each full collection)
        self._tcp_sock = sk
        # "sockname" and "peername" are made when first asked for
        # (get_extra_info): most idle connections never are, and the two
        # strings and tuples were a twentieth of one's memory (issue 11).
        # A sock that does not keep its addresses once closed (any but a
        # TcpSock) is asked now, as asyncio does.
        if not hasattr(sk, "_to_user"):
            for name in _LAZY_NAMES:
                self._extra[name] = _sock_address(sk, name)
        # asyncio and uvloop set TCP_NODELAY on every TCP transport: protocols
        # that write a header and then a body would otherwise wait out Nagle
        # against the peer's delayed ACK (40 ms per response).
        try:
            sk.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self._protocol: Any = None
        self._protocol_connected = False
        self.set_protocol(protocol)
        # bytes not yet accepted by the core: a view of the caller's bytes
        # (immutable: not copied) or a bytearray while there are any, else
        # the shared empty bytes (an idle transport holds no buffer); later
        # writes wait behind it in _more
        self._buffer: bytearray | bytes | memoryview = _NO_BUFFER
        self._closing = False        # close() or a fatal error happened
        self._conn_lost = 0          # >0 once connection_lost is scheduled
        self._eof = False            # write_eof() was called
        self._eof_sent = False       # ... and the core was told (shutdown(SHUT_WR))
        self._read_eof = False       # eof_received() was delivered
        self._paused = False         # pause_reading()
        self._aborted = False
        self._in_wakeup = False      # inside the driver's kick(): it flushes for us
        self._server = server
        if server is not None:
            server._attach(self)
        # the transport itself, called (__call__ is _on_wakeup): a bound
        # method would be one more tracked object per connection for every
        # full collection of the cycle collector to scan (issue 11)
        sk.wakeup = self
        # Like asyncio: connection_made from the loop, then start reading
        # (data may already be queued), then wake whoever awaits the result.
        # (One callback for the first two: asyncio's are adjacent in the
        # ready queue, so nothing can run between them either.)
        # The waiter rides on the same callback (asyncio queues a third,
        # adjacent one): a Handle, a copied Context and an arguments tuple
        # fewer per connection, alive until the loop gets there (issue 11).
        if waiter is None:
            loop.call_soon(self._connection_made)
        else:
            loop.call_soon(self._connection_made, waiter)

    def __repr__(self) -> str:
        state = "closing" if self._closing else "open"
        return (f"<TcpTransport {state} local={self.get_extra_info('sockname')} "
                f"peer={self.get_extra_info('peername')} "
                f"buffered={self.get_write_buffer_size()}>")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        extra = self._extra
        if name in extra:
            return extra[name]
        if name == "tcp_sock":
            return self._tcp_sock
        if name == "socket":
            return None
        if name in _LAZY_NAMES:
            value = extra[name] = _sock_address(self._tcp_sock, name)
            return value
        return default

    # --- protocol ------------------------------------------------------------
    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._buffered_protocol = isinstance(protocol, asyncio.BufferedProtocol)
        # tcpio.streams' StreamReaderProtocol, its data_received its own
        # (only feeding its reader): the reader is fed without that hop
        # (a Python call per application read; a subclass that overrides
        # data_received gets it called)
        cls = type(protocol)
        direct = getattr(cls, "_reader_data_received", None)
        feeds = direct is not None and direct is getattr(cls, "data_received", None)
        if feeds or self._feeds_reader:     # (the class's False until then)
            self._feeds_reader = feeds

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def _connection_made(self, waiter: asyncio.Future[None] | None = None) -> None:
        # Even if closed before the loop got here, asyncio reports both
        # events, in order: connection_lost is call_soon'd after us.
        self._protocol_connected = True
        try:
            self._protocol.connection_made(self)
        finally:
            # then start reading (asyncio's _add_reader, queued right after
            # connection_made): data or EOF may be queued already
            try:
                self._poll()
            finally:
                # then wake whoever awaits the transport, even if
                # connection_made raised (asyncio's waiter is a callback of
                # its own, which the loop runs after logging that error)
                if waiter is not None:
                    _set_result_unless_cancelled(waiter, None)

    # --- state ---------------------------------------------------------------
    def is_closing(self) -> bool:
        return self._closing

    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def get_write_buffer_size(self) -> int:
        return len(self._buffer) + self._more_len

    def can_write_eof(self) -> bool:
        return True

    # --- reading -------------------------------------------------------------
    def pause_reading(self) -> None:
        # Idempotent, as asyncio's transports are (uvicorn calls it unguarded).
        if self._closing or self._paused:
            return
        self._paused = True

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        # Data or EOF may have arrived while paused with no wakeup to come:
        # a look from the loop, one at a time (a reader that pauses and
        # resumes per chunk, pulling in between, resumes several times
        # before the loop gets there: issue 12)
        if not self._poll_queued:
            self._poll_queued = True
            self._loop.call_soon(self._poll_resumed)

    def _poll_resumed(self) -> None:
        """resume_reading's look from the loop."""
        self._poll_queued = False
        self._poll()

    def _pull(self, reader: Any) -> bool:
        """Read what the sock holds now, for ``reader``, our StreamReader
        about to wait for data (``StreamReader._wait_for_data``), as a
        recv() on a kernel socket takes what is queued instead of waiting
        for the next wakeup: data_received (and eof_received) called from
        the reader's own read, before its waiter exists.  Only when this
        transport's protocol is the reader's own StreamReaderProtocol (not
        a TLS layer's, nor anybody else's, which expect data_received from
        the loop).  False, having done nothing, when there is nothing to
        read or the transport is not reading (paused, closing, lost, not
        yet connected, or inside a wakeup)."""
        sk = self._sk
        if sk is None:
            return False
        # (nothing to read first: the usual answer, a reader that has read
        # all that came and waits for more)
        avail = sk.readable()
        if ((not avail and not (sk.rcv_eof and not self._read_eof))
                or self._paused or self._closing or self._in_wakeup or self._conn_lost
                or not self._protocol_connected
                or getattr(self._protocol, "_reader", None) is not reader):
            return False
        stack = self._stack
        stack.update_time()
        self._in_wakeup = True      # (a kick's wakeup of this sock reads nothing twice)
        try:
            self._read_ready(sk, avail)
        finally:
            self._in_wakeup = False
        if self._rewake:
            # a wakeup came while reading (a subclass's feed_data ran the
            # driver): the whole of it now, as _on_wakeup would have
            self._rewake = False
            self._on_wakeup()
        stack.kick()                # the window update the read may send
        return True

    def _kick(self) -> None:
        """After a core call: let the driver send what it produced.

        Not needed inside a wakeup: the driver's kick() is running and loops
        until quiet (and must not be re-entered from every callback).
        """
        if not self._in_wakeup:
            self._stack.kick()

    def _poll(self) -> None:
        """Check the sock from a loop callback (not from the driver)."""
        if self._conn_lost or self._sk is None:
            return
        self._stack.update_time()
        self._on_wakeup()
        self._stack.kick()

    def _on_wakeup(self) -> None:
        """sk.wakeup: the core says this sock changed (level-triggered).

        Flush the write buffer, read, then look for errors.  A wakeup that
        comes while one runs (a kick inside a protocol callback, which
        delivered this sock's wakeup) is not lost: the sock is looked at
        again when the callback returns (``_rewake``)."""
        if self._in_wakeup:
            self._rewake = True
            return
        sk = self._sk
        if sk is None or self._conn_lost:
            return
        if not self._protocol_connected:
            # Data can arrive before the loop ran connection_made (it is
            # call_soon'd); the _poll queued right after it reads it then.
            return
        self._in_wakeup = True
        try:
            while True:
                if self._buffer:
                    self._flush()
                    if self._conn_lost:
                        return
                if not self._paused and not self._closing:
                    self._read_ready(sk, sk.readable())
                    if self._conn_lost:
                        return
                if getattr(sk, "sk_err", 0):      # (pop_error's own test, first)
                    exc = pop_error(sk)
                    if exc is not None:
                        self._force_close(exc)
                        return
                if not self._rewake:
                    return
                self._rewake = False
        finally:
            self._in_wakeup = False

    __call__ = _on_wakeup

    def _read_ready(self, sk: Any, avail: int) -> None:
        """Read while the sock holds bytes and the protocol takes them (not
        paused, not closing); then EOF, once all is read.  ``avail``: what
        ``sk.readable()`` has just said.  From _on_wakeup and _pull."""
        if not avail:
            pass
        elif self._buffered_protocol:
            while self._read_into_buffer(sk):
                if self._paused or self._closing or not sk.readable():
                    break
            else:
                return                  # (a fatal error)
        else:
            while True:
                try:
                    data = sk.recvmsg(MAX_READ)
                except OSError as exc:
                    self._fatal_error(exc, "Fatal read error on tcpio transport")
                    return
                try:
                    if self._feeds_reader:
                        # StreamReaderProtocol.data_received without its call
                        reader = self._protocol._reader
                        if reader is not None:
                            reader.feed_data(data)
                    else:
                        self._protocol.data_received(data)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:  # noqa: BLE001 - asyncio's rule: report, close, go on
                    self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
                    return
                # a read shorter than MAX_READ took all there was (what
                # came during data_received woke this sock: a wakeup inside
                # ours is looked at when ours ends, _rewake)
                if (len(data) < MAX_READ or self._paused or self._closing
                        or not sk.readable()):
                    break
        if (sk.rcv_eof and not self._read_eof and not self._paused and not self._closing
                and not sk.readable()):
            self._read_eof = True
            self._eof_received()

    def _read_into_buffer(self, sk: Any) -> bool:
        """One read for a BufferedProtocol; False after a fatal error.

        Each step fails the way asyncio's ``_read_ready__get_buffer`` does,
        with the same message, so logs read the same on either transport.
        """
        want = min(sk.readable(), MAX_READ)
        try:
            buf = self._protocol.get_buffer(want)
            with memoryview(buf) as view:
                size = view.nbytes
                if view.readonly or not view.c_contiguous:
                    # recv_into would refuse it: fail here, not mid-copy
                    raise BufferError("get_buffer() must return a writable, "
                                      "contiguous buffer")
            if not size:
                raise RuntimeError("get_buffer() returned an empty buffer")
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001 - asyncio's rule: report, close, go on
            self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
            return False
        try:
            # straight from the receive queue into the protocol's buffer:
            # one copy, no intermediate bytes (and no view left on buf for
            # buffer_updated, which may resize it)
            nbytes = sk.recvmsg_into(buf, min(size, want))
        except OSError as exc:
            self._fatal_error(exc, "Fatal read error on tcpio transport")
            return False
        try:
            self._protocol.buffer_updated(nbytes)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001 - asyncio's rule: report, close, go on
            self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")
            return False
        return True

    def _eof_received(self) -> None:
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001 - asyncio's rule: report, close, go on
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if not keep_open:
            self.close()

    # --- writing -------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        # (type() first: bytes, the usual, passes with one test)
        if type(data) is not bytes and not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if type(data) is memoryview and (data.itemsize != 1 or data.ndim != 1):
            # Count and slice in bytes, not items: a partial send of an
            # array('i') view must resume at the right byte.
            data = data.cast("B")
        if not data:
            return
        if self._conn_lost:
            if self._conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("tcpio transport: write() on a lost connection.")
            self._conn_lost += 1
            return
        if not self._buffer:
            # Fast path: straight into the core's send buffer.
            stack = self._stack
            stack.update_time()
            try:
                n = self._sk.sendmsg(data)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:  # noqa: BLE001 - asyncio's rule: report, close, go on
                self._fatal_error(exc, "Fatal write error on tcpio transport")
                return
            finally:
                if not self._in_wakeup:     # (_kick, inline)
                    stack.kick()
            if n == len(data):
                return
            data = memoryview(data)[n:]
        if self._buffer:
            self._queue_more(data)
        elif _immutable(data):
            # keep a reference, no copy (asyncio keeps one since 3.12)
            self._buffer = data
        else:
            self._buffer = bytearray(data)
        self._maybe_pause_protocol()

    def _queue_more(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` behind the bytes already waiting, as its own chunk
        (immutable and at least _REF_MIN bytes: by reference) or copied onto
        the last chunk: never joined with what waits (asyncio's selector
        transport does ``buffer += data``, a copy of every byte written
        while the core's send buffer is full; issue 12's in-memory bulk
        made one of each 256 KiB write that found the drain()'s low-water
        mark not yet empty)."""
        more = self._more
        if more is _NO_MORE:
            more = self._more = collections.deque()
        n = len(data)
        if n >= _REF_MIN and _immutable(data):
            more.append(data)
        elif more and type(more[-1]) is bytearray:
            more[-1] += data
        else:
            more.append(bytearray(data))
        self._more_len += n

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def _flush(self) -> None:
        """Hand buffered bytes to the core as its send buffer frees up: when
        the sock is writeable as tcp_poll says EPOLLOUT (sk_stream_is_writeable:
        the free space at least half of what is queued, and fewer than half
        the TCP_NOTSENT_LOWAT bytes unsent), which is when asyncio's own
        transport over a kernel socket hears the fd writable and sends its
        buffer.  Taking every bit of space an ACK frees instead paused and
        resumed a bulk writer once per write (issue 12: a 256 KiB write per
        ACK of a 256 KiB super-frame, the writer's task woken for each);
        woken at the kernel's mark it writes several times before the send
        buffer is full again."""
        sk = self._sk
        if sk.send_space() <= 0 or not sk.stream_writeable():
            return
        while True:
            buf = self._buffer
            try:
                n = sk.sendmsg(buf)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:  # noqa: BLE001 - asyncio's rule: report, close, go on
                self._fatal_error(exc, "Fatal write error on tcpio transport")
                return
            if n < len(buf):
                if n and type(buf) is bytearray:
                    del buf[:n]
                elif n:
                    self._buffer = memoryview(buf)[n:]
                break
            # the chunk went whole: the next one waiting, if the core has room
            more = self._more
            if not more:
                self._buffer = _NO_BUFFER
                break
            self._buffer = more.popleft()
            self._more_len -= len(self._buffer)
            if not more:
                self._more = _NO_MORE
            if sk.send_space() <= 0:
                break
        self._maybe_resume_protocol()    # may write, close or abort
        if not self._buffer and not self._conn_lost:
            # (a close() or abort() inside resume_writing has already
            # scheduled connection_lost: asyncio 3.11 schedules it twice here)
            if self._closing:
                self._conn_lost += 1
                self._loop.call_soon(self._call_connection_lost, None)
            elif self._eof:
                self._shutdown_write()

    def write_eof(self) -> None:
        """Half-close: FIN after everything written so far."""
        if self._closing or self._eof:
            return
        self._eof = True
        if not self._buffer:
            self._shutdown_write()

    def _shutdown_write(self) -> None:
        if self._eof_sent:
            return
        self._eof_sent = True
        self._stack.update_time()
        try:
            self._sk.shutdown(_socket.SHUT_WR)
        except OSError as exc:
            self._fatal_error(exc, "Fatal error on shutdown")
        finally:
            self._kick()

    # --- closing -------------------------------------------------------------
    def close(self) -> None:
        """Stop reading, flush the buffer, then FIN.  Idempotent."""
        if self._closing:
            return
        self._closing = True
        if not self._buffer:
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        """Drop the buffer and reset the connection (RST)."""
        self._force_close(None, rst=True)

    def _fatal_error(self, exc: BaseException, message: str = "Fatal error on transport") -> None:
        """Report a non-OSError, then close: like asyncio, the sock is *closed*
        (FIN, or RST if unread data is left, as tcp_close decides), not reset."""
        if not isinstance(exc, OSError):
            self._loop.call_exception_handler({
                "message": message, "exception": exc,
                "transport": self, "protocol": self._protocol})
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None, rst: bool = False) -> None:
        """Close now (asyncio's name: sslproto calls it on handshake errors)."""
        if self._conn_lost:
            return
        self._buffer = _NO_BUFFER
        if self._more:
            self._more = _NO_MORE
            self._more_len = 0
        self._closing = True
        self._conn_lost += 1
        # abort() resets.  With an exception the sock is closed later, in
        # _call_connection_lost, as asyncio does: a core error means the
        # connection is already dead (never answer a RST with a RST), and
        # after a protocol bug the peer gets FIN like on kernel sockets.
        if rst or exc is None:
            self._aborted = True
            self._stack.update_time()
            try:
                self._sk.abort()
            finally:
                self._kick()
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        sk, self._sk = self._sk, None
        try:
            if self._protocol_connected:
                self._protocol.connection_lost(exc)
        finally:
            if sk is not None:
                sk.wakeup = None
                if not self._aborted:
                    self._stack.update_time()
                    try:
                        sk.close()
                    finally:
                        self._stack.kick()
            self._protocol = None
            registry = getattr(self._stack, "_transports", None)
            if registry is not None:
                registry.discard(self)
            server, self._server = self._server, None
            if server is not None:
                server._detach(self)


def _sock_address(sk: Any, name: str) -> Any:
    """The connected sock's "sockname" or "peername" for get_extra_info,
    as the user sees it; asyncio reads both when it makes the transport, so
    a TcpSock closed since still gives the addresses it was connected with
    (it keeps them), and None only if it never had them."""
    to_user = getattr(sk, "_to_user", None)
    if to_user is not None:
        port = sk.lport if name == "sockname" else sk.rport
        if not port:
            return None
        return to_address(to_user(sk.laddr, port) if name == "sockname"
                          else to_user(sk.raddr, port))
    try:
        return to_address(sk.getsockname() if name == "sockname" else sk.getpeername())
    except OSError:
        return None


def check_given_sock(sock: Socket, host: Any, port: Any) -> None:
    """asyncio's checks on a ``sock=`` argument (create_connection, create_server)."""
    if host is not None or port is not None:
        raise ValueError("host/port and sock can not be specified at the same time")
    if sock.type != SOCK_STREAM:
        raise ValueError(f"A Stream Socket was expected, got {sock!r}")


def ssl_context_for(ssl: Any, server_side: bool) -> _ssl.SSLContext | None:
    """asyncio's rule: ``ssl=True`` means a default client context."""
    if not ssl:
        return None
    if isinstance(ssl, _ssl.SSLContext):
        return ssl
    if server_side:
        raise ValueError("ssl=True is not valid for a server; pass an SSLContext")
    return _ssl.create_default_context()


async def make_transport(stack: Stack, sk: Any, protocol_factory: Callable[[], _ProtocolT], *,
                         ssl: Any = None, server_side: bool = False,
                         server_hostname: str | None = None, server: Any = None,
                         ssl_handshake_timeout: float | None = None,
                         ssl_shutdown_timeout: float | None = None,
                         ) -> tuple[asyncio.Transport, _ProtocolT]:
    """Wrap a connected core sock in a transport (TLS if asked) and wait for it."""
    loop = asyncio.get_running_loop()
    protocol = protocol_factory()
    waiter = loop.create_future()
    sslcontext = ssl_context_for(ssl, server_side)
    transport: TcpTransport
    app_transport: asyncio.Transport     # what the application writes to
    if sslcontext is not None:
        ssl_protocol = tls.wrap_protocol(
            loop, protocol, sslcontext, waiter, server_side=server_side,
            server_hostname=server_hostname, ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)
        transport = TcpTransport(loop, stack, sk, ssl_protocol, server=server)
        app_transport = ssl_protocol._app_transport
    else:
        transport = app_transport = TcpTransport(loop, stack, sk, protocol, server=server,
                                                 waiter=waiter)
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return app_transport, protocol


def _ipaddr_info(host: Any, port: Any, family: int = 0) -> tuple[int, tuple] | None:
    """(family, sockaddr) when ``host`` is an IPv4 or IPv6 literal and
    ``port`` a number, as asyncio's base_events._ipaddr_info decides it; else
    None (resolve).  A literal of the other family than ``family`` asks:
    getaddrinfo's EAI_ADDRFAMILY."""
    if not isinstance(host, str) or not host:
        return None
    try:
        port = int(port)
    except (TypeError, ValueError):
        return None
    try:
        _socket.inet_pton(_socket.AF_INET, host)
        found: tuple[int, tuple] = (_socket.AF_INET, (host, port))
    except (OSError, ValueError):
        literal = inet6_literal(host)
        if literal is None:
            return None
        found = (_socket.AF_INET6, (literal[0], port, 0, literal[1]))
    if family and family != found[0]:
        raise gaierror(_socket.EAI_ADDRFAMILY, "Address family for hostname not supported")
    return found


async def _connect_each(stack: Stack, host: str | None, port: int | None,
                        local_addr: tuple[str, int] | None, family: int = 0) -> Socket:
    """Try each address the name resolves to, in order, like asyncio's
    create_connection; the one error, or all of them in one OSError."""
    # Like asyncio, whose getaddrinfo(host, None) gives port 0 (refused, not a
    # TypeError); a None host is INADDR_ANY, as in resolve_host.
    port = 0 if port is None else port
    numeric = _ipaddr_info(host, port, family)
    if numeric is not None:
        # asyncio's _ipaddr_info: a literal address is used as given, so a
        # port past 65535 is connect()'s OverflowError, not getaddrinfo's
        # 16-bit truncation.
        addresses = [numeric]
        del numeric
    elif host:
        infos = await stack.resolver.getaddrinfo(host, port, family, SOCK_STREAM)
        addresses = [(info[0], info[4]) for info in infos]
    else:
        addresses = [(family or _socket.AF_INET, ("" if host is None else host, port))]
    single = len(addresses) == 1
    # (one address: its error is raised as it is, nothing collected)
    errors: list[OSError] = _NO_ERRORS if single else []
    while addresses:
        # each taken off the list (no iterator, no entry held while it
        # connects: issue 11 counts the objects each waiting connect keeps)
        fam, address = addresses.pop(0)
        sock = Socket(stack, SOCK_STREAM, family=fam)
        try:
            if local_addr is not None:
                sock.bind(local_addr)
            await sock.connect(address)
            return sock
        except OSError as exc:
            sock.abort()
            if single:
                raise
            errors.append(exc)
        except BaseException:
            sock.abort()
            raise
    if len({str(exc) for exc in errors}) == 1:
        raise errors[0]
    raise OSError(f"Multiple exceptions: {', '.join(str(exc) for exc in errors)}")


async def create_connection(stack: Stack, protocol_factory: Callable[[], _ProtocolT],
                            host: str | None = None, port: int | None = None, *,
                            ssl: Any = None, family: int = 0, proto: int = 0, flags: int = 0,
                            sock: Socket | None = None,
                            local_addr: tuple[str, int] | None = None,
                            server_hostname: str | None = None,
                            ssl_handshake_timeout: float | None = None,
                            ssl_shutdown_timeout: float | None = None,
                            happy_eyeballs_delay: float | None = None,
                            interleave: int | None = None,
                            all_errors: bool = False) -> tuple[asyncio.Transport, _ProtocolT]:
    """``loop.create_connection`` on a tcpio stack (same arguments)."""
    check_family(family)
    if server_hostname is not None and not ssl:
        raise ValueError("server_hostname is only meaningful with ssl")
    if server_hostname is None and ssl:
        server_hostname = host
    if ssl_handshake_timeout is not None and not ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if sock is not None:
        check_given_sock(sock, host, port)
    else:
        if host is None and port is None:
            raise ValueError("host and port was not specified and no sock specified")
        sock = await _connect_each(stack, host, port, local_addr, family)
    sk = sock.core
    if sk.state == TCP_CLOSE:
        raise ConnectionResetError("connection closed before the transport was made")
    return await make_transport(stack, sk, protocol_factory, ssl=ssl,
                                server_hostname=server_hostname,
                                ssl_handshake_timeout=ssl_handshake_timeout,
                                ssl_shutdown_timeout=ssl_shutdown_timeout)
