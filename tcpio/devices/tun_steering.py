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
"""

from __future__ import annotations

import ctypes
import os
import struct
from typing import Literal

# <linux/bpf.h>
BPF_PROG_LOAD = 5
BPF_PROG_TYPE_SOCKET_FILTER = 1
# <linux/if_tun.h>: _IOR('T', 224, int)
TUNSETSTEERINGEBPF = 0x800454E0
IFF_MULTI_QUEUE = 0x0100

# syscall numbers for bpf(2)
_NR_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "riscv64": 280, "ppc64le": 361,
           "s390x": 351, "i686": 357}

SYN_QUEUE = 1          # the queue connection requests go to
FLOW_QUEUE = 0         # everything else

# eBPF opcodes used below (<linux/bpf_common.h>, <linux/bpf.h>)
_LD_ABS_B, _LD_ABS_H, _LD_IND_B = 0x30, 0x28, 0x50
_MOV64_REG, _MOV64_IMM = 0xBF, 0xB7
_AND64_IMM, _LSH64_IMM = 0x57, 0x67
_JNE_IMM, _JA, _EXIT = 0x55, 0x05, 0x95

_TCP = 6
_SYN, _ACK, _RST, _FIN = 0x02, 0x10, 0x04, 0x01


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """struct bpf_insn: opcode, dst_reg:4 | src_reg:4, s16 offset, s32 immediate."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def syn_steering_program(link: Literal["ether", "ip"] = "ether") -> bytes:
    """The steering program for a device carrying Ethernet frames (TAP) or bare
    IP datagrams (TUN): returns SYN_QUEUE for a connection request, else
    FLOW_QUEUE."""
    base = 14 if link == "ether" else 0
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
        _insn(_LD_ABS_B, imm=base + 40 + 13),           # TCP flags
        ("label", "flags"),
        _insn(_AND64_IMM, 0, imm=_SYN | _ACK | _RST | _FIN),
        ("jne", _SYN, "flow"),
        _insn(_MOV64_IMM, 0, imm=SYN_QUEUE),
        _insn(_EXIT),
        ("label", "flow"),
        _insn(_MOV64_IMM, 0, imm=FLOW_QUEUE),
        _insn(_EXIT),
    ]
    return _assemble(prog)


# an instruction, ("label", name), ("jne", imm, label) or ("ja", label)
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
        elif item[0] == "jne":
            out.append(_insn(_JNE_IMM, off=labels[item[2]] - len(out) - 1, imm=item[1]))
        elif item[0] == "ja":
            out.append(_insn(_JA, off=labels[item[1]] - len(out) - 1))
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
    libc = ctypes.CDLL(None, use_errno=True)
    insns = ctypes.create_string_buffer(code, len(code))
    license = ctypes.create_string_buffer(b"GPL")   # packet loads need no GPL helper; any string
    log = ctypes.create_string_buffer(4096)
    # union bpf_attr, BPF_PROG_LOAD: prog_type, insn_cnt, insns, license,
    # log_level, log_size, log_buf, kern_version, prog_flags (rest zero)
    attr = struct.pack("<IIQQIIQII", BPF_PROG_TYPE_SOCKET_FILTER, len(code) // 8,
                       ctypes.addressof(insns), ctypes.addressof(license), 1,
                       len(log), ctypes.addressof(log), 0, 0).ljust(128, b"\0")
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = int(libc.syscall(ctypes.c_long(_bpf_syscall_number()), ctypes.c_int(BPF_PROG_LOAD),
                          buf, ctypes.c_uint(len(attr))))
    if fd < 0:
        err = ctypes.get_errno()
        why = log.value.decode(errors="replace").strip()
        raise OSError(err, f"bpf(BPF_PROG_LOAD): {os.strerror(err)}" + (f": {why}" if why else ""))
    return fd
