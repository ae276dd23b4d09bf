"""A GsoFrame the compiled code builds in place is an ordinary bytes object
of its subclass: the oracle is CPython's own, ``GsoFrame(data)``.

The compiled builders (tx's super-frames, rx.vnet_rx's GRO frames) allocate
the frame without zeroing its data (_buf.pxd ``bytes_subtype_alloc``: they
write every byte), so what CPython's allocator zeroes and these must not
leave to chance is checked here against a frame CPython made: the value,
hash and length, the terminating NUL that the bytes API promises C code,
an instance dict that starts empty (its pointer lives after the data), and
the cycle collector tracking it.  The allocator's blocks are first filled
with 0xFF by freed bytes of the same size, so a slot left unzeroed would
show.
"""

from __future__ import annotations

import ctypes
import gc
import sys

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from tcpio import _fast
from tcpio._fast.gso import GsoFrame
from tcpio.devices import virtio_net as vnet

pytestmark = pytest.mark.skipif(not _fast.is_compiled(_fast.load("rx")),
                                reason="compiled build only: the allocation of the compiled rx")

# where a bytes object's data starts (ob_sval), as CPython lays it out
_SVAL = sys.getsizeof(b"") - 1


def data_valid_frame(size: int) -> bytes:
    """A TCP/IPv4 frame of ``size`` bytes the device vouches for (DATA_VALID):
    vnet_rx hands it up as a GsoFrame it allocated and copied into."""
    head = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") \
        / IP(src="10.7.0.1", dst="10.7.0.2") / TCP(sport=5000, dport=80, flags="A")
    pad = size - len(bytes(head))
    return bytes(head / bytes((i * 7) & 0xFF for i in range(pad)))


def poison(size: int) -> None:
    """Leave freed blocks of about a ``size``-byte bytes object full of 0xFF."""
    junk = [b"\xff" * (size + k) for k in range(24)]
    del junk


# every remainder mod 8 (where the dict pointer falls after the data) on
# either side of the 2 KiB flagged-frame minimum, and a 64 KiB frame
@pytest.mark.parametrize("size", list(range(2100, 2116)) + [65535 - 10, 65535 + 14])
def test_a_frame_built_in_place_is_the_bytes_cpython_would_make(size: int) -> None:
    rx = _fast.load("rx")
    raw = data_valid_frame(size)
    hdr = vnet.build_vnet_hdr(vnet.VirtioNetHdr(vnet.VIRTIO_NET_HDR_F_DATA_VALID,
                                                0, 0, 0, 0, 0))
    poison(size)
    out = rx.vnet_rx(hdr + raw, 10)
    ref = GsoFrame(raw)
    assert type(out) is GsoFrame and len(out) == size
    assert out == ref == raw and hash(out) == hash(ref) == hash(raw)
    assert ctypes.string_at(id(out) + _SVAL + size, 1) == b"\0"
    # vnet_rx set these three; nothing else was in the dict it found
    assert vars(out) == {"gso_size": 0, "gso_segs": 1, "csum_valid": True}
    assert gc.is_tracked(out) == gc.is_tracked(ref)
    assert sys.getsizeof(out) >= sys.getsizeof(ref) - 8
    out.extra = 1                       # the dict takes new attributes
    assert out.extra == 1 and out[:size] == raw
