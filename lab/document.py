"""The run document: what `analysis.json` and `manifest.json` hold, as typed, versioned values.

    RunResult            analysis.json, plus the run folder and its Manifest
      ├─ modes: {name: ModeResult}          one column of the comparison (a list in the file)
      │    ├─ per_connection: [ConnectionResult]   one Wireshark tcp.stream each
      │    │    ├─ flights: [FlightResult]   the server's rounds (slow start)
      │    │    └─ requests: [RequestRecord] the client's requests joined to the stream
      │    └─ clock: ClockResult | None      captured on both ends: offset, one-way delays
      ├─ network: NetworkCheck | None        the conditions asked for and the RTT check
      └─ claims: [Claim]                     the article's statements, checked
    Manifest             manifest.json: what ran, where, when, and whether it finished
      ├─ modes: [ModeRecord]                 each mode and repeat as the runner saw it
      ├─ engines: {side: EngineRecord}       each side's Docker engine
      └─ path: PathRecord | None             two engines (or two captures): the path

Every class has one `to_dict` and one `from_dict`; `to_dict(from_dict(d))` gives `d` back for a
document this lab wrote. Field names are the JSON keys, so users' scripts on the files and on the
Python API read the same words. Keys that the lab writes only when they apply (a fault, a
repeat, a prediction) are left out when empty rather than written as null.

Versions: each file carries `schema_version` (SCHEMA_VERSION). A file without it was written
before versions existed (version 1: the same keys, read as is). A newer version than this lab
knows is refused with a one-line `UsageError` that says so (exit 2 at the command line). Within a
version a key this lab does not know is kept in `extra`, so nothing a newer patch wrote is lost.

Pure: no I/O but `read_json`, which turns a missing or broken file into a one-line error.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lab.errors import UsageError

SCHEMA_VERSION = 2
UNVERSIONED = 1  # files written before `schema_version` existed: the same keys


# --- the generic part: dataclass <-> plain JSON values ---------------------------------------


def _omit(default: Any = None) -> Any:
    """A field left out of the file when it is empty (None, [] or {}: its default)."""
    if isinstance(default, list | dict):
        factory = type(default)
        return field(default_factory=factory, metadata={"omit": "empty"})
    return field(default=default, metadata={"omit": "empty"})


def _omit_none() -> Any:
    """A field left out of the file when it is None (an empty list is written)."""
    return field(default=None, metadata={"omit": "none"})


class Record:
    """Base of the document's classes: field name = JSON key; unknown keys kept in `extra`."""

    extra: dict[str, Any]
    _hints: ClassVar[dict[type, dict[str, Any]]] = {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            omit = f.metadata.get("omit")
            if (value is None and omit) or (omit == "empty" and value in ([], {})):
                continue
            out[f.name] = _plain(value)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "document"):
        if not isinstance(data, dict):
            raise UsageError(f"{where}: expected an object, found {type(data).__name__}")
        hints = _hints_of(cls)
        known = {}
        for name, hint in hints.items():
            if name in data:
                known[name] = _typed(hint, data[name], f"{where}.{name}")
        extra = {k: v for k, v in data.items() if k not in hints}
        return cls(**known, extra=extra)


def _hints_of(cls: type) -> dict[str, Any]:
    cached = Record._hints.get(cls)
    if cached is None:
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls) if f.name != "extra"]
        cached = Record._hints[cls] = {n: hints[n] for n in names}
    return cached


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _typed(hint: Any, value: Any, where: str) -> Any:
    """A JSON value as `hint` says: Records and lists/dicts of them are built, the rest kept."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        records = [
            a for a in typing.get_args(hint) if isinstance(a, type) and issubclass(a, Record)
        ]
        return records[0].from_dict(value, where) if records and isinstance(value, dict) else value
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_dict(value, where)
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(hint) or (Any,)
        return [_typed(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict and isinstance(value, dict):
        _key, item = typing.get_args(hint) or (str, Any)
        return {k: _typed(item, v, f"{where}.{k}") for k, v in value.items()}
    return value


def check_version(data: Any, where: str) -> int:
    """The document's schema version; a one-line UsageError for one this lab cannot read."""
    if not isinstance(data, dict):
        raise UsageError(f"{where}: not a lab document (expected a JSON object)")
    version = data.get("schema_version", UNVERSIONED)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UsageError(f"{where}: schema_version {version!r} is not a version this lab knows")
    if version > SCHEMA_VERSION:
        raise UsageError(
            f"{where}: written by a newer lab (schema_version {version}; this lab reads 1 to "
            f"{SCHEMA_VERSION}): upgrade the lab to read it"
        )
    return version


