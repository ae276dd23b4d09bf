"""A second TAP/TUN queue for connection requests: the kernel sorts SYNs apart.

Under a SYN flood the frames of established connections and the flood's SYNs
share the tun driver's one ring toward tcpio; when the flood fills it, the
kernel drops the flows' data and ACKs with the SYNs, before tcpio can choose
what to read first (issue 13's bench_flood: flows kept 1% of their
throughput).  Linux's own answer for a NIC is RSS plus a SYN budget per
queue; the tun driver's is IFF_MULTI_QUEUE with a steering program
(TUNSETSTEERINGEBPF, Linux 4.16+): an eBPF socket-filter program run for
every frame the kernel sends into the device, whose return value picks the
queue (``ret % numqueues``, tun_ebpf_select_queue).

``syn_steering_program(link)`` is that program, eight-byte eBPF instructions
assembled here (no compiler, no libbpf): queue 1 for a TCP segment with SYN
set and ACK, RST and FIN clear (a connection request, IPv4 or IPv6 without
extension headers), queue 0 for everything else, so the flows keep a ring of
their own and the device reads the SYN queue with a small budget per wake-up.
``load_socket_filter(code)`` loads it with the bpf(2) syscall and returns the
program's fd (OSError when the kernel refuses: no CAP_BPF, no eBPF).

The program reads the frame with the legacy packet loads (BPF_LD_ABS/IND),
which socket filters keep and which bounds-check for themselves (an offset
past the frame ends the program with 0: queue 0).

A retransmitted SYN skips the flood (issue 13): given ``seen`` (an array
map, ``seen_map(slots)``), the program remembers every connection
request it steers, before the ring can drop it: source address, source
port and initial sequence number folded into 64 bits choose a slot by
their hash and leave a 32-bit fingerprint there.  A SYN that finds its
own fingerprint in its slot is the same request sent again (a client's
SYN retransmission: same source, port and ISN, RFC 9293 3.8.1) and goes
to the flows' queue, which tcpio reads first, instead of the SYN queue,
where a flood leaves a new SYN a place in the ring only by chance (the
ring is full; the kernel drops the newcomer) and holds it behind the
ring's length.  A flood from random spoofed sources never repeats itself
(2**-31 a SYN to meet its fingerprint by chance); what it does is
overwrite the slots: of ``slots`` (2**21 by default, 8 MiB of kernel
memory), a flood of 200 000 SYN/s has overwritten 9% after 1 s (a
client's first retransmission), 25% after 3 s, so a client's
retransmission is recognised ~90% of the time even then.  A flood that
sends every SYN twice would have its repeats promoted: at most
``promote_per_ms`` a millisecond (a window of 2**20 ns, counted in the
map) go to the flows' queue, the rest to the SYN queue as before, so such
a flood takes the flows at most that many SYNs' work.  Nothing about the
SYN is judged but that it was sent before: its options, TTL or window
play no part.
"""

from __future__ import annotations

import ctypes
import os
import struct
from typing import Literal

# <linux/bpf.h>
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_PROG_LOAD = 5
BPF_PROG_TEST_RUN = 10
BPF_MAP_TYPE_ARRAY = 2
BPF_PSEUDO_MAP_FD = 1
_FUNC_MAP_LOOKUP_ELEM = 1
_FUNC_KTIME_GET_NS = 5
BPF_PROG_TYPE_SOCKET_FILTER = 1
# <linux/if_tun.h>: _IOR('T', 224, int)
TUNSETSTEERINGEBPF = 0x800454E0
IFF_MULTI_QUEUE = 0x0100

# syscall numbers for bpf(2)
_NR_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "riscv64": 280, "ppc64le": 361,
           "s390x": 351, "i686": 357}

SYN_QUEUE = 1          # the queue connection requests go to
FLOW_QUEUE = 0         # everything else

# seen_map: requests remembered (a power of two: 2**21 fingerprints, 8 MiB),
# and retransmitted SYNs sent to the flows' queue per 2**20 ns at most
SEEN_SLOTS = 1 << 21
PROMOTE_PER_MS = 8

