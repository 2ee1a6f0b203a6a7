"""What a capture says about TCP connections: pure functions, packet records in, values out.

Packets come from `lab.capture` (any sequence of `Packet` records in capture order). This
package is the lab's only reading of TCP: the report, the charts and the compose demo take
connections, phases, exchanges and packet categories from here.

- `split_streams` (streams.py) numbers connections exactly as Wireshark's `tcp.stream` does, so
  "Follow TCP Stream N" in Wireshark shows our connection N. The rule, checked against tshark
  4.0: streams are numbered in order of first appearance of their address/port pair; a SYN
  without ACK starts a new stream on the same pair only if its sequence number differs from
  the base sequence number of that direction (the SYN's seq, or one less than the first seq
  seen without a SYN). A SYN repeating the ISN is a retransmission, even after FIN or RST.
- `analyze_connection` (connection.py) reads one stream: who is client (the SYN sender), the
  handshake and its RTT (SYN to the handshake's final ACK: one full round trip wherever the
  capture sits), the teardown (who sent the first FIN and so holds TIME_WAIT; FIN/ACK, FIN/ACK,
  ACK is a 3-packet teardown, FIN, ACK, FIN, ACK a 4-packet one), RSTs, data and pure ACKs
  each way, retransmissions, and the server's flights (slow start, from the ACK clock).
- `analyze` (total.py) does the whole capture, `summarize_mode` (mode.py) reduces it to the
  `analysis.json` keys (docs/architecture.md) and joins the client's request log to the
  connections.
- `describe` (detail.py) adds what only drawings need, for a few connections: each packet's
  category, relative sequence numbers, the exchanges (request and response) and the phases.
"""

from lab.analysis.connection import (
    CATEGORIES,
    CLIENT,
    DATA,
    HANDSHAKE,
    OTHER,
    PURE_ACK,
    SERVER,
    SIDES,
    TEARDOWN,
    Connection,
    Flight,
    analyze_connection,
    packet_categories,
    slow_start_restarts,
)
from lab.analysis.detail import (
    ConnectionDetail,
    Exchange,
    LadderRow,
    Phases,
    describe,
    details,
)
from lab.analysis.mode import (
    SERIES_CONNECTIONS,
    join_requests,
    percentile,
    request_latencies,
    summarize_mode,
)
from lab.analysis.streams import split_streams, stream_tracker
from lab.analysis.total import Analysis, analyze
from lab.tcp import ACK, FIN, INITIAL_WINDOW, PSH, RST, SYN

__all__ = [
    "ACK",
    "CATEGORIES",
    "CLIENT",
    "DATA",
    "FIN",
    "HANDSHAKE",
    "INITIAL_WINDOW",
    "OTHER",
    "PSH",
    "PURE_ACK",
    "RST",
    "SERIES_CONNECTIONS",
    "SERVER",
    "SIDES",
    "SYN",
    "TEARDOWN",
    "Analysis",
    "Connection",
    "ConnectionDetail",
    "Exchange",
    "Flight",
    "LadderRow",
    "Phases",
    "analyze",
    "analyze_connection",
    "describe",
    "details",
    "join_requests",
    "packet_categories",
    "percentile",
    "request_latencies",
    "slow_start_restarts",
    "split_streams",
    "stream_tracker",
    "summarize_mode",
]
