"""The network-conditions sidecar: round-trip time, jitter, loss and rate between lab hosts.

Runs in a container that shares the network namespace of the host it shapes
(`network_mode="container:<id>"`) with NET_ADMIN, standard library only. Two methods:

- netem (`shaper.netem`): where the kernel has `sch_netem`, tc does it all on egress.
- nfqueue (`shaper.rules`, `shaper.nfqueue`, `shaper.delayline`): where it does not, iptables
  queues the lab's TCP packets on INPUT, this program holds each for its scheduled time over
  netlink, and tbf shapes the rate on egress. The packet path is drawn in `shaper.rules`.

`--rtt` is what this sidecar adds to every round trip through its host. Put one sidecar at each
end with half the RTT each (`shaper.placement.split`) for symmetric one-way delays and a rate in
both directions, or one at the client with the whole RTT.
"""
