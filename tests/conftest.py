"""Shared test plumbing: both twins of every _fast module, TAP requirements."""

from __future__ import annotations

import os

import pytest

from tcpio import _fast

REQUIRE_COMPILED = os.environ.get("TCPIO_REQUIRE_COMPILED") == "1"
REQUIRE_TAP = os.environ.get("TCPIO_REQUIRE_TAP") == "1"


def twin_params(name: str) -> list:
    """pytest params for the pure twin and the compiled module of ``name``.

    The compiled one is skipped (with a reason) when it was not built, unless
    TCPIO_REQUIRE_COMPILED=1 (CI), where a missing extension fails the test.
    """
    compiled = _fast.load_compiled(name)
    params = [pytest.param(_fast.load_pure(name), id=f"{name}_py")]
    if compiled is not None:
        params.append(pytest.param(compiled, id=f"{name}_c"))
    elif REQUIRE_COMPILED:
        params.append(pytest.param(None, id=f"{name}_c",
                                   marks=pytest.mark.xfail(strict=True, reason="not built")))
    else:
        params.append(pytest.param(None, id=f"{name}_c",
                                   marks=pytest.mark.skip(reason=f"tcpio._fast.{name} not built")))
    return params


def twin_fixture(name: str, fixture_name: str):
    """A module-scoped fixture named ``fixture_name``: each twin of ``name`` in turn."""

    def fixture(request):
        return request.param

    return pytest.fixture(params=twin_params(name), scope="module", name=fixture_name)(fixture)


def built_twins(name: str) -> list:
    """The twins of ``name`` that can run here: the pure one, and the compiled one if built."""
    compiled = _fast.load_compiled(name)
    return [_fast.load_pure(name)] if compiled is None else [_fast.load_pure(name), compiled]


def twin_pair(name: str) -> tuple:
    """(pure, compiled) for a test comparing the twins; skipped when not built."""
    compiled = _fast.load_compiled(name)
    if compiled is None:
        pytest.skip(f"tcpio._fast.{name} not built")
    return _fast.load_pure(name), compiled


def tap_unavailable_reason() -> str | None:
    """Why TAP tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "TAP tests need root"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    return None


def require_tap() -> None:
    """Skip (or, with TCPIO_REQUIRE_TAP=1, fail) when TAP is unavailable."""
    reason = tap_unavailable_reason()
    if reason is None:
        return
    if REQUIRE_TAP:
        pytest.fail(f"TCPIO_REQUIRE_TAP=1 but {reason}")
    pytest.skip(reason)
