"""Command lines for the lab's containers: `python3 -m server` and `python3 -m client` argv.

Built from a scenario (`lab.scenario.Scenario`) and one or more of its modes. Pure. Imports
nothing from `lab.scenario` at run time, so the scenario's own checks can use `workload_arg`
(a workload must fit in one argv string).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from wire import protocols, site

if TYPE_CHECKING:  # lab.scenario imports this module
    from lab.scenario import Mode, Scenario, Workload

MAX_ARG_CHARS = 100_000  # one argv string; Linux refuses more than 128 KiB (MAX_ARG_STRLEN)


def workload_arg(wl: Workload) -> str:
    """The client's workload option: `--resources=a:1,b:2`, `--sizes=...` or `--messages=...`.

    A resource's kind goes along (`name:size:kind`) only where its extension does not say it.
    """
    if wl.resources is not None:
        return "--resources=" + _page_list(wl)
    if wl.sizes is not None:
        return "--sizes=" + ",".join(str(n) for n in wl.sizes)
    return "--messages=" + ",".join(wl.messages or ())


def _page_list(wl: Workload) -> str:
    return site.page_arg((r.name, r.size, r.kind) for r in wl.resources or ())


def _secs(x: float) -> str:
    return f"{x:g}"


def _shared(modes: Sequence[Mode], of, what: str):
    """The one value `of(mode)` that every mode given shares: one server serves them all."""
    values = {of(m) for m in modes}
    if len(values) > 1:
        raise ValueError(f"modes with different {what} need a server each")
    return values.pop()


def server_argv(scenario: Scenario, modes: Mode | Sequence[Mode] | None = None) -> list[str]:
    """Arguments after `python3 -m server`: one listener per mode on `scenario.port_of(mode)`.

    `modes` is one mode, several, or None for all. The server takes one framing, so the modes
    given must share it and the server options (pass one mode at a time when a mode overrides
    either).
    An http workload of resources is the server's page too (`--page`, the client's list), so
    the modes given must share it. Logs are JSON lines.
    """
    if modes is None:
        modes = scenario.modes
    elif not isinstance(modes, tuple | list):  # one Mode
        modes = (modes,)
    modes = tuple(modes)
    if not modes:
        raise ValueError("server_argv needs at least one mode")
    framing = _shared(modes, scenario.framing_of, "framings")
    server = _shared(modes, scenario.server_of, "server options")
    version = _shared(modes, scenario.tls_of, "TLS")
    protocol = _shared(modes, scenario.protocol_of, "protocols")
    serves_page = "resources" in protocols.get(protocol).workloads  # http, h2, h2c: `--page`
    pages = {_page_list(scenario.workload_of(m)) for m in modes}
    if len(pages) > 1 and serves_page:
        raise ValueError("modes with different http workloads need a server each")
    largest = max(max(scenario.workload_of(m).byte_sizes()) for m in modes)
    argv = [
        "--host",
        "0.0.0.0",
        "--protocol",
        protocol,
        "--framing",
        framing,
        "--log-format",
        "json",
        "--read-timeout",
        _secs(scenario.timeouts.request),
        "--idle-timeout",
        _secs(scenario.timeouts.idle),
        "--head-timeout",
        _secs(scenario.timeouts.head),
        "--message-timeout",
        _secs(scenario.timeouts.message),
        "--max-message",
        str(max(1 << 20, largest)),
        "--concurrency",
        server.concurrency,
    ]
    if server.loops > 1:
        argv += ["--loops", str(server.loops)]
    if version:
        argv += ["--tls", version]
    for m in modes:
        argv += ["--listen", f"{scenario.port_of(m)}:{m.server_mode}"]
    page = pages.pop()
    if serves_page and page:  # one argv string, as the client's list
        argv.append(f"--page={page}")
    return argv


def client_argv(scenario: Scenario, mode: Mode, host: str, port: int | None = None) -> list[str]:
    """Arguments after `python3 -m client` for one mode (port defaults to the mode's port).

    Values go as `--opt=value` where they could start with '-', so argparse never mistakes a
    message for an option; no shell is involved anywhere.
    """
    argv = [
        "--host",
        host,
        "--port",
        str(port if port is not None else scenario.port_of(mode)),
        "--protocol",
        scenario.protocol_of(mode),
        "--framing",
        scenario.framing_of(mode),
        "--mode",
        mode.server_mode,
        workload_arg(scenario.workload_of(mode)),
        "--parallel",
        str(mode.parallel),
        "--connect-timeout",
        _secs(scenario.timeouts.connect),
        "--timeout",
        _secs(scenario.timeouts.request),
        "--log-format",
        "json",
    ]
    if mode.repeat > 1:
        argv += ["--repeat", str(mode.repeat)]
    if mode.pipeline:
        argv.append("--pipeline")
    if scenario.tls_of(mode):
        argv += ["--tls", scenario.tls_of(mode)]
        if scenario.resume_of(mode):
            argv.append("--resume")
    return argv
