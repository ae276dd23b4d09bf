"""Link devices: in-memory wires, TAP/TUN, pcap capture, impairment."""
