"""`python -m server`: the lab's echo/HTTP server (a thread per connection by default).

Logs go to stdout, one line each, flushed. Once every listener is listening it prints one
`listening` line per listener. SIGTERM or SIGINT: stop accepting, let in-flight connections
finish within the shutdown grace, join every handler (so every FIN is sent), exit 0.
SIGUSR1 (or `--reset` from the start): end every connection with a RST after its next answer,
as a crashed or misbehaving peer would (the lab's `reset_connections` fault).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from server import handlers, tls
from server.core import CONCURRENCY, MODES, Listener, Server, ServerConfig
from server.handlers import ProtocolOptions
from server.log import LOG_FORMATS, Log
from wire import framing, http, protocols, site
from wire.args import positive


def _listen(text: str) -> Listener:
    port, sep, mode = text.partition(":")
    if not sep or not port.isdigit() or int(port) > 65535 or mode not in MODES:
        raise argparse.ArgumentTypeError(
            f"expected PORT:MODE with MODE one of {', '.join(MODES)}, got {text!r}"
        )
    return Listener(int(port), mode)


def _page(text: str) -> site.Page:
    try:
        return site.parse_page(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m server",
        description="Threaded TCP server for the lab: echo (length or raw framing) or HTTP, "
        "non-persistent (server closes first) or persistent (keep-alive).",
    )
    p.add_argument("--host", default="0.0.0.0", help="address to bind (default: 0.0.0.0)")
    p.add_argument("--port", type=int, default=3000, help="port for --mode (default: 3000)")
    p.add_argument("--mode", choices=MODES, default="non-persistent")
    p.add_argument(
        "--listen",
        type=_listen,
        action="append",
        default=[],
        metavar="PORT:MODE",
        help="serve MODE on PORT; repeat to serve several from one process "
        "(e.g. 3000:non-persistent 3001:persistent); replaces --port/--mode. Port 0 = any",
    )
    p.add_argument("--protocol", choices=protocols.names(), default=protocols.DEFAULT)
    p.add_argument(
        "--framing",
        choices=framing.FRAMINGS,
        default="length",
        help="echo framing: length (a 4-byte length prefix) or raw (no boundaries: a message "
        "is each read on persistent listeners, everything up to the peer's FIN on "
        "non-persistent ones)",
    )
    p.add_argument("--log-format", choices=LOG_FORMATS, default="human")
    p.add_argument(
        "--concurrency",
        choices=CONCURRENCY,
        default=CONCURRENCY[0],
        help="threads: a thread per connection (default); epoll: --loops threads, each an "
        "epoll event loop serving many connections",
    )
    p.add_argument(
        "--loops",
        type=positive(int),
        default=1,
        metavar="N",
        help="epoll: event-loop threads sharing the listeners (default: 1)",
    )
    p.add_argument(
        "--tls",
        choices=tuple(tls.VERSIONS),
        default=None,
        help=f"serve over exactly this TLS version, with the certificate and "
        f"key in ${tls.CERT_ENV} and ${tls.KEY_ENV} (PEM text)",
    )
    _add_limits(p)
    _add_behaviour(p)
    return p


def _add_limits(p: argparse.ArgumentParser) -> None:
    """Timeouts and limits: what a slow, idle or greedy peer may cost."""
    p.add_argument(
        "--idle-timeout",
        type=positive(float),
        default=5.0,
        metavar="S",
        help="close a connection with no new message for S seconds (default: 5)",
    )
    p.add_argument(
        "--read-timeout",
        type=positive(float),
        default=10.0,
        metavar="S",
        help="drop a peer that stalls mid-message, or does not read what we write, "
        "for S seconds (default: 10)",
    )
    p.add_argument(
        "--head-timeout",
        type=positive(float),
        default=handlers.DEFAULT_HEAD_TIMEOUT,
        metavar="S",
        help="http: drop a peer whose whole request head takes longer than S seconds once "
        "it has begun, however steadily it trickles (default: 10)",
    )
    p.add_argument(
        "--message-timeout",
        type=positive(float),
        default=handlers.DEFAULT_MESSAGE_TIMEOUT,
        metavar="S",
        help="echo: drop a peer whose whole message takes longer than S seconds once it has "
        "begun (raw non-persistent: until its FIN), however steadily it trickles (default: 10)",
    )
    p.add_argument(
        "--max-requests",
        type=positive(int),
        default=None,
        metavar="N",
        help="persistent: close after N answers on one connection (default: no limit)",
    )
    p.add_argument(
        "--max-connections",
        type=positive(int),
        default=1024,
        metavar="N",
        help="concurrent connections; beyond it a new one is closed at once (default: 1024)",
    )
    p.add_argument(
        "--max-message",
        type=positive(int),
        default=framing.DEFAULT_MAX_MESSAGE,
        metavar="BYTES",
        help="largest echo message (default: 1048576): length framing checks the prefix; raw "
        "framing each read (persistent) or all bytes up to the peer's FIN (non-persistent). "
        "Larger is logged and the connection closed, never truncated",
    )


def _add_behaviour(p: argparse.ArgumentParser) -> None:
    """What the server serves and how it ends connections."""
    p.add_argument(
        "--resources",
        metavar="FILE",
        help="http: named resources, one `name size` a line (# comments) or a JSON object "
        '{"name": size}; GET /name then needs no ?size=',
    )
    p.add_argument(
        "--page",
        type=_page,
        default=site.NO_PAGE,
        metavar="NAME:SIZE[:KIND],...",
        help="http: serve these resources as a small web site (the first html one links to "
        "the others; each body a valid file of its kind, of exactly SIZE bytes); KIND defaults "
        "to the extension's. GET /NAME then needs no ?size=. Others keep the hex pattern",
    )
    p.add_argument(
        "--wait-peer-fin",
        action="store_true",
        help="echo, persistent listeners: before the first read, wait until the peer has "
        "half-closed, so all its writes are in the buffer (makes the article's raw coalescing "
        "deterministic)",
    )
    p.add_argument(
        "--shutdown-grace",
        type=positive(float),
        default=5.0,
        metavar="S",
        help="on SIGTERM, let in-flight connections finish for up to S seconds (default: 5)",
    )
    p.add_argument(
        "--reset",
        action="store_true",
        help="end each connection with a RST (SO_LINGER 0) after its next answer; "
        "SIGUSR1 switches this on in a running server",
    )


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    resources = None
    if args.resources:
        try:
            with open(args.resources, encoding="utf-8") as fh:
                resources = http.load_resources(fh.read())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"error: --resources {args.resources}: {exc}") from None
    if args.page.resources:  # the page's names need no ?size= either (a file's sizes win)
        resources = {**args.page.sizes(), **(resources or {})}
    listeners = args.listen or [Listener(args.port, args.mode)]
    ports = [spec.port for spec in listeners if spec.port]
    if len(ports) != len(set(ports)):
        raise SystemExit("error: --listen: the same port given twice")
    return ServerConfig(
        listeners=listeners,
        host=args.host,
        options=ProtocolOptions(
            protocol=args.protocol,
            framing=args.framing,
            max_message=args.max_message,
            max_requests=args.max_requests,
            resources=resources,
            page=args.page,
            wait_peer_fin=args.wait_peer_fin,
            head_timeout=args.head_timeout,
            message_timeout=args.message_timeout,
        ),
        idle_timeout=args.idle_timeout,
        read_timeout=args.read_timeout,
        max_connections=args.max_connections,
        shutdown_grace=args.shutdown_grace,
        concurrency=args.concurrency,
        loops=args.loops,
    )


def _tls_connections(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """The TLS connection factory for --tls, or a one-line error (exit 2)."""
    proto = protocols.get(args.protocol)
    if not proto.takes_tls:
        parser.error(f"--tls needs --protocol {' or '.join(protocols.with_tls())}")
    try:
        context = tls.context_from_environment(args.tls, alpn=(proto.alpn,) if proto.alpn else ())
    except tls.TlsSetupError as exc:
        parser.error(f"--tls: {exc}")
    return tls.connection_factory(context, args.concurrency)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(args)
    proto = protocols.get(args.protocol)
    if proto.tls == "required" and not args.tls:
        parser.error(f"--protocol {proto.name} needs --tls (HTTP/2 in clear is h2c)")
    if proto.persistent_only and any(s.mode != "persistent" for s in config.listeners):
        parser.error(f"--protocol {proto.name} needs persistent listeners (--mode persistent)")
    if args.tls:
        config.connection = _tls_connections(args, parser)
    log = Log(args.log_format)
    server = Server(config, log)
    if args.reset:
        config.options.resets.set()
    signal.signal(signal.SIGUSR1, lambda *_: _start_resets(config, log))
    try:
        server.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: server.request_stop())
    server.serve_forever()
    return 0


def _start_resets(config: ServerConfig, log: Log) -> None:
    if config.options.resets.is_set():
        return
    config.options.resets.set()
    # Logged from a thread: the log's lock may be held by the code this signal interrupted.
    threading.Thread(target=log.event, args=("reset_mode",), kwargs={"signal": "SIGUSR1"}).start()


if __name__ == "__main__":
    sys.exit(main())
