"""The per-state fixtures of tests/tcp/states.py are what they say: each
socket is in its RFC 9293 state with the sequence variables the segments in
the fixture's docstring imply; and ICMP errors built by the router helper
reach TCP as Linux's tcp_v4_err expects (RFC 1122 4.2.3.9, RFC 5927).
"""

from __future__ import annotations

import errno

import pytest

from tcpio.core.host import Host
from tcpio.core.tcp.tcp_states import (
    TCP_CLOSE,
    TCP_CLOSE_WAIT,
    TCP_CLOSING,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT1,
    TCP_FIN_WAIT2,
    TCP_LAST_ACK,
    TCP_SYN_RECV,
    TCP_SYN_SENT,
    TCP_TIME_WAIT,
)

from . import states
from .helpers import LOCAL, PEER_ISS, REMOTE, RPORT, SYN

MASK = 0xFFFFFFFF
P = PEER_ISS

# state -> (its constant, SND.UNA - ISS, SND.NXT - ISS, RCV.NXT - IRS), from
# the segments in each fixture's docstring (None: RCV.NXT not yet defined).
# ISS is our SYN's sequence number as sent, IRS the peer's (PEER_ISS).
EXPECTED = {
    "SYN-SENT": (TCP_SYN_SENT, 0, 1, None),
    "SYN-RECEIVED": (TCP_SYN_RECV, 0, 1, 1),
    "ESTABLISHED": (TCP_ESTABLISHED, 1, 1, 1),
    "FIN-WAIT-1": (TCP_FIN_WAIT1, 1, 2, 1),
    "FIN-WAIT-2": (TCP_FIN_WAIT2, 2, 2, 1),
    "CLOSE-WAIT": (TCP_CLOSE_WAIT, 1, 1, 2),
    "CLOSING": (TCP_CLOSING, 1, 2, 2),
    "LAST-ACK": (TCP_LAST_ACK, 1, 2, 2),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_fixture_is_in_its_state_with_its_sequence_variables(name):
    conn = states.STATES[name]()
    sk = conn.sk
    state, una, nxt, rcv = EXPECTED[name]
    iss = conn.iss
    assert sk.state == state
    assert (sk.snd_una, sk.snd_nxt) == ((iss + una) & MASK, (iss + nxt) & MASK)
    # The peer's bookkeeping agrees: its next ACK covers our SYN (as its
    # SYN-ACK would) but not our FIN, and it will send RCV.NXT next.
    assert conn.rcv == (sk.snd_nxt if state in (TCP_SYN_SENT, TCP_SYN_RECV) else sk.snd_una)
    if rcv is not None:
        assert sk.rcv_nxt == (P + rcv) & MASK
        assert conn.snd == sk.rcv_nxt
        # The peer's window, unscaled (no options); our own window is open.
        assert sk.snd_wnd == 65535 and sk.rcv_wnd > 0
        # No options from the peer: TCP_MSS_DEFAULT, no timestamps.
        assert (sk.mss_cache, sk.tstamp_ok, sk.wscale_ok) == (536, False, False)
    assert conn.recv() == []


def test_time_wait_fixture_holds_the_connection_in_a_time_wait_sock():
    conn = states.time_wait()
    sk, tw = conn.sk, conn.tw
    assert sk.state == TCP_CLOSE
    assert (tw.state, tw.substate) == (TCP_TIME_WAIT, TCP_TIME_WAIT)
    assert (tw.snd_nxt, tw.rcv_nxt) == ((conn.iss + 2) & MASK, (P + 2) & MASK)
    assert (tw.snd_nxt, tw.rcv_nxt) == (conn.rcv, conn.snd)
    assert conn.recv() == []


def test_active_established_fixture_matches_the_passive_one():
    conn = states.established(active=True)
    sk = conn.sk
    assert sk.state == TCP_ESTABLISHED
    assert (sk.snd_una, sk.snd_nxt, sk.rcv_nxt) == ((conn.syn.seq + 1) & MASK,) * 2 + (P + 1,)
    assert (conn.rcv, conn.snd) == (sk.snd_nxt, sk.rcv_nxt)


def test_every_rfc9293_synchronizing_and_closing_state_has_a_fixture():
    assert list(states.STATES) == [*EXPECTED, "TIME-WAIT"]


# --- ICMP errors from the router helper -------------------------------------------------------

def test_port_unreachable_quoting_our_syn_fails_connect_with_econnrefused():
    """tcp_v4_err in SYN-SENT: an ICMP error is a hard error; port
    unreachable is ECONNREFUSED (icmp_err_convert), and connect reports it."""
    conn = states.syn_sent()
    states.deliver_icmp(conn.host, states.port_unreachable(conn.syn))
    assert conn.sk.state == TCP_CLOSE
    with pytest.raises(OSError) as ei:
        conn.sk.connect(REMOTE, RPORT)
    assert ei.value.errno == errno.ECONNREFUSED


def test_the_router_datagram_is_one_a_real_host_accepts():
    """The same helper's datagram, given to a real Host on an IP link, goes
    through ip_rcv and icmp_rcv to the same result."""
    h = Host("h", seed=1)
    h.add_interface("tun0", link="ip")
    h.add_address(1, LOCAL, 24)
    h.take_output()
    sk = h.tcp.socket()
    with pytest.raises(BlockingIOError):
        sk.connect(REMOTE, RPORT)
    [(_, syn_ip)] = h.take_output()
    syn_tcp = syn_ip[(syn_ip[0] & 0x0F) * 4:]
    assert syn_tcp[13] == SYN
    h.receive(1, states.port_unreachable(syn_tcp), 0.0)
    assert sk.state == TCP_CLOSE and sk.sk_err == errno.ECONNREFUSED
    assert h.mib["IcmpInDestUnreachs"] == 1 and h.mib["IcmpInErrors"] == 0


def test_time_exceeded_on_an_established_connection_is_a_soft_error():
    """RFC 1122 4.2.3.9 / tcp_v4_err: for a synchronized connection the error
    is only remembered (sk_err_soft), the connection carries on."""
    conn = states.established()
    conn.sk.sendmsg(b"x" * 100)
    [seg] = conn.recv()
    states.deliver_icmp(conn.host, states.time_exceeded(seg))
    assert conn.sk.state == TCP_ESTABLISHED
    assert (conn.sk.sk_err, conn.sk.sk_err_soft) == (0, errno.EHOSTUNREACH)


def test_frag_needed_quoting_unacknowledged_data_lowers_the_mss():
    """tcp_v4_mtu_reduced: a path MTU of 560 leaves 520 bytes of payload per
    segment (no TCP options on this connection), below the peer's 536."""
    conn = states.established()
    conn.sk.sendmsg(b"x" * 100)
    [seg] = conn.recv()
    states.deliver_icmp(conn.host, states.frag_needed(seg, 560))
    assert conn.sk.mss_cache == 560 - 40


def test_an_error_quoting_a_sequence_outside_the_window_is_ignored():
    """tcp_v4_err: the quoted sequence must lie in [SND.UNA, SND.NXT], else
    OutOfWindowIcmps and nothing changes (RFC 5927 section 4.1)."""
    conn = states.syn_sent()
    stale = conn.syn
    stale.seq = (stale.seq + 5) & MASK
    states.deliver_icmp(conn.host, states.port_unreachable(stale))
    assert conn.sk.state == TCP_SYN_SENT
    assert conn.host.mib["OutOfWindowIcmps"] == 1


def test_host_unreachable_in_syn_received_is_a_hard_error():
    """tcp_v4_err: in SYN-SENT and SYN-RECEIVED every ICMP error that
    reaches TCP ends the attempt (sk_err = EHOSTUNREACH, tcp_done)."""
    conn = states.syn_received()
    states.deliver_icmp(conn.host, states.dest_unreachable(conn.synack, 1))
    assert conn.sk.state == TCP_CLOSE and conn.sk.sk_err == errno.EHOSTUNREACH