def read_json(path: Path) -> Any:
    """A JSON file, or a one-line UsageError saying why it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise UsageError(f"{path}: no such file") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise UsageError(
            f"{path}: {'line ' + str(line) + ': ' if line else ''}not valid JSON"
        ) from exc


# --- analysis.json ---------------------------------------------------------------------------


@dataclass(eq=True)
class Pair(Record):
    """A count per sender: what the client sent and what the server sent."""

    client: int = 0
    server: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=True)
class FlightResult(Record):
    """The server's segments in one round trip (lab.analysis.Flight)."""

    burst: int = 0
    round: int = 0
    start: float = 0.0
    end: float = 0.0
    segments: int = 0
    bytes: int = 0
    in_flight_max: int = 0
    cwnd_segments: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=True)
class RequestRecord(Record):
    """One client request joined to the stream that carried it (client.jsonl's times)."""

    request: Any = None
    t_connect_start: float | None = None
    t_sent: float | None = None
    t_first_byte: float | None = None
    t_done: float | None = None
    ok: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=True)
class TlsConnectionResult(Record):
    """One connection's TLS as the packets show it (lab.tls.TlsConnection.to_dict): version,
    resumption, the handshake's round trips and bytes (certificates apart), and time to first
    byte in three parts (`ttfb`: total_s, tcp_s, tls_s, server_s). Times on the capture's clock.
    """

    stream: int = 0
    client: str | None = None
    server: str | None = None
    version: str | None = None
    resumed: bool = False
    resumption: str | None = None  # "ticket", "session id", "psk" (TLS 1.3)
    hello_retry: bool = False
    early_data: bool = False
    sni: str | None = None
    alpn_offered: list[str] = field(default_factory=list)
    alpn: str | None = None
    certificate_in_clear: bool = False
    certificate_bytes: int | None = None
    certificates: int | None = None
    tickets: int = 0
    handshake_round_trips: int | None = None
    handshake_bytes: Pair = field(default_factory=Pair)
    application_bytes: Pair = field(default_factory=Pair)
    times: dict[str, float | None] = field(default_factory=dict)
    ttfb: dict[str, float | None] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    flights: str = ""
    problem: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=True)
class TlsModeResult(Record):
    """A mode's TLS in a few figures (lab.tls.summarize): handshakes of each kind, their round
    trips, what they cost in bytes, and the median time to first byte in its parts."""

    connections: int = 0
    versions: list[str] = field(default_factory=list)
    full_handshakes: int = 0
    resumed: int = 0
    round_trips_full: list[int] = field(default_factory=list)
    round_trips_resumed: list[int] = field(default_factory=list)
    certificates_in_clear: int = 0
    resumed_with_certificate: int = 0
    certificate_bytes: int = 0
    handshake_bytes: Pair = field(default_factory=Pair)
    server_handshake_bytes_full: float | None = None
    server_handshake_bytes_resumed: float | None = None
    ttfb_median_s: dict[str, float | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    keylog: str | None = None  # the mode's SSLKEYLOGFILE, relative to the run folder
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=True)
class ConnectionResult(Record):
    """One TCP connection (Wireshark's tcp.stream) as lab.analysis read it."""

    stream: int = 0
    client: str | None = None
    server: str | None = None
    client_addr: str | None = None
    client_port: int | None = None
    server_addr: str | None = None
    server_port: int | None = None
    roles_from: str | None = None
    start: float | None = None
    end: float | None = None
    duration_s: float | None = None
    packets: int = 0
    bytes: int = 0
    syn_packets: int = 0
    syn_retransmissions: int = 0
    synack_packets: int = 0
    handshake_packets: int = 0
    handshake_complete: bool = False
    handshake_rtt_ms: float | None = None
    t_syn: float | None = None
    t_established: float | None = None
    teardown: str = "none"
    teardown_complete: bool = False
    teardown_packets: int = 0
    closed_first: str | None = None
    time_wait: str | None = None
    t_first_fin: float | None = None
    t_teardown_end: float | None = None
    fin_packets: int = 0
    rst: int = 0
    rst_by: str | None = None
    data_segments: Pair = field(default_factory=Pair)
    pure_acks: Pair = field(default_factory=Pair)
    payload_bytes: Pair = field(default_factory=Pair)
    retransmissions: Pair = field(default_factory=Pair)  # Wireshark's, fast ones included
    # what Wireshark's tcp.analysis tells apart from retransmissions, by its names
    fast_retransmission: Pair = field(default_factory=Pair)
    out_of_order: Pair = field(default_factory=Pair)
    spurious_retransmission: Pair = field(default_factory=Pair)
    keep_alive: Pair = field(default_factory=Pair)
    zero_window_probe: Pair = field(default_factory=Pair)
    # data segments carrying a byte the capture had shown before, whatever Wireshark names them
    # (lab.analysis.walk); absent from files written before it was counted
    resent: Pair | None = _omit()
    overhead_packets: int = 0
    t_last_server_byte: float | None = None
    # the first request's first byte on the server's interface (lab.results, for lab.costs)
    t_first_client_byte: float | None = _omit()
    mss: int = 0
    syn_mss: int = 0  # the smaller MSS option the handshake announced (0: none seen)
    slow_start_restarts: int = 0
    flights: list[FlightResult] = field(default_factory=list)
    server_series: list[list[float]] | None = _omit_none()
    requests: list[RequestRecord] = field(default_factory=list)
    tls: TlsConnectionResult | None = _omit()  # a TLS mode: the connection's TLS (lab.tls)
    extra: dict[str, Any] = field(default_factory=dict)

    def bursts(self) -> list[list[FlightResult]]:
        """The server's flights grouped per response (burst), each burst's rounds in order."""
        groups: dict[int, list[FlightResult]] = {}
        for f in self.flights:
            groups.setdefault(f.burst, []).append(f)
        return [groups[k] for k in sorted(groups)]


