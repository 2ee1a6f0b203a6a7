"""`python -m client`: send requests in non-persistent or persistent mode, check every reply.

Exit 0 when every response matched byte for byte; 1 otherwise, with a one-line error on stderr;
2 on bad arguments. With `--log-format json`, stdout is one JSON object per request and a last
summary object.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from client import plan
from client import tls as client_tls
from client.core import ClientConfig, run
from client.log import LOG_FORMATS, Output
from wire import framing, protocols
from wire.args import positive


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m client",
        description="Client for the lab's server: a connection per request (non-persistent) "
        "or keep-alive connections (persistent); every reply checked byte for byte.",
    )
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--protocol", choices=protocols.names(), default=protocols.DEFAULT)
    p.add_argument(
        "--framing",
        choices=framing.FRAMINGS,
        default="length",
        help="echo framing: length (a 4-byte length prefix) or raw (no boundaries: the client "
        "half-closes after writing, and the reply is everything before the server's FIN)",
    )
    p.add_argument("--mode", choices=("non-persistent", "persistent"), default="non-persistent")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--messages", metavar="A,B,C", help="echo messages, e.g. Luffy,Zoro,Sanji")
    what.add_argument(
        "--sizes",
        metavar="N,N",
        help="requests of these sizes in bytes (echo: deterministic payloads; http: /rK?size=N)",
    )
    what.add_argument(
        "--resources",
        metavar="NAME:SIZE,...",
        help="http: GET /NAME?size=SIZE for each; echo: payload of that name and size",
    )
    p.add_argument(
        "--parallel",
        type=positive(int),
        default=1,
        metavar="N",
        help="non-persistent: N connections at a time; persistent: N keep-alive connections "
        "sharing the requests (default: 1)",
    )
    p.add_argument(
        "--repeat",
        type=positive(int),
        default=1,
        metavar="K",
        help="send the requests K times over (load runs); persistent connections share all "
        "of them, e.g. --parallel 1000 --repeat 100 with one resource: 100 requests each",
    )
    p.add_argument(
        "--pipeline",
        action="store_true",
        help="persistent: write every request, then read every response",
    )
    p.add_argument("--connect-timeout", type=positive(float), default=5.0, metavar="S")
    p.add_argument(
        "--timeout", type=positive(float), default=10.0, metavar="S", help="each read/write"
    )
    p.add_argument(
        "--tls",
        choices=tuple(client_tls.VERSIONS),
        default=None,
        help=f"http or h2 over exactly this TLS version, trusting the CA in ${client_tls.CA_ENV} "
        "(PEM text); the key log goes into the JSON log (tls_keylog lines)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="TLS: connections opened once a response is in offer that connection's session",
    )
    p.add_argument("--log-format", choices=LOG_FORMATS, default="human")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.messages is not None:
            items = plan.items_from_messages(args.messages)
        elif args.sizes is not None:
            items = plan.items_from_sizes(args.sizes, args.protocol)
        else:
            items = plan.items_from_resources(args.resources, args.protocol)
    except ValueError as exc:
        parser.error(str(exc))
    if args.framing not in protocols.get(args.protocol).framings:
        users = " and ".join(protocols.with_framing(args.framing))
        parser.error(f"--framing {args.framing} applies to the {users} protocol only")
    if args.resume and not args.tls:
        parser.error("--resume needs --tls")
    proto = protocols.get(args.protocol)
    if args.tls and not proto.takes_tls:
        parser.error(f"--tls needs --protocol {' or '.join(protocols.with_tls())}")
    if proto.tls == "required" and not args.tls:
        parser.error(f"--protocol {proto.name} needs --tls (HTTP/2 in clear is h2c)")
    if proto.persistent_only and args.mode != "persistent":
        parser.error(f"--protocol {proto.name} needs --mode persistent (one connection, streams)")
    if proto.multiplexed and args.pipeline:
        parser.error(f"--protocol {proto.name} sends every request at once: no --pipeline")
    if args.tls and args.pipeline:
        parser.error("--tls with --pipeline is not supported")
    config = ClientConfig(
        host=args.host,
        port=args.port,
        items=items,
        protocol=args.protocol,
        framing=args.framing,
        mode=args.mode,
        parallel=args.parallel,
        repeat=args.repeat,
        pipeline=args.pipeline,
        connect_timeout=args.connect_timeout,
        timeout=args.timeout,
        tls=args.tls,
        resume=args.resume,
    )
    try:
        result = run(config, Output(args.log_format))
    except client_tls.TlsSetupError as exc:
        parser.error(f"--tls: {exc}")
    if result.ok:
        return 0
    failed = result.summary["failed"]
    print(
        f"error: {failed} of {len(result.records)} requests failed: {result.first_error}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
