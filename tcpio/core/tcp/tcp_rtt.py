"""Retransmission timeout estimator (RFC 6298) with Linux's minimum-RTO floor.

RFC 6298 section 2:
  first sample R:  SRTT = R, RTTVAR = R/2
  later samples:   RTTVAR = (1 - beta) RTTVAR + beta |SRTT - R'|   (beta = 1/4)
                   SRTT   = (1 - alpha) SRTT + alpha R'            (alpha = 1/8)
  RTO = SRTT + max(G, K * RTTVAR), K = 4

Differences, as in Linux (``tcp_rtt_estimator`` / ``__tcp_set_rto``):
  * the floor is not "RTO >= 1 s" (RFC 2.4) but a floor on the variance term:
    Linux keeps ``rttvar >= tcp_rto_min``, so RTO = SRTT + max(K*RTTVAR, rto_min)
    (a 1 ms path gets 201 ms, not 200 ms);
  * RTO is capped at ``rto_max`` (120 s, TCP_RTO_MAX), after backoff too.
Karn's rule (no samples from retransmitted segments) is the caller's job.

The code is ``tcp_fast.RttEstimator`` (one per socket, ``sk.rtt_est``):
compiled, a cdef class of C fields only, which CPython's cycle collector
does not track (issue 11: fewer objects for each full collection to scan
per idle connection).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpio import _fast

if TYPE_CHECKING:
    from tcpio._fast.tcp_fast import RttEstimator
else:
    RttEstimator = _fast.load("tcp_fast").RttEstimator

__all__ = ["RttEstimator"]
