"""The kernel's own count of the resets a network namespace sent (/proc/net/netstat, snmp).

Linux counts every RST it sends instead of a FIN under a TcpExt counter naming the reason;
read in the server's namespace just before the server stops, they say which one a reset in
the capture was (`tcp_close`, `tcp_out_of_resources` and `tcp_keepalive_timer` in
net/ipv4/tcp.c and tcp_timer.c):

- TCPAbortOnClose: the application closed with unread data in its receive buffer;
- TCPAbortOnData: data arrived after the application had closed (or SO_LINGER 0 on close);
- TCPAbortOnMemory: closed while the host was short of TCP memory or had too many orphans;
- TCPAbortOnTimeout: retransmissions or keep-alive probes ran out;
- TCPAbortOnLinger: the FIN_WAIT2 wait (tcp_fin_timeout / TCP_LINGER2) ran out;
- TCPAbortFailed: the RST itself could not be sent.

`OutRsts` (/proc/net/snmp) counts every RST sent, these and the ones that answer a segment no
socket owns (a closed port, a connection already gone): `OutRsts` above the sum of the aborts
is that second kind.
"""

from __future__ import annotations

ABORTS = (
    "TCPAbortOnData",
    "TCPAbortOnClose",
    "TCPAbortOnMemory",
    "TCPAbortOnTimeout",
    "TCPAbortOnLinger",
    "TCPAbortFailed",
)


def counters(netstat_text: str) -> dict[str, int]:
    """Every counter of /proc/net/netstat (pairs of lines: names, then values), by name."""
    out: dict[str, int] = {}
    lines = netstat_text.splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        prefix, _, names_rest = names.partition(":")
        value_prefix, _, values_rest = values.partition(":")
        if prefix != value_prefix:
            raise ValueError(f"netstat: {prefix!r} names followed by {value_prefix!r} values")
        for name, value in zip(names_rest.split(), values_rest.split(), strict=True):
            out[name] = int(value)
    return out


def resets(proc_text: str) -> dict[str, int]:
    """From /proc/net/netstat and /proc/net/snmp (one after the other): `OutRsts` and the
    abort counters that are not zero, the reasons this namespace sent its resets."""
    found = counters(proc_text)
    return {name: found[name] for name in ("OutRsts", *ABORTS) if found.get(name)}