# eBPF opcodes used below (<linux/bpf_common.h>, <linux/bpf.h>)
_LD_ABS_B, _LD_ABS_H, _LD_ABS_W, _LD_IND_B = 0x30, 0x28, 0x20, 0x50
_LD_IND_H, _LD_IND_W, _LD_IMM64 = 0x48, 0x40, 0x18
_MOV64_REG, _MOV64_IMM = 0xBF, 0xB7
_AND64_IMM, _LSH64_IMM, _RSH64_IMM = 0x57, 0x67, 0x77
_OR64_REG, _XOR64_REG, _ADD64_IMM = 0x4F, 0xAF, 0x07
_MUL32_IMM, _RSH32_IMM = 0x24, 0x74
_LDX_DW, _STX_DW, _LDX_W, _STX_W, _ST_W = 0x79, 0x7B, 0x61, 0x63, 0x62
_ADD32_REG, _OR32_IMM = 0x0C, 0x44
_ATOMIC_DW = 0xDB       # with imm BPF_ADD (0): lock *(u64 *)(dst + off) += src
_JNE_IMM, _JA, _EXIT, _CALL = 0x55, 0x05, 0x95, 0x85
_JEQ_IMM, _JEQ_REG, _JGE_IMM = 0x15, 0x1D, 0x35

