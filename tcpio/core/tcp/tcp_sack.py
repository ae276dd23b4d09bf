"""SACK, both ends (RFC 2018, RFC 2883, RFC 6675).

Receiver: the out-of-order queue (sorted, disjoint ``[seq, end, data, fin]``
entries) and the SACK blocks we report, most recent first.
Sender: the scoreboard lives in the TxSeg.sacked bits of the retransmit
queue; ``tcp_sacktag_write_queue`` marks SACKed segments and
``tcp_mark_lost`` applies RFC 6675's IsLost (DupThresh SACKed segments above).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING

from .tcp_recovery import rack_advance, tcp_check_sack_reordering, tcp_highest_sack_seq
from .tcp_states import after, before, seq_diff

if TYPE_CHECKING:
    from .sock import TcpSock

TCPCB_SACKED_ACKED = 1
TCPCB_SACKED_RETRANS = 2
TCPCB_LOST = 4
FLAG_SACKED = 0x20
# The out-of-order queue of a sock that has none: a list is made when a
# segment first arrives out of order (ofo_insert) and dropped again once the
# queue drains (tcp_input.tcp_ofo_queue), so an idle sock holds no list.
NO_OFO: tuple[()] = ()
FLAG_DSACK = 0x40
FLAG_DSACK_TLP = 0x20000    # the D-SACK reports exactly the loss probe
TCP_NUM_SACKS = 4


# --- receiver side ----------------------------------------------------------------
def tcp_dsack_set(sk: TcpSock, seq: int, end: int) -> None:
    """RFC 2883: report ``seq..end`` as received twice in the next ACK's first
    SACK block (Linux's tcp_dsack_set; only with SACK and net.ipv4.tcp_dsack)."""
    if sk.sack_ok and sk.host.settings.tcp_dsack:
        sk.dsack = (seq, end)


def tcp_dsack_extend(sk: TcpSock, seq: int, end: int) -> None:
    """Linux's tcp_dsack_extend: start a D-SACK block, or grow the pending one
    when ``seq..end`` overlaps or touches it (tcp_sack_extend); a range apart
    from it is not reported (one D-SACK block per ACK)."""
    d = sk.dsack
    if d is None:
        tcp_dsack_set(sk, seq, end)
    elif not after(seq, d[1]) and not after(d[0], end):
        sk.dsack = (seq if before(seq, d[0]) else d[0], end if after(end, d[1]) else d[1])


def ofo_insert(sk: TcpSock, seq: int, end: int, data: bytes, fin: int) -> bool:
    """Insert into the ofo queue, trimming overlaps; D-SACK any duplicate part.
    Returns False when the segment brought nothing new."""
    ofo = sk.ofo
    if not ofo:
        ofo = sk.ofo = []       # the sock's first out-of-order segment (was NO_OFO)
    base = sk.rcv_nxt
    s = seq_diff(seq, base)
    e = seq_diff(end, base)
    i = bisect_left(ofo, s, key=lambda x: seq_diff(x[1], base) - 1) if ofo else 0
    # i: first entry whose end > s
    while i < len(ofo) and seq_diff(ofo[i][1], base) <= s:
        i += 1
    if i < len(ofo) and seq_diff(ofo[i][0], base) <= s:
        oe = seq_diff(ofo[i][1], base)
        if oe >= e and not (fin and not ofo[i][3] and oe == e):
            tcp_dsack_set(sk, seq, end)
            sk.host.mib["TCPOFOMerge"] += 1
            return False
        tcp_dsack_set(sk, seq, ofo[i][1])
        data = data[oe - s:]
        s = oe
        seq = ofo[i][1]
        i += 1
    # Linux's merge_right: the entries the segment covers, then the start of
    # one it overlaps, are D-SACKed too (tcp_dsack_extend: joined to the block
    # above when they touch it, else the first one reported).
    j = i
    while j < len(ofo) and seq_diff(ofo[j][1], base) <= e:
        tcp_dsack_extend(sk, ofo[j][0], ofo[j][1])
        sk.ofo_bytes -= len(ofo[j][2])
        j += 1
    if j < len(ofo) and seq_diff(ofo[j][0], base) < e:
        tcp_dsack_extend(sk, ofo[j][0], end)
        keep = seq_diff(ofo[j][0], base) - s
        data = data[:keep]
        end = ofo[j][0]
        fin = 0
    ofo[i:j] = [[seq, end, data, fin]]
    sk.ofo_bytes += len(data)
    return True


def tcp_sack_new_ofo_skb(sk: TcpSock, seq: int, end: int) -> None:
    """RFC 2018 4: the first block reports the segment that just arrived
    (merged with the blocks it touches), then the earlier blocks, at most 4
    (Linux's tcp_sack_new_ofo_skb; a run pushed out is not reported again)."""
    if seq == end:
        return
    new_start, new_end = seq, end
    rest = sk.sack_blocks
    merged = True
    while merged:
        merged = False
        keep = []
        for b in rest:
            if not after(b[0], new_end) and not after(new_start, b[1]):
                if before(b[0], new_start):
                    new_start = b[0]
                if after(b[1], new_end):
                    new_end = b[1]
                merged = True
            else:
                keep.append(b)
        rest = keep
    sk.sack_blocks = [(new_start, new_end), *rest[:TCP_NUM_SACKS - 1]]


def tcp_sack_remove(sk: TcpSock) -> None:
    """Blocks that reached rcv_nxt were pulled in order: stop reporting them."""
    if not sk.ofo:
        sk.sack_blocks = ()
        return
    rcv_nxt = sk.rcv_nxt
    sk.sack_blocks = [b for b in sk.sack_blocks if after(b[0], rcv_nxt)] or ()


# --- sender side ---------------------------------------------------------------------
def tcp_sacktag_write_queue(sk: TcpSock, blocks: tuple, prior_snd_una: int,
                            now: float = -1.0) -> int:
    """Mark the segments the SACK blocks cover.  With ``now`` each newly
    SACKed segment advances RACK (RFC 8985 6.2 step 2), and one never
    retransmitted below the highest SACK of earlier ACKs shows reordering
    (step 3)."""
    flag = 0
    prior_fack = sk.highest_sack if sk.sacked_out else sk.snd_una
    reord = None
    mib = sk.host.mib
    una = sk.snd_una
    rtx = sk.rtx
    cache = sk.sack_cache
    used = []
    for n, (start, end) in enumerate(blocks):
        # RFC 2883: a first block below the ACK, or inside the second block,
        # reports a duplicate (D-SACK): it says nothing about holes.
        if n == 0 and (not after(end, una) or (
                len(blocks) > 1 and not before(start, blocks[1][0])
                and not after(end, blocks[1][1]))):
            mib["TCPDSACKRecv"] += 1
            flag |= FLAG_DSACK
            # (tcp_dsack_seen: one segment's worth ending where the probe did)
            if (sk.tlp_high_seq is not None and end == sk.tlp_high_seq
                    and seq_diff(end, start) <= sk.mss_cache):
                flag |= FLAG_DSACK_TLP
            elif sk.reord_seen:
                # RACK's window may have been too short: widen it
                # (tcp_rack_update_reo_wnd), not for a D-SACKed probe
                sk.rack_dsack_seen = True
            continue
        if not before(start, end) or after(end, sk.snd_nxt) or not after(end, una):
            mib["TCPSACKDiscard"] += 1
            continue
        used.append((start, end))
        for cs, ce in cache:
            # the part reported by the previous ACK is already tagged (Linux's
            # recv_sack_cache): only walk what is new in this block
            if cs == start and not after(ce, end):
                start = ce
                break
        if not before(start, end):
            continue
        rel = seq_diff(start, una)
        i = bisect_left(rtx, rel, key=lambda x: seq_diff(x.seq, una)) if rel > 0 else 0
        while i < len(rtx):
            seg = rtx[i]
            if after(seg.end_seq, end):
                break
            i += 1
            if before(seg.seq, start):
                continue
            s = seg.sacked
            if s & TCPCB_SACKED_ACKED:
                continue
            if s & TCPCB_SACKED_RETRANS:
                sk.retrans_out -= 1
            if s & TCPCB_LOST:
                sk.lost_out -= 1
            if now >= 0:
                rack_advance(sk, seg.retrans, seg.end_seq, seg.tstamp, now)
                if (not seg.retrans and before(seg.seq, prior_fack)
                        and (reord is None or before(seg.seq, reord))):
                    reord = seg.seq
            if not sk.sacked_out or after(seg.end_seq, sk.highest_sack):
                sk.highest_sack = seg.end_seq
            seg.sacked = TCPCB_SACKED_ACKED
            sk.sacked_out += 1
            flag |= FLAG_SACKED
    sk.sack_cache = used or ()      # (an idle sock keeps the shared empty tuple)
    if reord is not None:
        tcp_check_sack_reordering(sk, reord, tcp_highest_sack_seq(sk))
    return flag


def tcp_mark_lost(sk: TcpSock, dupthresh: int) -> None:
    """RFC 6675 IsLost: a segment with at least ``dupthresh`` SACKed segments
    above it is lost.  Walks down from the top; stops at an earlier mark."""
    if not sk.sacked_out:
        return
    count = 0
    lowest = None
    for seg in reversed(sk.rtx):
        s = seg.sacked
        if s & TCPCB_SACKED_ACKED:
            count += 1
            continue
        if count < dupthresh:
            continue
        if s & TCPCB_LOST:
            break
        if s & TCPCB_SACKED_RETRANS:
            continue
        seg.sacked = s | TCPCB_LOST
        sk.lost_out += 1
        lowest = seg.seq
    if lowest is not None:
        hint = sk.retransmit_hint
        if hint is None or before(lowest, hint):
            sk.retransmit_hint = lowest
