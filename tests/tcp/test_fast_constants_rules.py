"""The ACK path's constants that tcp_fast keeps its own copy of (a compiled
module reads them as C constants, not through an import) have the values the
layered TCP defines: one source for each value, the copy checked here."""

from __future__ import annotations

import pytest

from tcpio._fast import load_pure
from tcpio.core.tcp import tcp_input, tcp_output, tcp_sack, tcp_states

fast_py = load_pure("tcp_fast")


@pytest.mark.parametrize("copy, source", [
    ("_TCP_CA_CWR", tcp_states.TCP_CA_CWR),
    ("_FLAG_WIN_UPDATE", tcp_input.FLAG_WIN_UPDATE),
    ("_ICSK_TIME_RETRANS", tcp_output.ICSK_TIME_RETRANS),
    ("_ICSK_TIME_PROBE0", tcp_output.ICSK_TIME_PROBE0),
    ("_ICSK_TIME_LOSS_PROBE", tcp_output.ICSK_TIME_LOSS_PROBE),
    ("_TCP_TIMEOUT_INIT", tcp_output.TCP_TIMEOUT_INIT),
    ("_TCP_TIMEOUT_MIN", tcp_output.TCP_TIMEOUT_MIN),
    ("_TCPCB_SACKED_ACKED", tcp_sack.TCPCB_SACKED_ACKED),
    ("_TCPCB_SACKED_RETRANS", tcp_sack.TCPCB_SACKED_RETRANS),
    ("_TCPCB_LOST", tcp_sack.TCPCB_LOST),
])
def test_tcp_fast_copy_equals_the_layered_value(copy: str, source: object) -> None:
    assert getattr(fast_py, copy) == source