@dataclass(eq=True)
class ProgramCostsResult(Record):
    """What the lab's own programs added in this mode, measured on its capture and client log
    (lab.costs; the model's lab.model.ProgramCosts), in milliseconds: per connection (setup,
    reconnect), per request (service, turnaround), for the connections opened at once
    (opening: first SYN to their first request; stagger: between their first requests).
    `samples` says how many values each mean came from (0: not measured)."""

    setup_ms: float = 0.0
    service_ms: float = 0.0
    turnaround_ms: float = 0.0
    reconnect_ms: float = 0.0
    stagger_ms: float = 0.0
    opening_ms: float = 0.0
    samples: dict[str, int] = field(default_factory=dict)
    service_min_ms: float | None = None  # the least and the most one request took
    service_max_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=True)
class OneWayResult(Record):
    """One direction's delays between the two capture points, in ms (lab.clock)."""

    packets: int = 0
    min_ms: float | None = None
    median_ms: float | None = None
    p95_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=True)
class ClockResult(Record):
    """A mode captured on both ends (lab.clock): the server's clock minus the client's, within
    +-bound_ms, from `matched` packets seen in both captures, and each direction's one-way
    delays (`client_to_server`, `server_to_client`)."""

    offset_ms: float | None = None
    bound_ms: float | None = None
    matched: int = 0
    one_way: dict[str, OneWayResult] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=True)
class ModeResult(Record):
    """One mode of a run: the capture's figures, the client's account and the model's figure.

    The first twelve fields are the lab's contract (docs/architecture.md); every count comes
    from the capture. None means "not measured" (no capture, no handshake, no model).
    """

    name: str = ""
    persistent: bool | None = None
    connections: int | None = None
    syn: int | None = None
    handshake_packets: int | None = None
    teardown_packets: int | None = None
    packets: int | None = None
    bytes: int | None = None
    retransmissions: int | None = None
    page_time_s: float | None = None
    rtt_ms: float | None = None
    predicted_page_time_s: float | None = None
    synack: int | None = None
    fin: int | None = None
    rst: int | None = None
    unanswered_syn: int | None = None
    data_segments: int | None = None
    pure_acks: int | None = None
    overhead_packets: int | None = None
    overhead_share: float | None = None
    payload_bytes: int | None = None
    # data segments sent again, whatever Wireshark names them: on a sub-millisecond path most
    # resends are "out of order" to Wireshark (lab.analysis.walk); absent from older files
    resent_segments: int | None = _omit()
    requests: int | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    handshake_wait_s: float | None = None
    handshake_wait_wall_s: float | None = None
    teardowns: dict[str, int] = field(default_factory=dict)
    closed_first: dict[str, int] = field(default_factory=dict)
    slow_start_restarts: int | None = None
    truncated: bool | None = None
    per_connection: list[ConnectionResult] = field(default_factory=list)
    missing: str | None = _omit()  # the artifact this mode did not leave (capture.pcap)
    client_ok: int | None = None
    client_failed: int | None = None
    folder: str | None = None
    client_exit: int | None = None
    error: str | None = None
    shaping: dict[str, Any] | None = None
    capture_drops: int | None = None
    incomplete: list[str] = _omit([])
    faults: list[dict[str, Any]] = _omit([])
    fault_account: dict[str, Any] | None = _omit()
    fault_summary: str | None = _omit()
    parallel: int | None = None
    pipeline: bool | None = None
    repeat: int | None = _omit()  # the mode sent its workload this many times over (load runs)
    repeats: list[float | None] = _omit([])  # page time of every repeat of the run
    prediction: dict[str, Any] | None = _omit()
    prediction_error_pct: float | None = _omit()
    # the model with the network alone (no program costs), on the same clock as page_time_s
    predicted_network_only_s: float | None = _omit()
    program_costs: ProgramCostsResult | None = _omit()  # the programs' times the model used
    prediction_band_pct: float | None = _omit()  # how close the model is meant to be here
    # why this mode is outside its band, in words; inside it, a caution (loss: lab.costs)
    prediction_note: str | None = _omit()
    client: str | None = _omit()  # "browser" for a browser mode (absent: the lab's client)
    # a browser mode: its net-log joined to the capture (lab.browser.BrowserAccount.as_dict())
    browser: dict[str, Any] | None = _omit()
    clock: ClockResult | None = _omit()  # captured on both ends: clock offset, one-way delays
    tls: TlsModeResult | None = _omit()  # a TLS mode: its handshakes as the packets show them
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def data_resends(self) -> int | None:
        """`resent_segments`; in a file written before it was counted, Wireshark's count."""
        return self.retransmissions if self.resent_segments is None else self.resent_segments


