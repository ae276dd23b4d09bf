"""MIB counters like the kernel's /proc/net/snmp and netstat (netstat -s).

The counters live in one dict so the hot path does ``mib["InReceives"] += 1``
(one dict operation) and users read a dict.  Names are the kernel's bare
names (InReceives, InHdrErrors, ListenOverflows, ...); where two kernel groups
share a name, the group is the prefix: "UdpInErrors", "IcmpInErrors",
"UdpNoPorts", "TcpInErrors".
"""

from __future__ import annotations

from collections import defaultdict


class Mib(defaultdict):
    """A defaultdict(int) of counters; ``snapshot()`` gives a plain dict."""

    def __init__(self) -> None:
        super().__init__(int)

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self.items()))

    def delta(self, before: dict[str, int]) -> dict[str, int]:
        """Counters that moved since ``before`` (a snapshot)."""
        return {k: v - before.get(k, 0) for k, v in sorted(self.items())
                if v != before.get(k, 0)}


# One line per counter: where Linux has it, the group and name ``nstat`` and
# ``netstat -s`` show ("TcpExt: DelayedACKLost"), then what it counts; a
# counter only tcpio has says "tcpio:".  tests/test_mib_descriptions.py checks
# that every counter the code increments is here.
DESCRIPTIONS: dict[str, str] = {
    # --- IP (Ip: in /proc/net/snmp, RFC 4293 ipSystemStats) ---
    "InReceives": "Ip: InReceives - IP datagrams received from the interfaces, errors included",
    "InHdrErrors": "Ip: InHdrErrors - datagrams dropped for a bad IP header (version, IHL, "
                   "checksum, TTL, options)",
    "InAddrErrors": "Ip: InAddrErrors - datagrams not for this host (unless forwarding: "
                    "Settings.ip_forward, or a transparent forwarder on the interface)",
    "ForwDatagrams": "Ip: ForwDatagrams - datagrams forwarded (router mode, "
                     "Settings.ip_forward)",
    "InNoRoutes": "IpExt: InNoRoutes - datagrams to forward with no route (ICMP "
                  "destination unreachable sent)",
    "InUnknownProtos": "Ip: InUnknownProtos - datagrams for this host with a protocol "
                       "nobody registered",
    "InTruncatedPkts": "Ip: InTruncatedPkts - datagrams shorter than their IP total length",
    "InCsumErrors": "Ip/Tcp: InCsumErrors - segments (TCP) or datagrams dropped for a bad "
                    "checksum",
    "InDelivers": "Ip: InDelivers - datagrams handed to a transport protocol (TCP, UDP, ICMP)",
    "InBcastPkts": "IpExt: InBcastPkts - broadcast datagrams received",
    "OutRequests": "Ip: OutRequests - datagrams the transports asked IP to send",
    "OutDiscards": "Ip: OutDiscards - outgoing datagrams dropped for lack of room "
                   "(a full interface queue)",
    "OutNoRoutes": "Ip: OutNoRoutes - outgoing datagrams with no route to their destination",
    "ReasmReqds": "Ip: ReasmReqds - fragments received that needed reassembly",
    "ReasmOKs": "Ip: ReasmOKs - datagrams reassembled",
    "ReasmFails": "Ip: ReasmFails - reassembly failures (timeouts, memory, bad fragments)",
    "ReasmTimeout": "Ip: ReasmTimeout - fragment queues dropped when the reassembly timer "
                    "expired (ipfrag_time)",
    "ReasmOverlaps": "IpExt: ReasmOverlaps - fragments that overlapped another (RFC 5722: the "
                     "whole datagram is dropped)",
    "ReasmDuplicates": "tcpio: fragments received twice (same offset and data), ignored",
    "ReasmEvictions": "tcpio: fragment queues evicted to stay under the reassembly memory "
                      "limit (ipfrag_high_thresh)",
    "FragOKs": "Ip: FragOKs - datagrams fragmented on output",
    "FragFails": "Ip: FragFails - datagrams that needed fragmenting but had DF set "
                 "(EMSGSIZE)",
    "FragCreates": "Ip: FragCreates - fragments made by output fragmentation",
    "InMartianSrc": "IpExt/rt_cache: in_martian_src - datagrams from an impossible source "
                    "(127/8, multicast, broadcast) on a device, dropped",
    "InMartianDst": "IpExt/rt_cache: in_martian_dst - datagrams to 127/8 arriving on a "
                    "device, dropped",
    "InNoInterface": "tcpio: frames received on an interface that is unknown or down",
    "IpLocalErrors": "tcpio: ICMP errors about our own datagrams with a code that maps to "
                     "no errno",
    "LoopbackDrops": "tcpio: loopback datagrams dropped (the loopback queue was full)",
    "CoreExceptions": "tcpio: exceptions inside the core while processing a frame or timer "
                      "(a bug: counted, logged, the frame dropped)",
    # --- Ethernet and ARP (tcpio: Linux counts these per device or not at all) ---
    "EthOutFrames": "tcpio: Ethernet frames sent",
    "EthInTruncated": "tcpio: frames shorter than an Ethernet header",
    "EthInDrops": "tcpio: Ethernet frames dropped before any protocol saw them",
    "EthInNotForUs": "tcpio: unicast frames for another MAC address (PACKET_OTHERHOST)",
    "EthInUnknownProtos": "tcpio: frames of an EtherType tcpio does not handle (VLANs, "
                          "...)",
    "ArpInPackets": "tcpio: ARP packets received",
    "ArpInRequests": "tcpio: ARP requests received",
    "ArpInReplies": "tcpio: ARP replies received",
    "ArpOutRequests": "tcpio: ARP requests sent (resolving a neighbour, or probing it again)",
    "ArpOutReplies": "tcpio: ARP replies sent (for our addresses)",
    "ArpInErrors": "tcpio: malformed ARP packets (bad opcode, hardware or protocol type, "
                   "sender MAC)",
    "ArpInDrops": "tcpio: ARP packets dropped (our own, looped back)",
    "ArpInMartians": "tcpio: ARP claiming an address that cannot be a neighbour's (ours, "
                     "broadcast, 127/8): nothing learned",
    "ArpInIgnored": "tcpio: ARP replies nobody asked for, or other hosts' conversations "
                    "(arp_accept=0)",
    "ArpResolveFailed": "tcpio: neighbour resolutions that failed (queued packets get "
                        "EHOSTUNREACH), like the neigh table's res_failed",
    "ArpUnresolvedDiscards": "tcpio: packets dropped while their neighbour was unresolved "
                             "(the neighbour's queue full), like unresolved_discards",
    "ArpCacheEvictions": "tcpio: neighbour entries evicted for room (gc_thresh), like "
                         "forced_gc_runs",
    # --- ICMP (Icmp: in /proc/net/snmp) ---
    "IcmpInMsgs": "Icmp: InMsgs - ICMP messages received",
    "IcmpInErrors": "Icmp: InErrors - ICMP messages received that were bad or errors",
    "IcmpInCsumErrors": "Icmp: InCsumErrors - ICMP messages with a bad checksum",
    "IcmpInEchos": "Icmp: InEchos - echo requests received",
    "IcmpInEchoReps": "Icmp: InEchoReps - echo replies received",
    "IcmpInDestUnreachs": "Icmp: InDestUnreachs - destination unreachable messages received",
    "IcmpInSrcQuenchs": "Icmp: InSrcQuenchs - source quench messages received (ignored, "
                        "RFC 6633)",
    "IcmpInTimeExcds": "Icmp: InTimeExcds - time exceeded messages received",
    "IcmpInParmProbs": "Icmp: InParmProbs - parameter problem messages received",
    "IcmpInErrorsUnmatched": "tcpio: ICMP errors quoting a datagram no socket owns",
    "IcmpOutMsgs": "Icmp: OutMsgs - ICMP messages sent",
    "IcmpOutErrors": "Icmp: OutErrors - ICMP messages not sent because of an error",
    "IcmpOutEchos": "Icmp: OutEchos - echo requests sent",
    "IcmpOutEchoReps": "Icmp: OutEchoReps - echo replies sent",
    "IcmpOutDestUnreachs": "Icmp: OutDestUnreachs - destination unreachable messages sent",
    "IcmpOutTimeExcds": "Icmp: OutTimeExcds - time exceeded messages sent",
    "IcmpOutParmProbs": "Icmp: OutParmProbs - parameter problem messages sent",
    "IcmpOutOther": "tcpio: other ICMP error types sent",
    "IcmpOutRateLimitGlobal": "Icmp: OutRateLimitGlobal - ICMP messages not sent: the "
                              "host-wide rate limit (icmp_msgs_per_sec)",
    "IcmpOutRateLimitHost": "Icmp: OutRateLimitHost - ICMP messages not sent: the "
                            "per-destination rate limit (icmp_ratelimit)",
    # --- IPv6 (Ip6:/Icmp6: in /proc/net/snmp6) ---
    "Ip6InReceives": "Ip6: InReceives - IPv6 datagrams received from the interfaces, errors included",
    "Ip6InHdrErrors": "Ip6: InHdrErrors - IPv6 datagrams dropped for a bad header or extension header (version, length, multicast source, options, routing, fragment rules, chain too long)",
    "Ip6InAddrErrors": "Ip6: InAddrErrors - IPv6 datagrams not for one of our (preferred) addresses (and not forwarded)",
    "Ip6InUnknownProtos": "Ip6: InUnknownProtos - IPv6 datagrams for a next header nobody registered (parameter problem sent)",
    "Ip6InTruncatedPkts": "Ip6: InTruncatedPkts - IPv6 datagrams shorter than their payload length",
    "Ip6InDiscards": "Ip6: InDiscards - IPv6 datagrams dropped: to a multicast group the interface has not joined",
    "Ip6InDelivers": "Ip6: InDelivers - IPv6 datagrams handed to an upper protocol (ICMPv6, ...)",
    "Ip6InMcastPkts": "Ip6: InMcastPkts - IPv6 multicast datagrams received",
    "Ip6OutRequests": "Ip6: OutRequests - IPv6 datagrams the upper layers (and ND) asked IPv6 to send",
    "Ip6OutDiscards": "Ip6: OutDiscards - outgoing IPv6 datagrams dropped (over 65535 bytes, a full interface queue)",
    "Ip6OutNoRoutes": "Ip6: OutNoRoutes - outgoing IPv6 datagrams with no route",
    "Ip6OutMcastPkts": "Ip6: OutMcastPkts - IPv6 multicast datagrams sent",
    "Ip6ReasmReqds": "Ip6: ReasmReqds - IPv6 fragments received (atomic fragments too)",
    "Ip6ReasmOKs": "Ip6: ReasmOKs - IPv6 datagrams reassembled (or atomic fragments taken)",
    "Ip6ReasmFails": "Ip6: ReasmFails - IPv6 reassembly failures (timeouts, memory, bad or overlapping fragments)",
    "Ip6ReasmTimeout": "Ip6: ReasmTimeout - IPv6 fragment queues dropped when ip6frag_time expired",
    "Ip6ReasmOverlaps": "tcpio: IPv6 fragments overlapping another (RFC 5722: the datagram is dropped)",
    "Ip6ReasmDuplicates": "tcpio: IPv6 fragments lying inside one already held, ignored",
    "Ip6ReasmEvictions": "tcpio: IPv6 fragment queues evicted to stay under ip6frag_high_thresh",
    "Ip6FragOKs": "Ip6: FragOKs - IPv6 datagrams fragmented by us as their source",
    "Ip6FragFails": "Ip6: FragFails - IPv6 datagrams over the path MTU with IPV6_DONTFRAG (EMSGSIZE), or too big to forward",
    "Ip6OutForwDatagrams": "Ip6: OutForwDatagrams - IPv6 datagrams forwarded (Settings.ipv6_forward)",
    "Ip6InNoRoutes": "Ip6: InNoRoutes - IPv6 datagrams to forward without a route (ICMPv6 no route sent)",
    "Ip6InTooBigErrors": "Ip6: InTooBigErrors - IPv6 datagrams to forward over the outgoing MTU (Packet Too Big sent)",
    "Ip6FragCreates": "Ip6: FragCreates - IPv6 fragments made",
    "Ip6DadFailures": "tcpio: IPv6 addresses found duplicate by DAD (RFC 4862), never used",
    "Ip6LocalErrors": "tcpio: ICMPv6 errors about our own IPv6 datagrams raised locally (ND failed)",
    "Ip6PmtuUpdates": "tcpio: IPv6 path MTUs lowered by Packet Too Big (RFC 8201)",
    "Icmp6InMsgs": "Icmp6: InMsgs - ICMPv6 messages received",
    "Icmp6InErrors": "Icmp6: InErrors - ICMPv6 messages received that were bad (length, checksum, quote)",
    "Icmp6InCsumErrors": "Icmp6: InCsumErrors - ICMPv6 messages with a bad checksum",
    "Icmp6InErrorsUnmatched": "tcpio: ICMPv6 errors quoting a datagram no protocol owns",
    "Icmp6InDestUnreachs": "Icmp6: InDestUnreachs - destination unreachable received",
    "Icmp6InPktTooBigs": "Icmp6: InPktTooBigs - packet too big received",
    "Icmp6InTimeExcds": "Icmp6: InTimeExcds - time exceeded received",
    "Icmp6InParmProblems": "Icmp6: InParmProblems - parameter problems received",
    "Icmp6InEchos": "Icmp6: InEchos - echo requests received",
    "Icmp6InEchoReplies": "Icmp6: InEchoReplies - echo replies received",
    "Icmp6InRouterSolicits": "Icmp6: InRouterSolicits - router solicitations received (ignored)",
    "Icmp6InRouterAdvertisements": "Icmp6: InRouterAdvertisements - router advertisements received (ignored: static configuration)",
    "Icmp6InNeighborSolicits": "Icmp6: InNeighborSolicits - neighbour solicitations received",
    "Icmp6InNeighborAdvertisements": "Icmp6: InNeighborAdvertisements - neighbour advertisements received",
    "Icmp6InRedirects": "Icmp6: InRedirects - redirects received (ignored)",
    "Icmp6InGroupMembQueries": "Icmp6: InGroupMembQueries - MLD queries received (ignored)",
    "Icmp6InGroupMembResponses": "Icmp6: InGroupMembResponses - MLDv1 reports received (ignored)",
    "Icmp6InMLDv2Reports": "Icmp6: InMLDv2Reports - MLDv2 reports received (ignored)",
    "Icmp6OutMsgs": "Icmp6: OutMsgs - ICMPv6 messages sent",
    "Icmp6OutErrors": "Icmp6: OutErrors - ICMPv6 messages not sent because of an error (no route)",
    "Icmp6OutDestUnreachs": "Icmp6: OutDestUnreachs - destination unreachable sent",
    "Icmp6OutPktTooBigs": "Icmp6: OutPktTooBigs - packet too big sent",
    "Icmp6OutTimeExcds": "Icmp6: OutTimeExcds - time exceeded sent (reassembly timeouts)",
    "Icmp6OutParmProblems": "Icmp6: OutParmProblems - parameter problems sent",
    "Icmp6OutEchos": "Icmp6: OutEchos - echo requests sent",
    "Icmp6OutEchoReplies": "Icmp6: OutEchoReplies - echo replies sent",
    "Icmp6OutRouterSolicits": "Icmp6: OutRouterSolicits - router solicitations sent (accept_ra)",
    "Icmp6OutNeighborSolicits": "Icmp6: OutNeighborSolicits - neighbour solicitations sent (resolution, probes, DAD)",
    "Icmp6OutNeighborAdvertisements": "Icmp6: OutNeighborAdvertisements - neighbour advertisements sent",
    "Icmp6OutRateLimitHost": "Icmp6: OutRateLimitHost - ICMPv6 errors not sent: the per-destination limit (icmpv6_ratelimit)",
    "NdiscInErrors": "tcpio: ND messages dropped as invalid (hop limit not 255, code, length, options, RFC 4861 7.1)",
    "NdiscInIgnored": "tcpio: valid ND messages with nothing to do (a target not ours, an NA for no entry)",
    "NdiscUnresolvedDiscards": "tcpio: IPv6 packets dropped while their neighbour was unresolved (like unresolved_discards)",
    "NdiscResolveFailed": "tcpio: IPv6 neighbour resolutions that failed (senders get address unreachable)",
    "NdiscCacheEvictions": "tcpio: ND neighbour entries evicted for room (gc_thresh)",
    # --- UDP (Udp: in /proc/net/snmp) ---
    "UdpInDatagrams": "Udp: InDatagrams - datagrams delivered to sockets",
    "UdpNoPorts": "Udp: NoPorts - datagrams to a port nobody listens on (ICMP port "
                  "unreachable sent)",
    "UdpInErrors": "Udp: InErrors - datagrams received but not delivered (bad length, "
                   "checksum, full buffer)",
    "UdpInErrorsNoSock": "tcpio: of UdpInErrors, those whose socket closed before delivery",
    "UdpOutDatagrams": "Udp: OutDatagrams - datagrams sent",
    "UdpOutErrors": "Udp: OutErrors - datagrams not sent (no route, no buffer room; Linux "
                    "counts the latter in SndbufErrors too)",
    "UdpSndbufErrors": "Udp: SndbufErrors - datagrams not sent: the interface's transmit "
                       "queue was full (ENOBUFS with IP_RECVERR, else silently; also in "
                       "OutDiscards)",
    "UdpRcvbufErrors": "Udp: RcvbufErrors - datagrams dropped: the receive buffer was full",
    "UdpInCsumErrors": "Udp: InCsumErrors - datagrams with a bad checksum",
    "UdpIgnoredMulti": "Udp: IgnoredMulti - broadcast datagrams no socket wanted (no port "
                       "unreachable for those)",
    # --- UDP over IPv6 (Udp6: in /proc/net/snmp6) ---
    "Udp6InDatagrams": "Udp6: InDatagrams - IPv6 datagrams delivered to sockets",
    "Udp6NoPorts": "Udp6: NoPorts - IPv6 datagrams to a port nobody listens on (ICMPv6 port unreachable sent)",
    "Udp6InErrors": "Udp6: InErrors - IPv6 datagrams received but not delivered (bad length, checksum, full buffer)",
    "Udp6InErrorsNoSock": "tcpio: ICMPv6 errors quoting a UDP datagram of no socket",
    "Udp6OutDatagrams": "Udp6: OutDatagrams - IPv6 datagrams sent",
    "Udp6OutErrors": "Udp6: OutErrors - IPv6 datagrams not sent (no route, too big with DONTFRAG)",
    "Udp6SndbufErrors": "Udp6: SndbufErrors - IPv6 datagrams not sent: the interface's transmit queue was full (ENOBUFS with IPV6_RECVERR, else silently; also in Ip6OutDiscards)",
    "Udp6RcvbufErrors": "Udp6: RcvbufErrors - IPv6 datagrams dropped: the receive buffer was full",
    "Udp6InCsumErrors": "Udp6: InCsumErrors - IPv6 datagrams with a bad checksum, or the checksum 0 (invalid over IPv6, RFC 8200 8.1)",
    # --- TCP (Tcp: in /proc/net/snmp, RFC 4022) ---
    "ActiveOpens": "Tcp: ActiveOpens - connections opened by connect() (CLOSED -> SYN-SENT)",
    "PassiveOpens": "Tcp: PassiveOpens - connections opened by a listener (LISTEN -> "
                    "SYN-RECV)",
    "AttemptFails": "Tcp: AttemptFails - openings that failed (SYN-SENT/SYN-RECV -> CLOSED, "
                    "or SYN-RECV -> LISTEN)",
    "EstabResets": "Tcp: EstabResets - connections reset from ESTABLISHED or CLOSE-WAIT",
    "CurrEstab": "Tcp: CurrEstab - connections now in ESTABLISHED or CLOSE-WAIT (a gauge)",
    "InSegs": "Tcp: InSegs - segments received, errors included",
    "OutSegs": "Tcp: OutSegs - segments sent (retransmissions included, as Linux counts)",
    "RetransSegs": "Tcp: RetransSegs - segments retransmitted",
    "InErrs": "Tcp: InErrs - segments received in error (bad header, checksum)",
    "OutRsts": "Tcp: OutRsts - segments sent with RST",
    "TcpInBroadcastDrops": "tcpio: segments to or from a broadcast address, dropped (RFC 1122 "
                           "4.2.3.10)",
    # --- TCP extended (TcpExt: in /proc/net/netstat, LINUX_MIB_*) ---
    "DelayedACKs": "TcpExt: DelayedACKs - delayed ACKs sent when the delayed-ACK timer "
                   "fired",
    "DelayedACKLost": "TcpExt: DelayedACKLost - data received again that we had already "
                      "ACKed (our ACK was lost or late): answered with a quick ACK and D-SACK",
    "ListenOverflows": "TcpExt: ListenOverflows - connections dropped: the accept queue was "
                       "full (listen backlog)",
    "ListenDrops": "TcpExt: ListenDrops - SYNs or completing ACKs a listener dropped, "
                   "overflows included",
    "PAWSActiveRejected": "TcpExt: PAWSActive - SYN-ACKs rejected by PAWS (an old "
                          "timestamp, RFC 7323)",
    "PAWSEstabRejected": "TcpExt: PAWSEstab - segments of a connection rejected by PAWS "
                         "(timestamp older than the last one seen)",
    "PAWSOldAck": "TcpExt: PAWSOldAck - old pure ACKs (before rcv_nxt) that failed PAWS, "
                  "dropped without a duplicate ACK",
    "PAWSTimewait": "TcpExt: PAWSTimewait - segments to a TIME-WAIT socket rejected by PAWS",
    "TWRecycled": "TcpExt: TWRecycled - TIME-WAIT sockets reused for a new outgoing "
                  "connection (tcp_tw_reuse)",
    "TCPTimeWaitOverflow": "TcpExt: TCPTimeWaitOverflow - connections closed without "
                           "TIME-WAIT: tcp_max_tw_buckets reached",
    "SyncookiesSent": "TcpExt: SyncookiesSent - SYN cookies sent (the SYN queue was full)",
    "SyncookiesRecv": "TcpExt: SyncookiesRecv - valid SYN cookies received (connections "
                      "made from them)",
    "SyncookiesFailed": "TcpExt: SyncookiesFailed - ACKs whose SYN cookie did not check",
    "TCPReqQFullDoCookies": "TcpExt: TCPReqQFullDoCookies - SYNs answered with a cookie "
                            "because the SYN queue was full",
    "RawRcvbufErrors": "tcpio: datagrams a raw socket's full receive queue dropped",
    # the transparent forwarders (issue 18; docs/internals.md "Transparent forwarding")
    "TcpFwdRequests": "tcpio: SYNs to non-local addresses handed to a TCP forwarder's "
                      "application",
    "TcpFwdAccepted": "tcpio: forwarder requests the application accepted",
    "TcpFwdRefused": "tcpio: forwarder requests the application refused (RST sent)",
    "TcpFwdUnreachable": "tcpio: forwarder requests answered with ICMP destination unreachable",
    "TcpFwdDropped": "tcpio: forwarder requests the application dropped (nothing sent)",
    "TcpFwdPendingDrops": "tcpio: SYNs dropped: max_pending requests were waiting for "
                          "the application",
    "TcpFwdConnLimitDrops": "tcpio: SYNs dropped: the forwarder had max_connections "
                            "connections",
    "TcpFwdTimeouts": "tcpio: forwarder requests not decided within pending_timeout "
                      "(dropped)",
    "UdpFwdSessions": "tcpio: UDP forwarder sessions made (first datagram of a 4-tuple)",
    "UdpFwdSessionDrops": "tcpio: datagrams dropped: the UDP forwarder had max_sessions "
                          "sessions",
    "UdpFwdIdleTimeouts": "tcpio: UDP forwarder sessions ended by their idle timeout",
    "UdpFwdInDatagrams": "tcpio: datagrams queued on a UDP forwarder session",
    "UdpFwdOutDatagrams": "tcpio: datagrams a UDP forwarder session sent to its client",
    "UdpFwdRcvbufErrors": "tcpio: datagrams dropped: a UDP forwarder session's receive "
                          "queue was full",
    "TCPSynBudgetDrop": "tcpio: SYNs for a listener answering with cookies dropped past "
                        "the receive batch's budget (tcp_syn_budget), so a SYN flood "
                        "cannot starve established connections; also in ListenDrops",
    "TCPReqQCookieTakeover": "tcpio: valid SYN-cookie ACKs that found a request sock "
                             "for the same SYN (its retransmission met a SYN queue with "
                             "room) and replaced it; Linux drops such ACKs",
    "TCPReqQFullDrop": "TcpExt: TCPReqQFullDrop - SYNs dropped: the SYN queue was full and "
                       "cookies were off",
    "TCPAbortOnData": "TcpExt: TCPAbortOnData - connections reset because data arrived after "
                      "the application closed",
    "TCPAbortOnClose": "TcpExt: TCPAbortOnClose - connections reset because the application "
                       "closed with unread data",
    "TCPAbortOnMemory": "TcpExt: TCPAbortOnMemory - connections reset for lack of memory "
                        "(too many orphans)",
    "TCPAbortOnTimeout": "TcpExt: TCPAbortOnTimeout - connections given up after too many "
                         "retransmissions or probes (tcp_retries2, syn_retries, "
                         "TCP_USER_TIMEOUT)",
    "TCPAbortOnLinger": "TcpExt: TCPAbortOnLinger - connections reset on close by SO_LINGER "
                        "with a zero timeout",
    "TCPKeepAliveTimeouts": "TcpExt: TCPKeepAliveTimeouts - connections dropped: keepalive "
                            "probes went unanswered",
    "TCPTimeouts": "TcpExt: TCPTimeouts - retransmission timer expiries (RTO) with data "
                   "out",
    "TCPSynRetrans": "TcpExt: TCPSynRetrans - SYN and SYN-ACK retransmissions",
    "TCPFastRetrans": "TcpExt: TCPFastRetrans - fast retransmissions (loss detected by "
                      "duplicate ACKs, SACK or RACK, not the timer)",
    "TCPSackRecovery": "TcpExt: TCPSackRecovery - recoveries entered on a SACK connection "
                       "(fast retransmit)",
    "TCPRenoRecovery": "TcpExt: TCPRenoRecovery - recoveries entered on a connection "
                       "without SACK (three duplicate ACKs)",
    "TCPRetransFail": "TcpExt: TCPRetransFail - retransmissions the interface's transmit "
                      "queue refused (kept, sent again later)",
    "TCPLostRetransmit": "TcpExt: TCPLostRetransmit - retransmissions detected lost in turn "
                         "(RACK)",
    "TCPLossProbes": "TcpExt: TCPLossProbes - tail loss probes sent (RFC 8985 TLP)",
    "TCPLossProbeRecovery": "TcpExt: TCPLossProbeRecovery - losses repaired by a tail loss "
                            "probe",
    "TCPSACKReorder": "TcpExt: TCPSACKReorder - reordering detected from SACK",
    "TCPSACKDiscard": "TcpExt: TCPSACKDiscard - SACK blocks ignored as invalid (outside the "
                      "window)",
    "TCPDSACKRecv": "TcpExt: TCPDSACKRecv - D-SACKs received (the peer got a segment twice)",
    "TCPOFOQueue": "TcpExt: TCPOFOQueue - segments put in the out-of-order queue",
    "TCPOFODrop": "TcpExt: TCPOFODrop - out-of-order segments dropped (no receive buffer "
                  "room)",
    "TCPOFOMerge": "TcpExt: TCPOFOMerge - out-of-order segments that overlapped queued data",
    "TCPZeroWindowDrop": "TcpExt: TCPZeroWindowDrop - in-order data dropped: our receive "
                         "window was zero",
    "TCPChallengeACK": "TcpExt: TCPChallengeACK - challenge ACKs sent (RFC 5961), within "
                       "tcp_challenge_ack_limit",
    "TCPSYNChallenge": "TcpExt: TCPSYNChallenge - challenge ACKs sent for a SYN in a "
                       "synchronized state (RFC 5961 4)",
    "TCPACKSkippedSeq": "TcpExt: TCPACKSkippedSeq - out-of-window ACKs not sent "
                        "(tcp_invalid_ratelimit)",
    "TCPACKSkippedPAWS": "TcpExt: TCPACKSkippedPAWS - duplicate ACKs for PAWS-rejected "
                         "segments not sent (tcp_invalid_ratelimit)",
    "TCPACKSkippedSynRecv": "TcpExt: TCPACKSkippedSynRecv - ACKs (or SYN-ACKs for a "
                            "retransmitted SYN) a request sock did not send "
                            "(tcp_invalid_ratelimit)",
    "TCPACKSkippedFinWait2": "TcpExt: TCPACKSkippedFinWait2 - ACKs an orphan's FIN-WAIT-2 "
                             "time-wait sock did not send (tcp_invalid_ratelimit)",
    "TCPACKSkippedTimeWait": "TcpExt: TCPACKSkippedTimeWait - ACKs a TIME-WAIT sock did "
                             "not send (tcp_invalid_ratelimit)",
    "OutOfWindowIcmps": "LINUX_MIB_OUTOFWINDOWICMPS (TcpExt: OutOfWindowIcmps) - ICMP errors "
                        "quoting a sequence number outside the window, ignored",
    "PMTUUpdates": "tcpio: path MTU lowered by ICMP fragmentation needed (Linux counts it "
                   "in the route cache)",
    "TCPOutNoRoute": "tcpio: TCP segments not sent: no route to the peer",
}


def describe(name: str) -> str:
    """The one-line description of a counter ('' if it has none)."""
    return DESCRIPTIONS.get(name, "")


def nstat(before: dict[str, int], after: dict[str, int],
          with_zero: bool = False) -> list[tuple[str, int, str]]:
    """``nstat``'s view of two snapshots: (name, increase, description) for
    every counter that moved (all of them with ``with_zero``), by name."""
    names = sorted(set(before) | set(after))
    rows = []
    for name in names:
        d = after.get(name, 0) - before.get(name, 0)
        if d or with_zero:
            rows.append((name, d, describe(name)))
    return rows


def format_nstat(rows: list[tuple[str, int, str]]) -> str:
    """``nstat``-style lines: the name, the delta, the meaning."""
    width = max((len(n) for n, _, _ in rows), default=0)
    return "\n".join(f"{n:<{width}} {d:>10}    {desc}" for n, d, desc in rows)
