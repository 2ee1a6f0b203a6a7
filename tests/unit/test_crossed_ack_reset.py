"""tests.support.teardown: the reset after a crossed ACK and FIN, and nothing else."""

from __future__ import annotations

from lab.frames import Packet
from lab.tcp import ACK, FIN, RST
from tests.support.teardown import crossed_ack_reset

C, S = ("172.28.0.3", 44070), ("172.28.0.2", 3002)

# Stream 1845 of a load-ci run (HTTP/1.0, 200 at a time), as the server's capture saw it: the
# server closes first; the client's FIN comes 43 ms later, with the delayed ACK its timer sent
# at the same moment (18870) arriving after it; the server's TIME_WAIT ACKs that again
# (18871), and the client, whose socket is gone, resets.
SEEN = [
    (0.0, *C, *S, 2, 3200111619, 0, 0, 74, 64240, 18372, 1460),
    (1.4e-05, *S, *C, 18, 1012177416, 3200111620, 0, 74, 65160, 18373, 1460),
    (3.5e-05, *C, *S, 16, 3200111620, 1012177417, 0, 66, 63, 18374, 0),
    (8.7e-05, *C, *S, 24, 3200111620, 1012177417, 101, 167, 63, 18375, 0),
    (9.3e-05, *S, *C, 16, 1012177417, 3200111721, 0, 66, 64, 18376, 0),
    (0.02726, *S, *C, 24, 1012177417, 3200111721, 1140, 1206, 64, 18576, 0),
    (0.027289, *C, *S, 16, 3200111721, 1012178557, 0, 66, 66, 18577, 0),
    (0.028618, *S, *C, 17, 1012178557, 3200111721, 0, 66, 64, 18583, 0),
    (0.071661, *C, *S, 17, 3200111721, 1012178558, 0, 66, 66, 18867, 0),
    (0.071673, *S, *C, 16, 1012178558, 3200111722, 0, 66, 64, 18869, 0),
    (0.071679, *C, *S, 16, 3200111721, 1012178558, 0, 66, 66, 18870, 0),
    (0.071693, *S, *C, 16, 1012178558, 3200111722, 0, 66, 64, 18871, 0),
    (0.071713, *C, *S, 4, 3200111722, 0, 0, 54, 0, 18872, 0),
]


def _packets(rows) -> list[Packet]:
    return [Packet(ts, a, b, sp, dp, *rest) for ts, a, sp, b, dp, *rest in rows]


def _without(frame: int) -> list[Packet]:
    return _packets([r for r in SEEN if r[11] != frame])


def test_the_stream_seen_in_the_load_test_is_the_case():
    assert crossed_ack_reset(_packets(SEEN)) is None


def test_without_the_crossed_ack_it_is_not():
    assert "crossed" in crossed_ack_reset(_without(18870))


def test_without_the_repeated_final_ack_it_is_not():
    assert "repeated" in crossed_ack_reset(_without(18871))


def test_a_reset_from_the_side_that_closed_first_is_not():
    rows = [*SEEN[:-1], (0.0718, *S, *C, RST, 1012178558, 0, 0, 54, 0, 18873, 0)]
    assert "closed second" in crossed_ack_reset(_packets(rows))


def test_a_reset_instead_of_the_second_fin_is_not():
    rows = [*SEEN[:8], (0.05, *C, *S, RST | ACK, 3200111721, 1012178558, 0, 54, 0, 18700, 0)]
    assert "FIN from each side" in crossed_ack_reset(_packets(rows))


def test_a_reset_in_the_middle_is_not():
    rows = [*SEEN[:6], (0.03, *C, *S, RST, 3200111721, 0, 0, 54, 0, 18600, 0), *SEEN[6:]]
    assert "last packet" in crossed_ack_reset(_packets(rows))


def test_a_clean_teardown_is_not():
    assert crossed_ack_reset(_packets(SEEN[:10])) is not None
    assert FIN & SEEN[8][5] and ACK & SEEN[9][5]
