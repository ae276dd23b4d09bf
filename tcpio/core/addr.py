"""Address helpers: the core uses host-order ints for IPv4 and IPv6, bytes for MACs."""

from __future__ import annotations

import socket
import struct


def ip_aton(text: str) -> int:
    """'10.0.0.2' -> 0x0A000002.  Raises OSError(EINVAL)-style ValueError on junk."""
    try:
        return struct.unpack("!I", socket.inet_aton(text))[0] if text.count(".") == 3 \
            else _bad(text)
    except OSError:
        return _bad(text)


def _bad(text: str) -> int:
    raise ValueError(f"not an IPv4 address: {text!r}")


def ip_ntoa(ip: int) -> str:
    return socket.inet_ntoa(struct.pack("!I", ip))


def parse_cidr(text: str) -> tuple[int, int]:
    """'10.0.0.2/24' -> (ip, 24).  A bare address means /32."""
    if "/" in text:
        addr, _, plen = text.partition("/")
        prefixlen = int(plen)
        if not 0 <= prefixlen <= 32:
            raise ValueError(f"bad prefix length in {text!r}")
    else:
        addr, prefixlen = text, 32
    return ip_aton(addr), prefixlen


def prefix_mask(prefixlen: int) -> int:
    return (0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF if prefixlen else 0


def ip6_aton(text: str) -> int:
    """'fd00::2' -> 0xfd00...02 (a 128-bit int).  ValueError on junk (a zone
    index like 'fe80::1%eth0' included: scopes are ifindex arguments here)."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except (OSError, TypeError):
        raise ValueError(f"not an IPv6 address: {text!r}") from None


def ip6_ntoa(ip: int) -> str:
    return socket.inet_ntop(socket.AF_INET6, ip.to_bytes(16, "big"))


def parse_cidr6(text: str) -> tuple[int, int]:
    """'fd00::2/64' -> (ip, 64).  A bare address means /128."""
    addr, slash, plen = text.partition("/")
    prefixlen = int(plen) if slash else 128
    if not 0 <= prefixlen <= 128:
        raise ValueError(f"bad prefix length in {text!r}")
    return ip6_aton(addr), prefixlen


def prefix_mask6(prefixlen: int) -> int:
    return ((1 << 128) - 1) ^ ((1 << (128 - prefixlen)) - 1)


def mac_ntoa(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def mac_aton(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
INADDR_ANY = 0
INADDR_BROADCAST = 0xFFFFFFFF


def is_multicast(ip: int) -> bool:
    return (ip >> 28) == 0xE
