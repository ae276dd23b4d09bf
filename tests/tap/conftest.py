"""Fixtures for tests with the Linux kernel as the peer (see tests/netns.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from conftest import require_tap
from netns import KernelPeer, kernel_peer


@pytest.fixture
def tap_required() -> None:
    """Skip without root and /dev/net/tun (fail under TCPIO_REQUIRE_TAP=1)."""
    require_tap()


@pytest.fixture
async def peer(tap_required: None) -> AsyncIterator[KernelPeer]:
    """A private namespace with the kernel at 10.7.0.1/24 and a started tcpio
    Stack at 10.7.0.2/24 on the TAP between them; all removed afterwards."""
    async with kernel_peer() as p:
        yield p
