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
"""

from __future__ import annotations

ALPHA = 1 / 8
BETA = 1 / 4
K = 4


class RttEstimator:
    __slots__ = (
        "_base_rto",
        "_rttvar",
        "_srtt",
        "backoff_count",
        "granularity",
        "has_sample",
        "rto_initial",
        "rto_max",
        "rto_min",
    )

    def __init__(self, rto_initial: float = 1.0, rto_min: float = 0.2,
                 rto_max: float = 120.0, granularity: float = 0.0) -> None:
        self.rto_initial = rto_initial
        self.rto_min = rto_min
        self.rto_max = rto_max
        self.granularity = granularity  # G: the clock's tick (0 for a float clock)
        self._srtt = 0.0
        self._rttvar = 0.0
        self._base_rto = min(rto_initial, rto_max)
        self.backoff_count = 0           # icsk_backoff
        self.has_sample = False

    def sample(self, rtt: float) -> None:
        """Feed one RTT measurement (seconds) from a segment sent once."""
        if rtt < 0:
            return
        if not self.has_sample:
            self._srtt = rtt
            self._rttvar = rtt / 2
            self.has_sample = True
        else:
            # RTTVAR first, with the old SRTT (RFC 6298 2.3 order).
            err = self._srtt - rtt
            self._rttvar = (1 - BETA) * self._rttvar + BETA * (err if err >= 0 else -err)
            self._srtt = (1 - ALPHA) * self._srtt + ALPHA * rtt
        # max(G, K * RTTVAR, rto_min) and the rto_max cap, without the
        # builtins' calls (once per ACK that moves snd_una)
        var = K * self._rttvar
        if var < self.granularity:
            var = self.granularity
        if var < self.rto_min:
            var = self.rto_min
        rto = self._srtt + var
        self._base_rto = rto if rto < self.rto_max else self.rto_max

    @property
    def srtt(self) -> float:
        """Smoothed RTT in seconds (0.0 before the first sample)."""
        return self._srtt

    @property
    def rttvar(self) -> float:
        return self._rttvar

    @property
    def base_rto(self) -> float:
        """The RTO without backoff."""
        return self._base_rto

    @property
    def rto(self) -> float:
        """The current RTO including exponential backoff, capped at rto_max."""
        if not self.backoff_count:
            return self._base_rto       # (never above rto_max: sample and reset cap it)
        return min(self._base_rto * (1 << min(self.backoff_count, 40)), self.rto_max)

    def backoff(self) -> float:
        """RFC 6298 5.5: double the RTO (after a timeout); returns the new RTO.

        ``backoff_count`` counts every call (like ``icsk_backoff``); the RTO
        itself stops growing at rto_max.
        """
        self.backoff_count += 1
        return self.rto

    def reset_backoff(self) -> None:
        """New data was acknowledged: drop the backoff (Linux clears icsk_backoff)."""
        self.backoff_count = 0

    def reset(self, rto: float | None = None) -> None:
        """Forget the samples (e.g. RFC 6298 5.7: back to 3 s after a lost SYN)."""
        self._srtt = self._rttvar = 0.0
        self.has_sample = False
        self.backoff_count = 0
        self._base_rto = min(self.rto_initial if rto is None else rto, self.rto_max)
