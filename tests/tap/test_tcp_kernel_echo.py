"""A request/response exchange with the Linux kernel over a TAP (issue 12's echo).

A kernel client in the namespace sends one byte and waits for it back, 200
times, to a tcpio socket that answers each at once.  Every request
acknowledges the last answer, so each is in-order data that acks new data:
header prediction takes it in the classifier's one compiled call.  What the
kernel and the wire must see:

- one frame from tcpio per answer: the ACK of the request rides on the
  answer (the application answered before the delayed-ACK timer, and an ACK
  sent with data clears the pending one, Linux's tcp_event_ack_sent); a
  separate pure ACK would be a wasted frame.  The only others allowed are
  delayed ACKs the timer sent (MIB DelayedACKs: an answer later than 40 ms,
  which a loaded machine can make), and one quick ACK at the very start:
  the first request is ACKed at once (quick-ACK mode: the answer is not
  written yet when the receive batch ends), and the answer, within the ATO,
  puts the socket in pingpong mode (Linux's tcp_event_data_sent,
  inet_csk_inc_pingpong_cnt, net.ipv4.tcp_pingpong_thresh 1), which stops
  the quick ACKs though quick-ACK mode's count (up to 16) is not spent;
  counted from the first request on, no warm-up;
- segments counted the same at both ends (TCP_INFO's segs_in on one side
  grows by the other's segs_out);
- no retransmission either side (the loop timer left armed early by the
  driver, Stack._rearm, never fires a timer before its deadline);
- one read(2) per request, the queue seen empty (a read that says EAGAIN)
  about once in four answers: while batches come one frame each the TAP's
  reader reads one and leaves the rest to the loop's poll of the fd, and
  nothing reads the queue again on the answer's send (the stack's softirq
  reads only a device whose read stopped at a real budget).
"""

from __future__ import annotations

import asyncio

import pytest
from netns import kernel_peer

from .test_tcp_kernel_tcp_info import kernel_connects, kernel_info, kernel_recv_some, tcpio_info

pytestmark = pytest.mark.tap

PORT = 7360
ROUNDS = 200


@pytest.mark.parametrize("offloads", [False, True])
async def test_request_response_one_frame_per_answer_like_the_kernel(tap_required, offloads):
    loop = asyncio.get_running_loop()
    async with kernel_peer(ipv6=False, tap_options={"offloads": offloads}) as peer:
        sock, ks = await kernel_connects(peer, PORT)
        try:
            ours0, theirs0 = tcpio_info(sock), kernel_info(ks)
            mib0 = peer.stack.mib()
            emptied0, read0 = peer.tap.rx_emptied, peer.tap.rx_flows_read

            async def server() -> None:
                for _ in range(ROUNDS):
                    data = await asyncio.wait_for(sock.recv(10), 20)
                    await sock.sendall(data)

            async def client() -> None:
                for i in range(ROUNDS):
                    b = bytes([i & 0xFF])
                    await loop.sock_sendall(ks, b)
                    assert await kernel_recv_some(ks, 1) == b

            await asyncio.gather(server(), client())
            mib = peer.stack.mib()
            # TCP segments only (ARP may refresh the neighbour meanwhile)
            tx = mib["OutSegs"] - mib0["OutSegs"]
            delayed = mib.get("DelayedACKs", 0) - mib0.get("DelayedACKs", 0)
            emptied = peer.tap.rx_emptied - emptied0
            nread = peer.tap.rx_flows_read - read0
            await asyncio.sleep(0.3)        # the last answer's ACK (delayed) comes in
            ours, theirs = tcpio_info(sock), kernel_info(ks)
        finally:
            sock.close()
            ks.close()
    quick = tx - ROUNDS - delayed           # pure ACKs sent at once
    # (a timer's poll_rx reads to EAGAIN too: a few, with the delayed ACKs)
    assert ROUNDS <= nread <= ROUNDS + 2 + delayed, nread     # (the kernel's quick ACKs)
    assert emptied <= ROUNDS // 4 + 2 + delayed, (emptied, nread)
    assert quick <= 1, (tx, delayed)
    assert delayed < ROUNDS // 4, delayed
    d_ours = {k: ours[k] - ours0[k] for k in ("segs_in", "segs_out", "total_retrans")}
    d_theirs = {k: theirs[k] - theirs0[k] for k in ("segs_in", "segs_out", "total_retrans")}
    assert d_ours["segs_out"] == ROUNDS + delayed + quick
    assert d_ours["segs_in"] == d_theirs["segs_out"] >= ROUNDS
    assert d_theirs["segs_in"] == d_ours["segs_out"]
    assert d_ours["total_retrans"] == d_theirs["total_retrans"] == 0
