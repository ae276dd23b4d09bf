"""TCP, mirroring net/ipv4/tcp*.c: see docs/internals.md "TCP"."""
