"""Per-host tunables, named after the Linux sysctls they mirror.

One ``Settings`` object per Host (``host.settings``).  Defaults are Linux's.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Settings:
    # --- net.ipv4 (IP) ---
    ip_default_ttl: int = 64
    ip_forward: bool = False               # router mode: forward what is not ours (ip_forward.py)
    ipfrag_time: float = 30.0              # reassembly timeout, seconds
    ipfrag_high_thresh: int = 4 * 1024 * 1024  # reassembly memory cap, bytes
    min_pmtu: int = 552                    # floor for a learned path MTU
    ip_no_pmtu_disc: int = 0               # 0: TCP sets DF and learns the path MTU; 1: neither
    ip_rt_mtu_expires: float = 600.0       # how long a learned path MTU lasts
    ip_local_port_range: tuple[int, int] = (32768, 60999)
    # --- ARP / neighbour (net.ipv4.neigh.default) ---
    arp_base_reachable_time: float = 30.0
    arp_gc_stale_time: float = 60.0
    arp_retrans_time: float = 1.0
    arp_mcast_solicit: int = 3             # broadcast requests before giving up
    arp_ucast_solicit: int = 3             # unicast probes of a stale entry
    arp_unres_qlen: int = 101              # packets queued per unresolved neighbour
    arp_unres_qlen_bytes: int = 212992     # ... and at most this many bytes (unres_qlen_bytes)
    arp_gc_thresh3: int = 1024             # cache size cap
    # --- IPv6 (net.ipv6) ---
    disable_ipv6: int = 0                  # 1: no link-local address on new interfaces
    ipv6_hop_limit: int = 64               # conf.all.hop_limit
    ip6frag_time: float = 60.0             # IPv6 reassembly timeout (RFC 8200's 60 s)
    ip6frag_high_thresh: int = 4 * 1024 * 1024
    dad_transmits: int = 1                 # DAD probes per address (0: no DAD)
    rtr_solicit_delay: float = 1.0         # DAD's first probe waits a random part of it
    # router discovery and SLAAC (conf.*.accept_ra, autoconf, rtr_solicit*):
    # off by default (static addresses); Linux's default is accept_ra = 1
    accept_ra: int = 0                     # 1: solicit and accept router advertisements
    autoconf: int = 1                      # ... and make addresses from their /64 prefixes
    rtr_solicits: int = -1                 # router solicitations to send (-1: until answered)
    rtr_solicit_interval: float = 4.0      # the first interval; doubling ...
    rtr_solicit_max_interval: float = 3600.0  # ... up to this
    ndisc_delay_first_probe_time: float = 5.0  # neigh.default.delay_first_probe_time
    icmpv6_ratelimit: float = 1.0          # net.ipv6.icmp.ratelimit (seconds per error, /0)
    bindv6only: int = 0                    # net.ipv6.bindv6only: IPV6_V6ONLY's default
    ipv6_forward: int = 0                  # conf.all.forwarding: router mode (ip6_forward.py)
    keep_addr_on_down: int = 0             # conf.all.keep_addr_on_down: 0 flushes a downed link's
                                           # IPv6 addresses (Linux's default)
    # --- ICMP ---
    icmp_ratelimit: float = 1.0            # net.ipv4.icmp_ratelimit (1000 ms): seconds per error per destination
    icmp_ratemask_burst: int = 6           # ... and the bucket's size in errors (XRLIM_BURST_FACTOR)
    icmp_ratemask: int = 0x1818            # the types limited: 3, 4, 11, 12 (Linux's default)
    icmp_msgs_per_sec: int = 1000          # host-wide ICMP error budget (icmp_global_allow)
    icmp_msgs_burst: int = 50
    # --- UDP ---
    udp_rmem_default: int = 212992
    # --- TCP connection management ---
    tcp_syn_retries: int = 6
    tcp_synack_retries: int = 5
    tcp_max_syn_backlog: int = 1024
    somaxconn: int = 4096
    tcp_syncookies: int = 1                # 0 off, 1 when SYN queue full, 2 always
    # cookie SYN-ACKs per receive batch (tcpio; syn_fast): SYNs past it are
    # dropped (ListenDrops, TCPSynBudgetDrop) so a flood leaves the batch's
    # time to established connections
    tcp_syn_budget: int = 64
    tcp_abort_on_overflow: int = 0
    tcp_fin_timeout: float = 60.0
    tcp_tw_timeout: float = 60.0           # TCP_TIMEWAIT_LEN
    tcp_tw_reuse: int = 2                  # 2 = loopback only (we treat as off), 1 = on
    tcp_max_orphans: int = 65536
    tcp_max_tw_buckets: int = 262144
    tcp_orphan_retries: int = 0            # 0 means 8 like Linux
    # RFC 5961 challenge ACKs: a host-wide budget per second, off (INT_MAX) as in
    # Linux >= 6.0, randomised around the value when set; and per socket at most
    # one challenge or out-of-window ACK per tcp_invalid_ratelimit.
    tcp_challenge_ack_limit: int = 0x7FFFFFFF
    tcp_invalid_ratelimit: float = 0.5
    # --- TCP data path ---
    tcp_rmem: tuple[int, int, int] = (4096, 131072, 6291456)
    tcp_wmem: tuple[int, int, int] = (4096, 16384, 4194304)
    # What the receive windows of all connections receiving at once share
    # (tcp_fast.RcvPool; 0: no pool).  Not a Linux sysctl: Linux's tcp_mem
    # clamps windows under memory pressure; tcpio, reading its device on
    # one thread, bounds what peers may have in flight toward it instead.
    # 16 MiB: under 11 600 full segments, inside the TAP's 20 000-frame ring
    # even at one segment a frame, and 11 segments a connection at 1000
    # (smaller windows cut the peers' super-frames small: at 6 MiB, 1000
    # uploads moved half as much); above tcp_rmem[2], so one connection
    # alone is offered what it would be without a pool.
    tcp_rcv_pool: int = 16 << 20
    # unsent bytes above which a socket is not writable (TCP_NOTSENT_LOWAT's
    # default; 4294967295, UINT_MAX: no limit but the send buffer)
    tcp_notsent_lowat: int = 0xFFFFFFFF
    tcp_window_scaling: int = 1
    tcp_timestamps: int = 1
    tcp_sack: int = 1
    tcp_dsack: int = 1
    tcp_retries2: int = 15
    tcp_rto_min: float = 0.2
    tcp_rto_max: float = 120.0
    tcp_rto_initial: float = 1.0
    tcp_delack_min: float = 0.04
    tcp_pingpong_thresh: int = 1           # replies within the ATO before delayed ACKs wait for data (>= 1)
    tcp_init_cwnd: int = 10
    tcp_min_tso_segs: int = 2              # smallest burst tcp_tso_autosize allows
    tcp_pacing_ss_ratio: int = 200         # pacing rate, % of cwnd/srtt, in slow start
    tcp_pacing_ca_ratio: int = 120         # ... and in congestion avoidance
    tcp_early_retrans: int = 3             # 3 (4): tail loss probes (RFC 8985 TLP) on; else off
    tcp_recovery: int = 1                  # 0x1 RACK loss detection, 0x2 static reo_wnd, 0x4 no dupthresh
    tcp_reordering: int = 3                # initial reordering degree (DupThresh)
    tcp_max_reordering: int = 300
    tcp_congestion_control: str = "cubic"
    # CUBIC's slow-start exit: 0, HyStart++ (RFC 9406, tcpio's default); else
    # Linux's tcp_cubic HyStart with its module parameter hystart_detect's
    # bits (1: ACK train, 2: delay increase; Linux's default is 3)
    tcp_cubic_hystart_detect: int = 0
    tcp_keepalive_time: float = 7200.0
    tcp_keepalive_intvl: float = 75.0
    tcp_keepalive_probes: int = 9
    tcp_ofo_max_bytes: int | None = None   # None: bounded by the receive buffer
    extra: dict = field(default_factory=dict)