@dataclass(eq=True)
class Claim(Record):
    """One of the article's statements checked against the capture. `holds` is None when the
    capture cannot decide."""

    id: str = ""
    mode: str | None = None
    claim: str = ""
    holds: bool | None = None
    observed: Any = None
    expected: Any = None
    why: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return verdict(self.holds)


def verdict(holds: bool | None) -> str:
    return {True: "holds", False: "differs", None: "can't tell"}[holds]


@dataclass(eq=True)
class RttCheck(Record):
    """Did the configured delay take effect? The median handshake RTT against rtt + base RTT."""

    expected_ms: float = 0.0
    tolerance_ms: float = 0.0
    measured_ms: float | None = None
    handshakes: int = 0
    modes: list[dict[str, Any]] = field(default_factory=list)
    ok: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=True)
class NetworkCheck(Record):
    """The network conditions a scenario asked for, how they were made, and the check."""

    rtt_ms: float | None = None
    jitter_ms: float | None = None
    loss_pct: float | None = None
    rate_bps: int | None = None
    method: str | None = None
    base_rtt_ms: float | None = None
    rtt_check: RttCheck | None = _omit()
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=True)
class EngineRecord(Record):
    """One side's Docker engine (manifest.json's `engines`)."""

    url: str = ""  # as given (hosts:, --engine), or DOCKER_HOST's ("local": the default socket)
    engine: str | None = None  # Docker Engine version
    api: str | None = None
    kernel: str | None = None
    swarm_node: str | None = _omit()  # the engine's Swarm node ID, on two engines
    manager: bool | None = _omit()  # whether it is a Swarm manager (it made the network)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=True)
class PathRecord(Record):
    """The path between the sides of a run on two engines (manifest.json's `path`)."""

    network_driver: str = "bridge"  # overlay across two engines
    mtu: int | None = None  # the client's interface MTU, as probed (1450 on the overlay)
    syn_mss: int | None = None  # the smallest MSS option announced in the run's SYNs
    base_rtt_ms: float | None = None  # median of each mode's probe, before its traffic
    # captured on both ends: the server's clock minus the client's (the mode with the tightest
    # bound), and that bound
    clock_offset_ms: float | None = _omit()
    clock_bound_ms: float | None = _omit()
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=True)
class ModeRecord(Record):
    """One mode and repeat as the runner saw it (manifest.json's `modes`)."""

    mode: str = ""
    repeat: int = 1
    client_exit: int | None = None
    error: str | None = None
    shaping: dict[str, Any] | None = None
    capture_drops: int | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    path: dict[str, Any] | None = _omit()  # two engines: {base_rtt_ms, mtu} probed
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=True)
class Manifest(Record):
    """manifest.json: written last and atomically; `status` "incomplete" means cut short."""

    schema_version: int = SCHEMA_VERSION
    lab_version: str | None = None
    run_id: str | None = None
    status: str = "incomplete"
    reason: str | None = _omit()
    command: str | None = None
    scenario: str | None = None
    started: str | None = None
    ended: str | None = None
    host: dict[str, Any] = field(default_factory=dict)
    images: dict[str, Any] = _omit({})
    docker: dict[str, Any] = _omit({})
    failures: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    modes: list[ModeRecord] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    # Where it ran: each side's engine, the path between them, images pushed to engines
    # (lab.image_sync: {engine, images, bytes, seconds}).
    engines: dict[str, EngineRecord] = _omit({})
    path: PathRecord | None = _omit()
    image_transfers: list[dict[str, Any]] = _omit([])
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @classmethod
    def read(cls, path: Path) -> Manifest:
        data = read_json(path)
        version = check_version(data, str(path))
        manifest = cls.from_dict(data, str(path))
        manifest.schema_version = version
        return manifest

    def mode_record(self, mode: str, repeat: int) -> ModeRecord | None:
        return next((m for m in self.modes if (m.mode, m.repeat) == (mode, repeat)), None)


