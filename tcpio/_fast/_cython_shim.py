"""The part of Cython's ``cython`` module that tcp_fast.py uses when it runs
interpreted without Cython installed (Cython is a build dependency, not a run
time one).  With Cython installed, ``import cython`` gives Cython.Shadow, which
behaves the same for these names."""

from __future__ import annotations

from typing import Any

compiled = False

# C type names, only ever passed to cast() here
longlong = int
p_const_uchar = None


def cast(t: Any, value: Any) -> Any:
    """``cython.cast(cython.longlong, x)`` interpreted: truncate like C."""
    return int(value) if t is int else value


def address(value: Any) -> Any:
    return value


def locals(**_types: Any) -> Any:
    """``@cython.locals(name=type)``: C types for the compiled function only."""
    return lambda func: func


def no_gc(cls: Any) -> Any:
    """``@cython.no_gc``: a directive for the compiled class only."""
    return cls


def cclass(cls: Any) -> Any:
    """``@cython.cclass``: a cdef class when compiled (the .pxd says so too)."""
    return cls
