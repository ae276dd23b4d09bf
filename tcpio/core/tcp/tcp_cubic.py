"""CUBIC congestion control (RFC 9438) with HyStart++ (RFC 9406): Linux's "cubic".

The rules (the curve, the Reno-friendly estimate, the reductions, HyStart++
and Linux's HyStart) are one source that runs interpreted or compiled,
``tcpio/_fast/cong_fast.py``: its docstring has the formulas.  ``Cubic``
takes that module's functions as its methods, so the per-ACK calls
(``pkts_acked``, ``cong_avoid``) go straight into compiled code, with no
Python frame (issue 12).  Its per-connection state is ``tp.ca_priv``, a
``CubicState``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ... import _fast
from .tcp_ca import CongestionOps

# mypy reads the one source; at run time _fast.load picks its compiled
# module or the same file run interpreted.
if TYPE_CHECKING:
    from tcpio._fast import cong_fast as _cong_fast
else:
    _cong_fast = _fast.load("cong_fast")

CUBIC_C = _cong_fast.CUBIC_C
BETA_CUBIC = _cong_fast.BETA_CUBIC
ALPHA_CUBIC = _cong_fast.ALPHA_CUBIC
MIN_RTT_THRESH = _cong_fast.MIN_RTT_THRESH
MAX_RTT_THRESH = _cong_fast.MAX_RTT_THRESH
MIN_RTT_DIVISOR = _cong_fast.MIN_RTT_DIVISOR
N_RTT_SAMPLE = _cong_fast.N_RTT_SAMPLE
CSS_GROWTH_DIVISOR = _cong_fast.CSS_GROWTH_DIVISOR
CSS_ROUNDS = _cong_fast.CSS_ROUNDS
HYSTART_ACK_TRAIN = _cong_fast.HYSTART_ACK_TRAIN
HYSTART_DELAY = _cong_fast.HYSTART_DELAY
CubicState = _cong_fast.CubicState
cubic_k = _cong_fast.cubic_k
w_cubic = _cong_fast.w_cubic


class Cubic(CongestionOps):
    name = "cubic"
    fast_convergence = True
    hystart_enabled = True

    # (each takes the module first, as a method takes self)
    init = _cong_fast.init
    ssthresh = _cong_fast.ssthresh
    set_state = _cong_fast.set_state
    undo_cwnd = _cong_fast.undo_cwnd
    cwnd_event = _cong_fast.cwnd_event
    pkts_acked = _cong_fast.pkts_acked
    cong_avoid = _cong_fast.cong_avoid
    _st = _cong_fast.cubic_state