@dataclass(eq=True)
class RunResult(Record):
    """A run: analysis.json's content (`to_dict`), and where it lives (`run_dir`, `manifest`).

    `modes` is keyed by mode name in the scenario's order (`result.modes["keepalive"]`); the
    file keeps today's list of mode objects.
    """

    schema_version: int = SCHEMA_VERSION
    scenario: dict[str, Any] = field(default_factory=dict)
    network: NetworkCheck | None = None
    modes: dict[str, ModeResult] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    faults: list[dict[str, Any]] = _omit([])
    complete: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = field(default=None, compare=False)
    manifest: Manifest | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema_version": self.schema_version, "scenario": self.scenario}
        out["network"] = None if self.network is None else self.network.to_dict()
        out["modes"] = [m.to_dict() for m in self.modes.values()]
        out["claims"] = [c.to_dict() for c in self.claims]
        if self.faults:
            out["faults"] = self.faults
        out["complete"] = self.complete
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "analysis.json") -> RunResult:
        version = check_version(data, where)
        modes = data.get("modes")
        if not isinstance(modes, list):
            raise UsageError(f'{where}: not a lab analysis (no "modes" list)')
        parsed = [ModeResult.from_dict(m, f"{where}: modes[{i}]") for i, m in enumerate(modes)]
        network = data.get("network")
        known = {"schema_version", "scenario", "network", "modes", "claims", "faults", "complete"}
        return cls(
            schema_version=version,
            scenario=data.get("scenario") or {},
            network=None if network is None else NetworkCheck.from_dict(network, where),
            modes={m.name: m for m in parsed},
            claims=[Claim.from_dict(c, where) for c in data.get("claims") or []],
            faults=list(data.get("faults") or []),
            complete=bool(data.get("complete", True)),
            extra={k: v for k, v in data.items() if k not in known},
        )

    @classmethod
    def read(cls, run_dir: Path) -> RunResult:
        """A run folder's analysis.json and manifest.json (the manifest may be missing)."""
        run_dir = Path(run_dir)
        path = run_dir / "analysis.json"
        if not path.exists():
            raise UsageError(f"{path}: no analysis.json (is this a run folder?)")
        result = cls.from_dict(read_json(path), str(path))
        result.run_dir = run_dir
        manifest_path = run_dir / "manifest.json"
        result.manifest = Manifest.read(manifest_path) if manifest_path.exists() else None
        return result

    # --- what the scenario asked of a mode (analysis.json keeps the scenario as run) ---

    def mode_spec(self, name: str) -> dict[str, Any]:
        """The scenario's definition of a mode (persistent, parallel, pipeline, ...), or {}."""
        for m in self.scenario.get("modes") or []:
            if isinstance(m, dict) and m.get("name") == name:
                return m
        return {}

    def parallel(self, mode: ModeResult) -> int:
        """Connections the client was told to open at once for this mode (default 1)."""
        return _positive(mode.parallel, self.mode_spec(mode.name).get("parallel"))

    def repeat(self, mode: ModeResult) -> int:
        """How many times over the mode sent its workload (the scenario mode's `repeat`)."""
        return _positive(mode.repeat, self.mode_spec(mode.name).get("repeat"))

    def pipeline(self, mode: ModeResult) -> bool:
        return bool(
            mode.pipeline
            if mode.pipeline is not None
            else self.mode_spec(mode.name).get("pipeline")
        )

    def planned_requests(self, mode: ModeResult | None = None) -> int | None:
        """Requests the mode was to send: one page of its workload times its `repeat`;
        without a mode, one page of the scenario's workload."""
        holders = [self.scenario.get("workload") or {}]
        if mode is not None:
            holders.insert(0, self.mode_spec(mode.name).get("workload") or {})
        for holder in holders:
            for key in ("resources", "messages", "sizes"):
                items = holder.get(key)
                if isinstance(items, list) and items:
                    return len(items) * (self.repeat(mode) if mode else 1)
        return None


def _positive(*values: Any) -> int:
    for v in values:
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return 1