_TCP = 6
_SYN, _ACK, _RST, _FIN = 0x02, 0x10, 0x04, 0x01


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """struct bpf_insn: opcode, dst_reg:4 | src_reg:4, s16 offset, s32 immediate."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def syn_steering_program(link: Literal["ether", "ip"] = "ether", seen: int | None = None,
                         slots: int = SEEN_SLOTS, promote_per_ms: int = PROMOTE_PER_MS) -> bytes:
    """The steering program for a device carrying Ethernet frames (TAP) or bare
    IP datagrams (TUN): returns SYN_QUEUE for a connection request, else
    FLOW_QUEUE.  With ``seen`` (the fd of ``seen_map(slots)``), a
    connection request sent again returns FLOW_QUEUE (see the module doc)."""
    if slots < 4 or slots & (slots - 1) or not 0 <= promote_per_ms < 0xFFFF:
        raise ValueError("slots: a power of two >= 4; promote_per_ms: 0..65534")
    base = 14 if link == "ether" else 0
    # the seen check's inputs: r7 the IP header's length, r9 the IP version
    v4: list[_Item] = [_insn(_MOV64_IMM, 9, imm=4)] if seen is not None else []
    v6: list[_Item] = [_insn(_MOV64_IMM, 7, imm=40),
                       _insn(_MOV64_IMM, 9, imm=6)] if seen is not None else []
    prog: list[_Item] = [_insn(_MOV64_REG, 6, 1)]        # the packet loads read r6
    if base:        # Ethernet: the family by EtherType
        prog += [_insn(_LD_ABS_H, imm=12), ("jne", 0x0800, "ipv6")]
    else:           # TUN: by the version nibble
        prog += [_insn(_LD_ABS_B, imm=0), _insn(_AND64_IMM, 0, imm=0xF0),
                 ("jne", 0x40, "ipv6")]
    prog += [
        _insn(_LD_ABS_B, imm=base + 9),                 # IPv4 protocol
        ("jne", _TCP, "flow"),
        _insn(_LD_ABS_H, imm=base + 6),                 # fragment offset
        _insn(_AND64_IMM, 0, imm=0x1FFF),
        ("jne", 0, "flow"),                             # a later fragment: no TCP header
        _insn(_LD_ABS_B, imm=base),                     # version and IHL
        _insn(_AND64_IMM, 0, imm=0x0F),
        _insn(_LSH64_IMM, 0, imm=2),
        _insn(_MOV64_REG, 7, 0),                        # r7 = IP header length
        *v4,
        _insn(_LD_IND_B, 0, 7, imm=base + 13),          # TCP flags
        ("ja", "flags"),
        ("label", "ipv6"),
    ]
    if base:
        prog += [_insn(_LD_ABS_H, imm=12), ("jne", 0x86DD, "flow")]
    else:
        prog += [_insn(_LD_ABS_B, imm=0), _insn(_AND64_IMM, 0, imm=0xF0),
                 ("jne", 0x60, "flow")]
    prog += [
        _insn(_LD_ABS_B, imm=base + 6),                 # next header
        ("jne", _TCP, "flow"),                          # extension headers: queue 0
        *v6,
        _insn(_LD_ABS_B, imm=base + 40 + 13),           # TCP flags
        ("label", "flags"),
        _insn(_AND64_IMM, 0, imm=_SYN | _ACK | _RST | _FIN),
        ("jne", _SYN, "flow"),
    ]
    if seen is not None:
        prog += _seen_check(base, seen, slots, promote_per_ms)
    prog += [
        ("label", "syn"),
        _insn(_MOV64_IMM, 0, imm=SYN_QUEUE),
        _insn(_EXIT),
        ("label", "flow"),
        _insn(_MOV64_IMM, 0, imm=FLOW_QUEUE),
        _insn(_EXIT),
    ]
    return _assemble(prog)


def _map_lookup(map_fd: int) -> list[_Item]:
    """r0 = bpf_map_lookup_elem(map, r10 - 4) (the key stored there); "syn"
    when it is NULL (it never is for an array's key in range)."""
    return [
        _insn(_LD_IMM64, 1, BPF_PSEUDO_MAP_FD, imm=map_fd), _insn(0),
        _insn(_MOV64_REG, 2, 10),
        _insn(_ADD64_IMM, 2, imm=-4),
        _insn(_CALL, imm=_FUNC_MAP_LOOKUP_ELEM),
        ("jeq", 0, "syn"),
    ]


def _seen_check(base: int, seen: int, slots: int, promote_per_ms: int) -> list[_Item]:
    """A connection request (r7: its IP header length, r9: 4 or 6): the
    request folded into 64 bits (source address << 32 | ISN ^ source port
    << 16, IPv6's address as its four words xored), its slot chosen by a
    hash of those and its 32-bit fingerprint (the two words' sum, low bit
    set: never an empty slot's 0) looked up there, two slots to a map
    element; there already: "flow" while the promotion budget lasts, else
    stored there and "syn"."""
    shift = 32 - (slots.bit_length() - 1)
    half = slots // 2           # the map's elements of two slots; then budget, counts
    return [
        _insn(_LD_IND_W, 0, 7, imm=base + 4),           # ISN
        _insn(_MOV64_REG, 8, 0),
        _insn(_LD_IND_H, 0, 7, imm=base),               # source port
        _insn(_LSH64_IMM, 0, imm=16),
        _insn(_XOR64_REG, 8, 0),
        ("jne9", 4, "src6"),
        _insn(_LD_ABS_W, imm=base + 12),                # IPv4 source
        ("ja", "fold"),
        ("label", "src6"),
        _insn(_LD_ABS_W, imm=base + 8),                 # IPv6 source, four words
        _insn(_MOV64_REG, 9, 0),
        _insn(_LD_ABS_W, imm=base + 12),
        _insn(_XOR64_REG, 9, 0),
        _insn(_LD_ABS_W, imm=base + 16),
        _insn(_XOR64_REG, 9, 0),
        _insn(_LD_ABS_W, imm=base + 20),
        _insn(_XOR64_REG, 0, 9),
        ("label", "fold"),
        _insn(_LSH64_IMM, 0, imm=32),
        _insn(_OR64_REG, 8, 0),                         # r8: the request
        # the slot: (high word ^ low word) * golden ratio, its top bits
        _insn(_MOV64_REG, 1, 8),
        _insn(_RSH64_IMM, 1, imm=32),
        _insn(_MOV64_REG, 2, 1),
        _insn(_XOR64_REG, 1, 8),
        _insn(_MUL32_IMM, 1, imm=-0x61C88647),          # 0x9E3779B9 as s32
        _insn(_RSH32_IMM, 1, imm=shift),
        _insn(_ADD32_REG, 8, 2),                        # r8: the fingerprint
        _insn(_OR32_IMM, 8, imm=1),
        _insn(_MOV64_REG, 9, 1),
        _insn(_AND64_IMM, 9, imm=1),                    # r9: which half
        _insn(_RSH32_IMM, 1, imm=1),                    # the element
        _insn(_STX_W, 10, 1, off=-4),
        *_map_lookup(seen),
        ("jne9", 0, "odd"),
        _insn(_LDX_W, 1, 0),
        ("jeq_reg", 1, 8, "again"),
        _insn(_STX_W, 0, 8),                            # remembered
        ("ja", "syn"),
        ("label", "odd"),
        _insn(_LDX_W, 1, 0, off=4),
        ("jeq_reg", 1, 8, "again"),
        _insn(_STX_W, 0, 8, off=4),                     # remembered
        ("ja", "syn"),
        ("label", "again"),
        # the budget: element ``half`` holds window << 16 | promoted in it
        _insn(_ST_W, 10, off=-4, imm=half),
        *_map_lookup(seen),
        _insn(_MOV64_REG, 9, 0),
        _insn(_CALL, imm=_FUNC_KTIME_GET_NS),
        _insn(_RSH64_IMM, 0, imm=20),
        _insn(_LSH64_IMM, 0, imm=16),                   # this window, count 0
        _insn(_LDX_DW, 1, 9),
        _insn(_MOV64_REG, 2, 1),
        _insn(_RSH64_IMM, 2, imm=16),
        _insn(_LSH64_IMM, 2, imm=16),
        ("jeq_reg", 2, 0, "count"),
        _insn(_MOV64_REG, 1, 0),                        # a new window
        ("label", "count"),
        _insn(_MOV64_REG, 2, 1),
        _insn(_AND64_IMM, 2, imm=0xFFFF),
        ("jge", 2, promote_per_ms, "refuse"),           # spent: the SYN queue
        _insn(_ADD64_IMM, 1, imm=1),
        _insn(_STX_DW, 9, 1),
        _insn(_MOV64_IMM, 7, imm=FLOW_QUEUE),
        _insn(_MOV64_IMM, 8, imm=half + 1),             # counted as promoted
        ("ja", "tally"),
        ("label", "refuse"),
        _insn(_MOV64_IMM, 7, imm=SYN_QUEUE),
        _insn(_MOV64_IMM, 8, imm=half + 2),             # counted as over the budget
        ("label", "tally"),
        _insn(_STX_W, 10, 8, off=-4),
        *_map_lookup(seen),
        _insn(_MOV64_IMM, 1, imm=1),
        _insn(_ATOMIC_DW, 0, 1),
        _insn(_MOV64_REG, 0, 7),
        _insn(_EXIT),
    ]


def seen_map(slots: int = SEEN_SLOTS) -> int:
    """bpf(BPF_MAP_CREATE): the array ``syn_steering_program(seen=...)``
    remembers requests in (``slots`` 4-byte fingerprints, two to an 8-byte
    element, then three more elements: the promotion budget's window, and
    the counts ``seen_counts`` reads); its fd (a loaded program keeps its
    own reference).  OSError when the kernel refuses."""
    if slots < 4 or slots & (slots - 1):
        raise ValueError("slots: a power of two >= 4")
    # union bpf_attr, BPF_MAP_CREATE: map_type, key_size, value_size, max_entries
    attr = struct.pack("<IIII", BPF_MAP_TYPE_ARRAY, 4, 8, slots // 2 + 3).ljust(128, b"\0")
    return _bpf(BPF_MAP_CREATE, attr)[0]


def seen_counts(seen: int, slots: int = SEEN_SLOTS) -> tuple[int, int]:
    """(retransmitted SYNs sent to the flows' queue, those the promotion
    budget kept on the SYN queue) so far, from the map ``seen``."""
    out = []
    for key in (slots // 2 + 1, slots // 2 + 2):
        k = ctypes.c_uint32(key)
        v = ctypes.c_uint64(0)
        # union bpf_attr, BPF_MAP_*_ELEM: map_fd, (pad), key, value, flags
        attr = struct.pack("<IIQQQ", seen, 0, ctypes.addressof(k), ctypes.addressof(v),
                           0).ljust(128, b"\0")
        _bpf(BPF_MAP_LOOKUP_ELEM, attr)
        out.append(int(v.value))
    return out[0], out[1]


# an instruction, ("label", name), ("jne", imm, label) (r0), ("jne9", imm,
# label) (r9), ("jeq", imm, label) (r0), ("jge", reg, imm, label),
# ("jeq_reg", dst, src, label) or ("ja", label)
_Item = bytes | tuple


def _assemble(prog: list[_Item]) -> bytes:
    """Resolve the labels: a jump's offset counts instructions after it."""
    labels: dict[str, int] = {}
    n = 0
    for item in prog:
        if isinstance(item, tuple) and item[0] == "label":
            labels[item[1]] = n
        else:
            n += 1
    out: list[bytes] = []
    for item in prog:
        if isinstance(item, bytes):
            out.append(item)
            continue
        kind = item[0]
        if kind == "label":
            continue
        off = labels[item[-1]] - len(out) - 1
        if kind == "jne":
            out.append(_insn(_JNE_IMM, off=off, imm=item[1]))
        elif kind == "jne9":
            out.append(_insn(_JNE_IMM, 9, off=off, imm=item[1]))
        elif kind == "jeq":
            out.append(_insn(_JEQ_IMM, off=off, imm=item[1]))
        elif kind == "jge":
            out.append(_insn(_JGE_IMM, item[1], off=off, imm=item[2]))
        elif kind == "jeq_reg":
            out.append(_insn(_JEQ_REG, item[1], item[2], off=off))
        else:       # "ja"
            out.append(_insn(_JA, off=off))
    return b"".join(out)


def _bpf_syscall_number() -> int:
    machine = os.uname().machine
    try:
        return _NR_BPF[machine]
    except KeyError:
        raise OSError(95, f"bpf(2): syscall number unknown on {machine}") from None


def load_socket_filter(code: bytes) -> int:
    """bpf(BPF_PROG_LOAD) of a socket-filter program; returns its fd (close it
    when no device holds it any more: the device keeps its own reference).
    OSError carries the kernel's errno and, where the verifier said why, its log."""
    if not code or len(code) % 8:
        raise ValueError("eBPF code is a whole number of 8-byte instructions")
    insns = ctypes.create_string_buffer(code, len(code))
    license = ctypes.create_string_buffer(b"GPL")   # packet loads need no GPL helper; any string
    try:
        return _prog_load(insns, license, None)
    except OSError:
        # again with the verifier's log (a whole one: only a refusal is worth its size)
        log = ctypes.create_string_buffer(1 << 20)
        return _prog_load(insns, license, log)


def _prog_load(insns: ctypes.Array[ctypes.c_char], license: ctypes.Array[ctypes.c_char],
               log: ctypes.Array[ctypes.c_char] | None) -> int:
    # union bpf_attr, BPF_PROG_LOAD: prog_type, insn_cnt, insns, license,
    # log_level, log_size, log_buf, kern_version, prog_flags (rest zero)
    attr = struct.pack("<IIQQIIQII", BPF_PROG_TYPE_SOCKET_FILTER, len(insns) // 8,
                       ctypes.addressof(insns), ctypes.addressof(license), log is not None,
                       len(log) if log is not None else 0,
                       ctypes.addressof(log) if log is not None else 0, 0, 0).ljust(128, b"\0")
    try:
        return _bpf(BPF_PROG_LOAD, attr)[0]
    except OSError as exc:
        err = exc.errno or 0
        why = log.value.decode(errors="replace").strip()[-4000:] if log is not None else ""
        raise OSError(err, f"bpf(BPF_PROG_LOAD): {os.strerror(err)}"
                      + (f": {why}" if why else "")) from None


_libc: ctypes.CDLL | None = None


def _bpf(cmd: int, attr: bytes) -> tuple[int, bytes]:
    """bpf(2): its result and the attr as the kernel left it; OSError."""
    global _libc
    libc = _libc
    if libc is None:
        libc = _libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(attr, len(attr))
    r = int(libc.syscall(ctypes.c_long(_bpf_syscall_number()), ctypes.c_int(cmd), buf,
                         ctypes.c_uint(len(attr))))
    if r < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf({cmd}): {os.strerror(err)}")
    return r, buf.raw


def prog_test_run(prog_fd: int, packet: bytes, repeat: int = 1) -> int:
    """bpf(BPF_PROG_TEST_RUN): the program's return value for ``packet``
    (an IP datagram: a socket filter's test run starts past the link
    header, so give it the ``"ip"`` program), run ``repeat`` times (the
    last run's value).  For the tests."""
    data = ctypes.create_string_buffer(packet, len(packet))
    # union bpf_attr, test: prog_fd, retval, data_size_in, data_size_out,
    # data_in, data_out, repeat, duration
    attr = struct.pack("<IIIIQQII", prog_fd, 0, len(packet), 0, ctypes.addressof(data), 0,
                       repeat, 0).ljust(128, b"\0")
    return int(struct.unpack_from("<I", _bpf(BPF_PROG_TEST_RUN, attr)[1], 4)[0])
