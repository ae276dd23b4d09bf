"""Settings: one field per sysctl the stack reads, and nothing else."""

from __future__ import annotations

import pytest

from tcpio.core.settings import Settings


@pytest.mark.parametrize("name", ["no_such_sysctl", "tcp_retries1", "tcp_delack_max",
                                  "tcp_base_mss", "ipfrag_max_dist"])
def test_an_unknown_or_unused_tunable_is_an_error(name):
    """A misspelt (or removed, never read) tunable fails at construction
    instead of being silently ignored."""
    with pytest.raises(TypeError):
        Settings(**{name: 1})


def test_known_tunables_are_taken():
    st = Settings(tcp_retries2=5, tcp_delack_min=0.01)
    assert (st.tcp_retries2, st.tcp_delack_min) == (5, 0.01)
